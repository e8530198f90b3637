"""Model helpers shared by the hooks."""
from torch import nn


def get_student(model: nn.Module) -> nn.Module:
    """Return the model the GPUSQ hooks act on.

    Unwraps DDP/FSDP wrappers; for a distiller (any model exposing a
    ``student`` attribute) returns the student, so the teacher stays dense.

    Args:
        model (nn.Module): ``runner.model``.

    Returns:
        nn.Module: The task model to compress.
    """
    from mmengine.model import is_model_wrapper
    if is_model_wrapper(model):
        model = model.module
    student = getattr(model, 'student', None)
    return student if isinstance(student, nn.Module) else model
