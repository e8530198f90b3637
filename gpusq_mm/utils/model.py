"""Model helpers shared by the hooks."""
from torch import nn


def unwrap_model(model: nn.Module) -> nn.Module:
    """Return the model inside a DDP/FSDP wrapper (or ``model`` itself)."""
    from mmengine.model import is_model_wrapper
    return model.module if is_model_wrapper(model) else model


def get_student(model: nn.Module) -> nn.Module:
    """Return the model the GPUSQ hooks act on.

    Unwraps DDP/FSDP wrappers; for a distiller (any model exposing a
    ``student`` attribute) returns the student, so the teacher stays dense.

    Args:
        model (nn.Module): ``runner.model``.

    Returns:
        nn.Module: The task model to compress.
    """
    model = unwrap_model(model)
    student = getattr(model, 'student', None)
    return student if isinstance(student, nn.Module) else model


def student_prefix(model: nn.Module) -> str:
    """State-dict prefix of :func:`get_student` inside ``model``, e.g.
    ``'architecture.'`` for a distiller and ``''`` for a plain model."""
    student = get_student(model)
    for name, module in unwrap_model(model).named_modules():
        if module is student:
            return f'{name}.' if name else ''
    raise RuntimeError('the student is not a submodule of the model')
