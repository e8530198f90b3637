"""Feature-distillation pairs, connectors and per-layer weights φ.

A pair is a student feature, a teacher feature (the same one by default:
same architecture) and an optional connector mapping the student feature to
the teacher's shape (1x1 conv for ``(N, C, H, W)`` maps, linear
for token features ``(..., C)``). Without a connector, differing shapes are
an error that shows both.

φ (the paper's sparse-distillation-aware weight factor) is 1 for every pair
during phase S. When phase Q starts, φ is computed once from the mean
phase-S feature loss L̄ of each pair and frozen:

- ``'inverse'`` (default): φ_l = |C|·(1/L̄_l) / Σ_k (1/L̄_k). The paper
  states that a larger phase-S loss gives a smaller φ; the inverse weighting
  is the simplest normalised form with that property (Σ φ = |C| keeps the
  overall feature weight γ unchanged).
- ``'proportional'``: φ_l = |C|·L̄_l / Σ_k L̄_k.
- ``'uniform'``: φ_l = 1.

A feature is a module path whose output is recorded, optionally followed by
``[i]`` to take element ``i`` of the tuple the module returns (e.g.
``'backbone[2]'``: the third level a backbone returns for its
``out_indices``).
"""
import re
from typing import Dict, List, Optional, Tuple, Union

import torch
from torch import Tensor, nn

PHI_MODES = ('inverse', 'proportional', 'uniform')


_INDEXED = re.compile(r'^(.+)\[(-?\d+)\]$')


def parse_feature(spec: str) -> Tuple[str, Optional[int]]:
    """``'backbone[2]'`` -> ``('backbone', 2)``; ``'neck'`` -> ``('neck',
    None)``."""
    match = _INDEXED.match(spec)
    if match:
        return match.group(1), int(match.group(2))
    return spec, None


def select(output, index: Optional[int], spec: str):
    """Element ``index`` of a recorded output (the output itself for
    None)."""
    if index is None:
        return output
    if not isinstance(output, (list, tuple)) or not -len(output) <= index \
            < len(output):
        count = len(output) if isinstance(output, (list, tuple)) else \
            'a single tensor, not a tuple'
        raise ValueError(f'feature {spec!r}: the module returned {count}; '
                         'pick an index it has (backbones return one level '
                         'per entry of out_indices)')
    return output[index]


class FeaturePair(nn.Module):
    """One student/teacher feature pair with an optional connector.

    Args:
        student (str): Student feature: a module path, optionally with
            ``[i]`` (element ``i`` of its returned tuple).
        teacher (str, optional): Teacher feature, same form. Defaults to
            ``student``.
        connector (dict, optional): ``dict(type='conv1x1'|'linear',
            in_channels=..., out_channels=...)``. Defaults to None.
    """

    def __init__(self, student: str, teacher: Optional[str] = None,
                 connector: Optional[dict] = None) -> None:
        super().__init__()
        self.student = student
        self.teacher = teacher or student
        self.student_path, self.student_index = parse_feature(self.student)
        self.teacher_path, self.teacher_index = parse_feature(self.teacher)
        self.connector = _build_connector(connector) if connector else None

    @property
    def name(self) -> str:
        return re.sub(r'[^0-9A-Za-z]+', '_',
                      self.student.replace('-', 'm')).strip('_')

    def student_feature(self, records: dict):
        """The student feature among recorded module outputs."""
        return select(records[self.student_path], self.student_index,
                      self.student)

    def teacher_feature(self, records: dict):
        """The teacher feature among recorded module outputs."""
        return select(records[self.teacher_path], self.teacher_index,
                      self.teacher)

    def adapt(self, feature):
        """Apply the connector to every level of a student feature."""
        if self.connector is None:
            return feature
        if isinstance(feature, (list, tuple)):
            return type(feature)(self.adapt(f) for f in feature)
        return self.connector(feature)


def _build_connector(cfg: dict) -> nn.Module:
    kind = cfg.get('type')
    missing = [k for k in ('in_channels', 'out_channels') if k not in cfg]
    if missing:
        raise ValueError(f'connector {dict(cfg)!r} lacks {missing}; give '
                         "dict(type='conv1x1' or 'linear', in_channels=C_s, "
                         'out_channels=C_t)')
    cin, cout = cfg['in_channels'], cfg['out_channels']
    if kind == 'conv1x1':
        return nn.Conv2d(cin, cout, 1)
    if kind == 'linear':
        return nn.Linear(cin, cout)
    raise ValueError(f"unknown connector type {kind!r}; use 'conv1x1' or "
                     "'linear'")


def build_pairs(specs: List[Union[str, dict]]) -> nn.ModuleList:
    """Pairs from config entries: a path, or ``dict(student=, teacher=,
    connector=)``."""
    pairs = []
    for spec in specs:
        if isinstance(spec, str):
            pairs.append(FeaturePair(spec))
        else:
            pairs.append(FeaturePair(**spec))
    return nn.ModuleList(pairs)


class PhiWeights(nn.Module):
    """Running phase-S feature losses and the frozen φ (buffers: saved in
    checkpoints, restored on resume).

    Args:
        num (int): Number of pairs.
        mode (str): One of ``PHI_MODES``. Defaults to 'inverse'.
    """

    def __init__(self, num: int, mode: str = 'inverse') -> None:
        super().__init__()
        if mode not in PHI_MODES:
            raise ValueError(f'unknown phi mode {mode!r}; choose one of '
                             f'{PHI_MODES}')
        self.mode = mode
        self.register_buffer('loss_sum', torch.zeros(num, dtype=torch.float64))
        self.register_buffer('count', torch.zeros((), dtype=torch.float64))
        self.register_buffer('phi', torch.ones(num))
        self.register_buffer('frozen', torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def observe(self, losses: List[Tensor]) -> None:
        """Accumulate the (unweighted) feature losses of one iteration,
        averaged over DDP ranks, so every rank (and the checkpoint, written
        by rank 0) holds the same running statistics and a resumed run
        freezes the same φ."""
        if not self.frozen:
            value = torch.stack([v.detach().double() for v in losses]).to(
                self.loss_sum.device)
            if torch.distributed.is_available() and \
                    torch.distributed.is_initialized():
                torch.distributed.all_reduce(value)
                value /= torch.distributed.get_world_size()
            self.loss_sum += value
            self.count += 1

    @torch.no_grad()
    def freeze(self) -> Dict[str, float]:
        """Compute φ from the mean phase-S losses (already averaged across
        ranks by :meth:`observe`)."""
        if bool(self.frozen):
            return {}
        sums, count = self.loss_sum.clone(), self.count.clone()
        mean = sums / count.clamp_min(1)
        n = len(mean)
        if self.mode == 'uniform' or count == 0 or (mean <= 0).any():
            phi = torch.ones(n, dtype=torch.float64)
        elif self.mode == 'inverse':
            phi = n * (1 / mean) / (1 / mean).sum()
        else:
            phi = n * mean / mean.sum()
        self.phi.copy_(phi.to(self.phi))
        self.frozen.fill_(True)
        return dict(mean_loss=mean.tolist(), phi=self.phi.tolist())
