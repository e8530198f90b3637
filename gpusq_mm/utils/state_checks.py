"""Say clearly when a checkpoint's weights or options do not fit a model
or a run."""
from typing import Any, Mapping

from torch import nn


def check_state_dict_fits(model: nn.Module, state_dict: Mapping,
                          what: str) -> None:
    """Raise if ``state_dict`` is not a complete, exact fit for ``model``.

    Args:
        model (nn.Module): The model to load into.
        state_dict (Mapping): Its prospective weights (a checkpoint's
            ``state_dict``, ``module.`` prefixes already stripped).
        what (str): The subject of the message, e.g. ``"teacher_ckpt 'x'"``.

    Raises:
        ValueError: Counts and examples of missing, unexpected and
            wrongly-shaped keys, and the likely cause.
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [f'{k}: {tuple(state_dict[k].shape)} vs {tuple(v.shape)}'
              for k, v in own.items()
              if k in state_dict and hasattr(state_dict[k], 'shape')
              and tuple(state_dict[k].shape) != tuple(v.shape)]
    if not (missing or unexpected or shapes):
        return
    cause = ('it belongs to another model' if len(missing) == len(own)
             else 'it was trained with another config')
    raise ValueError(
        f'{what} does not fit the model: {len(missing)} missing key(s) '
        f'{missing[:3]}, {len(unexpected)} unexpected key(s) '
        f'{unexpected[:3]}, {len(shapes)} shape mismatch(es) {shapes[:3]}; '
        f'{cause} (check the model config and the checkpoint path)')


class CheckpointFormatError(ValueError):
    """A checkpoint's GPUSQ entries do not fit this version or this run."""


def check_resume(owner: str, option: str, saved: Any, configured: Any,
                 hint: str = '') -> None:
    """Refuse to resume a checkpoint whose ``option`` differs from the
    config's, naming both values.

    Args:
        owner (str): Who resumes (e.g. ``'QATHook'``), the message prefix.
        option (str): The option's name in the config.
        saved: Its value in the checkpoint.
        configured: Its value in the config.
        hint (str): Appended to the message. Defaults to ''.

    Raises:
        CheckpointFormatError: ``saved != configured``.
    """
    if saved != configured:
        raise CheckpointFormatError(
            f'{owner}: the checkpoint was written with {option}={saved!r} '
            f'but the config says {option}={configured!r}; set '
            f'{option}={saved!r} to resume it{hint}')
