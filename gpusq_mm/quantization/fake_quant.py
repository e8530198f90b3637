"""Symmetric INT8 fake quantization with a straight-through estimator.

TensorRT's explicit-quantization scheme: signed int8, zero point 0,
``scale = amax / 127``; weights per output channel, activations per tensor.
The backward pass is the clipped straight-through estimator: gradients pass
unchanged where ``|x| <= amax`` and are zero where the value was clipped.
"""
import torch
from torch import Tensor


class _FakeQuantSTE(torch.autograd.Function):

    @staticmethod
    def forward(ctx, x: Tensor, amax: Tensor, qmax: int) -> Tensor:
        scale = (amax / qmax).clamp_min(torch.finfo(torch.float32).tiny)
        ctx.save_for_backward(x, amax)
        q = torch.clamp(torch.round(x / scale), -qmax, qmax)
        return (q * scale).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, amax = ctx.saved_tensors
        return grad * (x.abs() <= amax).to(grad.dtype), None, None


def fake_quantize(x: Tensor, amax: Tensor, num_bits: int = 8) -> Tensor:
    """Quantize-dequantize ``x`` symmetrically with range ``amax``.

    Args:
        x (Tensor): Input.
        amax (Tensor): Scalar (per tensor) or broadcastable to ``x`` (per
            channel); the value mapped to the largest integer.
        num_bits (int): Bit width (8, or 4 for W4A8 weights). Defaults to 8.

    Returns:
        Tensor: ``x`` rounded to the integer grid, same dtype and shape.
    """
    qmax = 2**(num_bits - 1) - 1
    return _FakeQuantSTE.apply(x, amax.to(x.dtype), qmax)


def per_channel_amax(weight: Tensor) -> Tensor:
    """Max |w| of every output channel, shaped to broadcast on ``weight``."""
    dims = tuple(range(1, weight.dim()))
    return weight.detach().abs().amax(dim=dims, keepdim=True)
