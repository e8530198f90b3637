"""Exportable stand-ins for modules the ONNX exporter cannot convert."""
import torch
from torch import Tensor, nn


def _pool_matrix(size: int, out: int, ref: Tensor) -> Tensor:
    """``(out, size)`` averaging weights of adaptive pooling's bins
    ``[floor(i * size / out), ceil((i + 1) * size / out))``."""
    rows = torch.zeros(out, size, dtype=ref.dtype, device=ref.device)
    for i in range(out):
        start, end = (i * size) // out, -((-(i + 1) * size) // out)
        rows[i, start:end] = 1.0 / (end - start)
    return rows


class AdaptiveAvgPool2dAsMatMul(nn.Module):
    """``AdaptiveAvgPool2d`` as two MatMuls with constant bin matrices.

    The exporter handles adaptive pooling only when the output size
    divides the input size (UPerNet's pyramid pooling of a 16x16 map into
    3x3 and 6x6 bins does not); for static input sizes the bins are
    constants and the pooling is ``P_h @ x @ P_w^T``, exact up to float
    rounding.

    Args:
        output_size (int | tuple): The pooled size.
    """

    def __init__(self, output_size) -> None:
        super().__init__()
        size = output_size if isinstance(output_size, (tuple, list)) \
            else (output_size, output_size)
        self.output_size = tuple(int(s) for s in size)

    def forward(self, x: Tensor) -> Tensor:
        height, width = int(x.shape[-2]), int(x.shape[-1])
        rows = _pool_matrix(height, self.output_size[0], x)
        cols = _pool_matrix(width, self.output_size[1], x)
        return torch.matmul(torch.matmul(rows, x), cols.t())


def replace_adaptive_pools(model: nn.Module) -> int:
    """Swap every non-global ``AdaptiveAvgPool2d`` in ``model``; returns
    how many were replaced."""
    count = 0
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.AdaptiveAvgPool2d) and \
                module.output_size not in (1, (1, 1)):
            parent, _, attr = name.rpartition('.')
            setattr(model.get_submodule(parent) if parent else model, attr,
                    AdaptiveAvgPool2dAsMatMul(module.output_size))
            count += 1
    return count
