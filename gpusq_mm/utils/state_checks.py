"""Say clearly when a checkpoint's weights do not fit a model."""
from typing import Mapping

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
