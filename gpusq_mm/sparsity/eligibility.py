"""Which layers can run on sparse tensor cores, and why others cannot.

The shape rules follow NVIDIA's documented requirements for structured
sparsity: TensorRT developer guide, "Structured Sparsity" (weights of
Convolution / fully-connected layers, 2:4 along input channels for every
output channel and kernel position) and apex ``ASP``'s eligibility test
(``out_features % 8 == 0`` and ``in_features % 16 == 0``, per group for
grouped convolutions), which keeps the GEMM tiles that sparse kernels use
aligned. Layers below ``min_channels`` are skipped because the GEMM is too
small for sparse kernels to win over dense ones.
"""
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from torch import nn

from gpusq_mm.utils.names import select_by_name

OUT_MULTIPLE = 8
IN_MULTIPLE = 16


@dataclass
class LayerDecision:
    """Whether one layer is pruned to 2:4, and why not if it is not."""

    name: str
    kind: str
    shape: tuple
    eligible: bool
    reason: str = ''


def _shape_reason(module: nn.Module, min_channels: int) -> str:
    """Return why ``module`` is not eligible, or '' if it is."""
    if isinstance(module, nn.Linear):
        k, c = module.out_features, module.in_features
    else:
        if module.groups != 1 and module.groups == module.in_channels:
            return 'depthwise convolution (no reduction over channels)'
        k = module.out_channels // module.groups
        c = module.in_channels // module.groups
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
                min_channels: int = 32) -> List[LayerDecision]:
    """Decide for every Linear/Conv2d of ``model`` whether it is pruned.

    Args:
        model (nn.Module): The model (the student, unwrapped).
        include (Sequence[str], optional): Regexes (``re.search`` on module
            names); when given, only matching layers are considered.
            Defaults to None (all layers).
        exclude (Sequence[str], optional): Regexes of layers to keep dense.
            Defaults to None.
        min_channels (int): Smallest in/out channel count worth pruning.
            Defaults to 32.

    Returns:
        list[LayerDecision]: One entry per Linear/Conv2d, in module order.

    Raises:
        ValueError: An ``include`` pattern matches no Linear/Conv2d layer.
    """
    layers = [(n, m) for n, m in model.named_modules()
              if isinstance(m, (nn.Linear, nn.Conv2d))]
    by_name = select_by_name([n for n, _ in layers], include, exclude,
                             what='Linear or Conv2d layer')
    decisions = []
    for name, module in layers:
        reason = by_name[name] or _shape_reason(module, min_channels)
        decisions.append(
            LayerDecision(name, type(module).__name__,
                          tuple(module.weight.shape), not reason, reason))
    return decisions


def eligible_modules(model: nn.Module,
                     decisions: List[LayerDecision]) -> Dict[str, nn.Module]:
    """Map the names of eligible decisions to their modules."""
    modules = dict(model.named_modules())
    return {d.name: modules[d.name] for d in decisions if d.eligible}
