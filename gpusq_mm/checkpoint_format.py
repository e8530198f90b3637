"""The GPUSQ checkpoint format, in one place.

A GPUSQ checkpoint is an MMEngine checkpoint (``state_dict``, ``meta``,
optimizer, ...) with these additions:

================== =========================================================
key                content
================== =========================================================
``gpusq_sparse24`` :data:`SPARSE_KEY`, written by ``Sparse24Hook``: the 2:4
                   ``masks`` ({parameter: bool tensor}), ``method``,
                   ``started_at``, ``frozen``; SR-STE also keeps the
                   ``dense`` weights it trains on.
``gpusq_qat``      :data:`QAT_KEY`, written by ``QATHook``: the quantized
                   ``layers`` and ``attention`` modules, ``weight_bits``,
                   ``calibrator``, ``learnable_scales``. The ranges are
                   the quantizers' ``amax`` in ``state_dict``
                   (``*.input_quantizer.amax``,
                   ``*.weight_quantizer.amax``,
                   ``*.matmul_quantizers.*.amax``; format 1 called the
                   first two ``*.input_amax``/``*.weight_amax``, mapped on
                   load by
                   :data:`~gpusq_mm.quantization.LEGACY_RANGE_KEYS`).
``gpusq_rng``      :data:`RNG_KEY`, written by ``RNGStateHook``: every
                   rank's RNG states.
``meta['gpusq']``  :data:`META_KEY`, the description deploy and reports
                   read: ``format`` (:data:`FORMAT_VERSION`), ``phase``
                   ('S' or 'Q'), ``sparsity``, ``quant``, ``distill``,
                   ``versions``.
================== =========================================================

A ``MixedKDDistiller`` checkpoint holds the student under
:data:`STUDENT_PREFIX` (``architecture.backbone...``);
:func:`distiller_to_student` turns it into a plain task checkpoint.
Checkpoints without ``meta['gpusq']['format']`` (written before it existed)
read as format 1.
"""
import functools
from collections import OrderedDict
from typing import Any, Dict, List

from torch import nn

from gpusq_mm.quantization import (enable_quant, insert_attention_quantizers,
                                   insert_quantizers)
# the resume checks live beside the other state checks (the pure-torch
# cores use them too); this module is where callers find them
from gpusq_mm.utils.state_checks import CheckpointFormatError, check_resume

__all__ = [
    'CheckpointFormatError', 'FORMAT_VERSION', 'META_KEY', 'PHASES', 'QAT_KEY',
    'RNG_KEY', 'SPARSE_KEY', 'STUDENT_PREFIX', 'check_resume',
    'distiller_to_student', 'load_gpusq_checkpoint', 'read_meta',
    'restore_quant_structure', 'sparse_masks', 'student_state_dict',
    'update_distill_meta', 'update_gpusq_meta', 'versions'
]

SPARSE_KEY = 'gpusq_sparse24'
QAT_KEY = 'gpusq_qat'
RNG_KEY = 'gpusq_rng'
META_KEY = 'gpusq'
#: State-dict prefix of a distiller's student.
STUDENT_PREFIX = 'architecture.'
#: Version of ``meta['gpusq']``'s layout; raise it when the layout changes
#: and teach :func:`read_meta` the older ones.
#: 2: ranges under the quantizer modules (``*.input_quantizer.amax``).
FORMAT_VERSION = 2
#: Order of the training phases a checkpoint can be in.
PHASES = ('dense', 'S', 'Q')


def versions() -> Dict[str, str]:
    """Versions of the packages that decide a checkpoint's meaning (read
    once per process: every hook writes them into every checkpoint)."""
    return dict(_versions())


@functools.lru_cache(maxsize=1)
def _versions() -> Dict[str, str]:
    import importlib.metadata as md
    out = {}
    for name in ('gpusq_mm', 'torch', 'mmengine', 'mmcv', 'mmdet',
                 'mmsegmentation', 'mmpretrain'):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            continue
    return out


# ------------------------------------------------------------------ meta
def read_meta(checkpoint: dict) -> dict:
    """``meta['gpusq']`` of a loaded checkpoint ({} for a dense one).

    Raises:
        CheckpointFormatError: It was written by a newer format.
    """
    gpusq = dict((checkpoint.get('meta') or {}).get(META_KEY) or {})
    version = gpusq.get('format', 1)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointFormatError(
            f"the checkpoint's meta['gpusq'] has format {version!r}; this "
            f'gpusq_mm reads formats up to {FORMAT_VERSION}: upgrade '
            'gpusq_mm to read it')
    return gpusq


