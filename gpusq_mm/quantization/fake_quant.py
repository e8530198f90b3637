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


class _LearnableFakeQuant(torch.autograd.Function):
    """Fake quantization with a gradient for the range as well (the LSQ
    estimator): inside the range d/d(amax) of ``s * round(x / s)`` is
    ``(round(x/s) - x/s) / qmax``, outside it is ``sign(x)``; scaled by
    ``1 / sqrt(n * qmax)`` (n values per range) so that ranges learn at
    the pace of the weights."""

    @staticmethod
    def forward(ctx, x: Tensor, amax: Tensor, qmax: int) -> Tensor:
        amax = amax.clamp_min(torch.finfo(torch.float32).tiny)
        scale = amax / qmax
        ctx.save_for_backward(x, amax)
        ctx.qmax = qmax
        q = torch.clamp(torch.round(x / scale), -qmax, qmax)
        return (q * scale).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, amax = ctx.saved_tensors
        qmax = ctx.qmax
        scaled = x / (amax / qmax)
        inside = x.abs() <= amax
        d_amax = torch.where(inside, (torch.round(scaled) - scaled) / qmax,
                             torch.sign(x))
        g_amax = (grad * d_amax).sum_to_size(amax.shape)
        per_range = max(1, x.numel() // max(1, amax.numel()))
        g_amax = g_amax / (per_range * qmax)**0.5
        return grad * inside.to(grad.dtype), g_amax, None


def fake_quantize(x: Tensor, amax: Tensor, num_bits: int = 8) -> Tensor:
    """Quantize-dequantize ``x`` symmetrically with range ``amax``.

    Args:
        x (Tensor): Input.
        amax (Tensor): Scalar (per tensor) or broadcastable to ``x`` (per
            channel); the value mapped to the largest integer. A range that
            requires grad (learnable scales) also gets a gradient.
        num_bits (int): Bit width (8, or 4 for W4A8 weights). Defaults to 8.

    Returns:
        Tensor: ``x`` rounded to the integer grid, same dtype and shape.
    """
    qmax = 2**(num_bits - 1) - 1
    if amax.requires_grad and torch.is_grad_enabled():
        return _LearnableFakeQuant.apply(x, amax.to(x.dtype), qmax)
    return _FakeQuantSTE.apply(x, amax.to(x.dtype), qmax)


def per_channel_amax(weight: Tensor) -> Tensor:
    """Max |w| of every output channel, shaped to broadcast on ``weight``."""
    dims = tuple(range(1, weight.dim()))
    return weight.detach().abs().amax(dim=dims, keepdim=True)
