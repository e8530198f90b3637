"""Turn a MixedKDDistiller checkpoint into a plain task checkpoint."""
from collections import OrderedDict

STUDENT_PREFIX = 'architecture.'


def student_state_dict(state: dict) -> OrderedDict:
    """The ``architecture.*`` (student) entries of a distiller state dict
    under task keys (``backbone.*``); empty for a plain task state dict."""
    return OrderedDict((k[len(STUDENT_PREFIX):], v) for k, v in state.items()
                       if k.startswith(STUDENT_PREFIX))


def distiller_to_student(checkpoint: dict) -> dict:
    """Keep the student's weights under task keys (``backbone.*``).

    The GPUSQ state (2:4 masks, quantizer layers) and ``meta`` are kept, so
    ``tools/test.py TASK_CONFIG CKPT`` evaluates the student as trained and
    ``tools/deploy.py`` still finds ``meta['gpusq']``. Optimizer, scheduler
    and log state are dropped.

    Args:
        checkpoint (dict): A loaded distiller checkpoint.

    Returns:
        dict: The plain checkpoint.

    Raises:
        ValueError: The checkpoint has no ``architecture.*`` weights.
    """
    state = checkpoint.get('state_dict', checkpoint)
    student = student_state_dict(state)
    if not student:
        raise ValueError('the checkpoint holds no `architecture.*` weights: '
                         'it is not a MixedKDDistiller checkpoint')
    out = dict(state_dict=student, meta=dict(checkpoint.get('meta', {})))
    for key in ('gpusq_sparse24', 'gpusq_qat'):
        if key in checkpoint:
            out[key] = checkpoint[key]
    return out