def update_gpusq_meta(checkpoint: dict, key: str, value: Any,
                      phase: str) -> None:
    """Write ``checkpoint['meta']['gpusq'][key] = value``, the phase, the
    format version and the package versions.

    Args:
        checkpoint (dict): Checkpoint being saved.
        key (str): ``'sparsity'`` or ``'quant'``.
        value (Any): Plain-Python description (no custom classes).
        phase (str): Name of the active phase, e.g. ``'S'`` or ``'Q'``;
            the later phase wins when several hooks write.
    """
    gpusq = checkpoint.setdefault('meta', {}).setdefault(META_KEY, {})
    gpusq[key] = value
    order = {p: i for i, p in enumerate(PHASES)}
    if order.get(phase, 0) >= order.get(gpusq.get('phase', 'dense'), 0):
        gpusq['phase'] = phase
    gpusq['format'] = FORMAT_VERSION
    gpusq['versions'] = versions()


def update_distill_meta(checkpoint: dict, model) -> None:
    """Write ``meta['gpusq']['distill']`` when ``model`` (a runner's model,
    possibly DDP-wrapped) is a distiller that describes itself
    (``gpusq_meta()``: feature pairs, φ, stage-2 teacher)."""
    model = getattr(model, 'module', model)
    describe = getattr(model, 'gpusq_meta', None)
    if callable(describe):
        gpusq = checkpoint.setdefault('meta', {}).setdefault(META_KEY, {})
        gpusq['distill'] = describe()


def sparse_masks(checkpoint: dict) -> dict:
    """``{parameter: mask}`` of a checkpoint ({} without 2:4 state)."""
    return dict((checkpoint.get(SPARSE_KEY) or {}).get('masks') or {})


# --------------------------------------------------------- the student
def student_state_dict(state: dict) -> OrderedDict:
    """The :data:`STUDENT_PREFIX` (student) entries of a distiller state
    dict under task keys (``backbone.*``); empty for a plain task state
    dict."""
    return OrderedDict((k[len(STUDENT_PREFIX):], v) for k, v in state.items()
                       if k.startswith(STUDENT_PREFIX))


def distiller_to_student(checkpoint: dict) -> dict:
    """Keep the student's weights under task keys (``backbone.*``).

    The GPUSQ state (2:4 masks, quantizer layers) and ``meta`` are kept, so
    ``tools/test.py TASK_CONFIG CKPT`` evaluates the student as trained and
    ``tools/deploy.py`` still finds ``meta['gpusq']``. Optimizer, scheduler,
    RNG and log state are dropped.

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
    for key in (SPARSE_KEY, QAT_KEY):
        if key in checkpoint:
            out[key] = checkpoint[key]
    return out


# ----------------------------------------------------- quantized layers
def restore_quant_structure(student: nn.Module, checkpoint: dict) -> List[str]:
    """Insert the fake-quantized layers recorded in ``checkpoint``, so that
    their range buffers exist when the state dict loads (or they are
    dropped).

    Args:
        student (nn.Module): The (unwrapped) model the checkpoint belongs to.
        checkpoint (dict): A loaded checkpoint.

    Returns:
        list[str]: Names of the re-created quantized layers (empty for a
        checkpoint without QAT state).

    Raises:
        ValueError: The checkpoint's quantizer state is malformed or names
            layers the model does not have.
    """
    state = checkpoint.get(QAT_KEY)
    if state is None:
        return []
    if not isinstance(state, dict) or not {'layers', 'weight_bits'} <= set(
            state):
        raise ValueError(f"the checkpoint's {QAT_KEY!r} entry is malformed "
                         "(needs 'layers' and 'weight_bits'); it was not "
                         'written by QATHook')
    attention = list(state.get('attention', []))
    names = set(dict(student.named_modules()))
    missing = [n for n in list(state['layers']) + attention
               if n not in names]
    if missing:
        raise ValueError(f'the checkpoint quantizes layers {missing[:5]} '
                         'that the model does not have; it belongs to '
                         'another model (check the config and checkpoint)')
    insert_quantizers(student, {n: '' for n in state['layers']},
                      state['weight_bits'])
    # learnable ranges load into these buffers alike (same keys); QATHook
    # turns them into parameters when it trains them
    insert_attention_quantizers(student, {n: '' for n in attention})
    return list(state['layers']) + attention


def load_gpusq_checkpoint(runner, path: str) -> None:
    """Load a (GPUSQ or plain) checkpoint into ``runner.model`` for
    evaluation: quantizer structure first, weights, then fake quantization
    switched on, so the model is evaluated as trained."""
    from mmengine.runner.checkpoint import _load_checkpoint

    from gpusq_mm.utils import get_student
    student = get_student(runner.model)
    if restore_quant_structure(student, _load_checkpoint(path, 'cpu')):
        runner.load_checkpoint(path)
        enable_quant(student)
    else:
        runner.load_checkpoint(path)
