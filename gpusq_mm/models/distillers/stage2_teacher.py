"""The paper's stage-2 teacher M_SF: the sparse float model after phase S."""
from typing import Dict

import torch
from torch import Tensor, nn


@torch.no_grad()
def copy_sparse_student(student: nn.Module, teacher: nn.Module,
                        masks: Dict[str, Tensor]) -> int:
    """Overwrite ``teacher`` with the student's masked float weights.

    Every teacher parameter and buffer takes the student's value of the same
    name (the student may hold more: quantizer state); a weight with a 2:4
    mask is multiplied by it, so under SR-STE (whose parameters stay dense)
    the teacher gets the masked weights, and under in-place masking the
    product changes nothing. Fake quantization is not applied: the teacher
    is the float model.

    Args:
        student (nn.Module): The student at the start of phase Q.
        teacher (nn.Module): The frozen teacher (same architecture).
        masks (dict): ``{parameter path: bool mask}`` of the student.

    Returns:
        int: How many teacher weights were masked.

    Raises:
        KeyError: The architectures differ (a teacher entry has no student
            counterpart, or a mask names no teacher parameter).
    """
    source = student.state_dict(keep_vars=False)
    target = teacher.state_dict(keep_vars=True)
    check_same_architecture(source, target)
    unknown = [k for k in masks if k not in target]
    if unknown:
        raise KeyError(f'2:4 masks without a teacher weight: {unknown[:5]}')
    for name, tensor in target.items():
        value = source[name]
        if name in masks:
            value = value * masks[name].to(value.device, value.dtype)
        tensor.copy_(value)
    return len(masks)


def check_same_architecture(student: dict, teacher: dict) -> None:
    """Raise unless every teacher entry has a student entry of its shape.

    Args:
        student (dict): The student's state dict.
        teacher (dict): The teacher's state dict.

    Raises:
        KeyError: Names the first differing entries.
    """
    bad = [k for k, v in teacher.items()
           if k not in student or student[k].shape != v.shape]
    if bad:
        raise KeyError(
            "MixedKDDistiller: stage2_teacher='sparse' makes the phase-Q "
            'teacher a copy of the student, which needs the same '
            f'architecture; these teacher entries differ: {bad[:5]}; use '
            "stage2_teacher='dense' for a teacher of another architecture")
