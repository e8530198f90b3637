"""Rebuild the GPUSQ structure of a model from a checkpoint before its state
dict loads (quantizer buffers must exist, or they are dropped)."""
from typing import List

from torch import nn

from gpusq_mm.quantization import (enable_quant, insert_attention_quantizers,
                                   insert_quantizers)

QAT_KEY = 'gpusq_qat'


def restore_quant_structure(student: nn.Module, checkpoint: dict) -> List[str]:
    """Insert the fake-quantized layers recorded in ``checkpoint``.

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
