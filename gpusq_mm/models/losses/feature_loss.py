"""Feature distillation distance between recorded student/teacher outputs."""
from typing import List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor

Features = Union[Tensor, Sequence[Tensor]]


def _flatten(features: Features) -> List[Tensor]:
    if isinstance(features, Tensor):
        return [features]
    if isinstance(features, (list, tuple)):
        out: List[Tensor] = []
        for f in features:
            out.extend(_flatten(f))
        return out
    raise TypeError(f'cannot distill a feature of type {type(features)}; '
                    'record a module that returns tensors')


def feature_mse(student: Features, teacher: Features, name: str,
                sample_weights: Optional[Tensor] = None) -> Tensor:
    """Mean of the per-level MSE between student and teacher features.

    Args:
        student (Tensor | Sequence[Tensor]): Student output(s).
        teacher (Tensor | Sequence[Tensor]): Teacher output(s), same
            structure and shapes.
        name (str): Feature path, used in error messages.
        sample_weights (Tensor, optional): Per-sample weights ``(B, )``
            (e.g. 1 where teacher and student predict the same class); the
            per-sample MSEs are weighted and divided by B.
            Defaults to None.

    Returns:
        Tensor: Scalar loss.

    Raises:
        ValueError: The number of levels or a level's shape differs.
    """
    s_levels, t_levels = _flatten(student), _flatten(teacher)
    if len(s_levels) != len(t_levels):
        raise ValueError(f'feature {name!r}: student gives {len(s_levels)} '
                         f'tensors, teacher {len(t_levels)}')
    losses = []
    for i, (s, t) in enumerate(zip(s_levels, t_levels)):
        if s.shape != t.shape:
            raise ValueError(
                f'feature {name!r} level {i}: student shape '
                f'{tuple(s.shape)} differs from teacher shape '
                f'{tuple(t.shape)}; add a connector for this pair')
        if sample_weights is None:
            losses.append(F.mse_loss(s.float(), t.detach().float()))
            continue
        per_sample = (s.float() - t.detach().float()).pow(2).flatten(1)
        losses.append((per_sample.mean(1) * sample_weights).mean())
    return torch.stack(losses).mean()
