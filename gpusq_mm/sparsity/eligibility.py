"""Which weights can run on sparse tensor cores, and why others cannot.

Targets are GEMM/convolution weights, named by their parameter path:
``nn.Linear.weight`` ``(K, C)``, ``nn.Conv2d.weight`` ``(K, C/g, R, S)`` and
the input projection of ``nn.MultiheadAttention`` (``in_proj_weight``
``(3E, E)``, or ``q/k/v_proj_weight`` when key/value dims differ), which
PyTorch applies with a GEMM of its own instead of a child ``nn.Linear``.

The shape rules follow NVIDIA's documented requirements for structured
sparsity: TensorRT developer guide, "Structured Sparsity" (weights of
Convolution / fully-connected layers, 2:4 along input channels for every
output channel and kernel position) and apex ``ASP``'s eligibility test
(``out % 8 == 0`` and ``in % 16 == 0``, per group for grouped convolutions),
which keeps the GEMM tiles that sparse kernels use aligned. Weights below
``min_channels`` are skipped because the GEMM is too small for sparse
kernels to win over dense ones; depthwise convolutions have no reduction
over channels at all.
"""
import re
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from torch import nn

from gpusq_mm.utils.names import select_by_name
from gpusq_mm.utils.scope import scope_reasons

OUT_MULTIPLE = 8
IN_MULTIPLE = 16
MHA_WEIGHTS = ('in_proj_weight', 'q_proj_weight', 'k_proj_weight',
               'v_proj_weight')


@dataclass
class LayerDecision:
    """Whether one weight is pruned to 2:4, and why not if it is not.

    Attributes:
        name (str): Parameter path, e.g. ``'backbone.fc1.weight'``.
        kind (str): ``'Linear'``, ``'Conv2d'`` or ``'MultiheadAttention'``.
        shape (tuple): Weight shape.
        eligible (bool): Whether the weight is pruned.
        reason (str): Why not, when it is not.
    """

    name: str
    kind: str
    shape: tuple
    eligible: bool
    reason: str = ''


def iter_targets(model: nn.Module) -> Iterator[Tuple[str, str, nn.Module]]:
    """Yield ``(parameter path, kind, owning module)`` of GEMM weights."""
    for name, module in model.named_modules():
        prefix = f'{name}.' if name else ''
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            yield prefix + 'weight', type(module).__name__, module
        elif isinstance(module, nn.MultiheadAttention):
            for param in MHA_WEIGHTS:
                if getattr(module, param, None) is not None:
                    yield prefix + param, 'MultiheadAttention', module


def _shape_reason(module: nn.Module, shape: tuple,
                  min_channels: int) -> str:
    """Return why a weight of ``module`` is not eligible, or ''."""
    if isinstance(module, nn.Conv2d) and module.groups != 1 \
            and module.groups == module.in_channels:
        return 'depthwise convolution (no reduction over channels)'
    k, c = shape[0], shape[1]  # per group for grouped convolutions
    if c < min_channels or k < min_channels:
        return (f'too small to gain (in={c}, out={k} < '
                f'min_channels={min_channels})')
    if c % IN_MULTIPLE:
        return f'input channels {c} not a multiple of {IN_MULTIPLE}'
    if k % OUT_MULTIPLE:
        return f'output channels {k} not a multiple of {OUT_MULTIPLE}'
    return ''


def find_layers(model: nn.Module,
                include: Optional[Sequence[str]] = None,
                exclude: Optional[Sequence[str]] = None,
                min_channels: int = 32,
                scope: str = 'all',
                keep_patch_layers: bool = False) -> List[LayerDecision]:
    """Decide for every GEMM/convolution weight whether it is pruned.

    Args:
        model (nn.Module): The model (the student, unwrapped).
        include (Sequence[str], optional): Regexes (``re.search`` on
            parameter paths); when given, only matching weights are
            considered. Defaults to None (all).
        exclude (Sequence[str], optional): Regexes of weights to keep dense.
            Defaults to None.
        min_channels (int): Smallest in/out channel count worth pruning.
            Defaults to 32.
        scope (str): ``'backbone'``, ``'backbone+neck'`` or ``'all'``
            (resolved for ``model``, see :mod:`gpusq_mm.utils.scope`).
            Defaults to 'all'.
        keep_patch_layers (bool): Keep patch embeddings / patch merging
            dense. Defaults to False.

    Returns:
        list[LayerDecision]: One entry per weight, in module order.

    Raises:
        ValueError: An ``include`` pattern matches no weight, or only
            weights that are not eligible (the message gives the reasons).
    """
    targets = list(iter_targets(model))
    by_name = select_by_name([t[0] for t in targets], include, exclude,
                             what='Linear/Conv2d/attention weight')
    in_scope = scope_reasons(model, by_name, scope, keep_patch_layers)
    params = dict(model.named_parameters())
    decisions = []
    for name, kind, module in targets:
        shape = tuple(params[name].shape)
        reason = by_name[name] or in_scope[name] or _shape_reason(
            module, shape, min_channels)
        decisions.append(LayerDecision(name, kind, shape, not reason, reason))
    _check_includes(decisions, include or [])
    return decisions


def _check_includes(decisions: List[LayerDecision],
                    include: Sequence[str]) -> None:
    """An include pattern that selects only ineligible weights is an error:
    the user asked for layers that cannot be 2:4."""
    for pattern in include:
        hits = [d for d in decisions if re.search(pattern, d.name)]
        if hits and not any(d.eligible for d in hits):
            detail = '; '.join(f'{d.name} {d.shape}: {d.reason}'
                               for d in hits[:3])
            raise ValueError(f'include pattern {pattern!r} selects only '
                             f'weights that are not 2:4 eligible ({detail}); '
                             'remove it or relax min_channels')


def eligible_weights(model: nn.Module, decisions: List[LayerDecision]
                     ) -> Dict[str, nn.Parameter]:
    """Map the parameter paths of eligible decisions to the parameters."""
    params = dict(model.named_parameters())
    return {d.name: params[d.name] for d in decisions if d.eligible}
