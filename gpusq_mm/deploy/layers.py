"""Exportable layers: Q/DQ autograd functions with ONNX symbolics and the
Linear/Conv2d modules that hold int8 (or named float) weight initializers.

See :mod:`gpusq_mm.deploy.qdq` for the graph they produce."""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

QMAX = 127
WEIGHT_INT8 = 'deploy_weight_int8'
WEIGHT_FLOAT = 'deploy_weight'


class _QDQ(torch.autograd.Function):
    """Symmetric quantize-dequantize on ``[-127, 127]`` (the training
    scheme) with a constant scale; exports as ``Clip(min=-127 s) -> Q ->
    DQ`` since ``QuantizeLinear`` itself saturates at -128."""

    @staticmethod
    def forward(ctx, x: Tensor, scale: Tensor) -> Tensor:
        q = torch.clamp(torch.round(x / scale), -QMAX, QMAX)
        return (q * scale).to(x.dtype)

    @staticmethod
    def symbolic(g, x, scale):
        zero = g.op('Constant', value_t=torch.zeros((), dtype=torch.int8))
        low = g.op('Mul', scale, g.op('Constant',
                                      value_t=torch.tensor(-float(QMAX))))
        q = g.op('QuantizeLinear', g.op('Clip', x, low), scale, zero)
        return g.op('DequantizeLinear', q, scale, zero)


class _DQ(torch.autograd.Function):
    """Dequantize an int8 tensor per channel; exports as DequantizeLinear."""

    @staticmethod
    def forward(ctx, q: Tensor, scale: Tensor, axis: int) -> Tensor:
        shape = [1] * q.dim()
        shape[axis] = -1
        return q.float() * scale.view(shape)

    @staticmethod
    def symbolic(g, q, scale, axis: int):
        zero = g.op('Constant',
                    value_t=torch.zeros(_numel(scale), dtype=torch.int8))
        return g.op('DequantizeLinear', q, scale, zero, axis_i=axis)


def _numel(value) -> int:
    sizes = value.type().sizes()
    return int(sizes[0]) if sizes else 1


def _scale(amax: Tensor, qmax: int) -> Tensor:
    return (amax.detach().float() / qmax).clamp_min(
        torch.finfo(torch.float32).tiny)


class QDQTensor(nn.Module):
    """Per-tensor Q/DQ of its input with a frozen scale.

    Args:
        amax (Tensor): Scalar range (the value mapped to 127).
    """

    def __init__(self, amax: Tensor) -> None:
        super().__init__()
        self.register_buffer('scale', _scale(amax.reshape(()), 127))

    def forward(self, x: Tensor) -> Tensor:
        return _QDQ.apply(x, self.scale.to(x.dtype))


class _ExportGemm(nn.Module):
    """Shared part of :class:`ExportLinear` and :class:`ExportConv2d`."""

    weight_axis = 0

    def _setup(self, layer: nn.Module, weight: Tensor,
               bits: Optional[int]) -> None:
        """``weight`` in export layout; ``bits`` None keeps it float."""
        self.input_qdq = None
        self.bits = bits
        if bits is None:
            self.register_buffer(WEIGHT_FLOAT, weight.detach().float())
        else:
            qmax = 2**(bits - 1) - 1
            scale = _scale(layer.weight_quantizer.amax.flatten(), qmax)
            shape = [1] * weight.dim()
            shape[self.weight_axis] = -1
            q = torch.clamp(torch.round(weight.detach().float() /
                                        scale.view(shape)), -qmax, qmax)
            self.register_buffer(WEIGHT_INT8, q.to(torch.int8))
            self.register_buffer('weight_scale', scale)
            self.input_qdq = QDQTensor(layer.input_quantizer.amax)
        bias = getattr(layer, 'bias', None)
        self.register_buffer(
            'bias', None if bias is None else bias.detach().float())

    def export_weight(self) -> Tensor:
        """The weight the exported GEMM consumes (dequantized if int8)."""
        if self.bits is None:
            return getattr(self, WEIGHT_FLOAT)
        return _DQ.apply(getattr(self, WEIGHT_INT8), self.weight_scale,
                         self.weight_axis)

    def _input(self, x: Tensor) -> Tensor:
        return x if self.input_qdq is None else self.input_qdq(x)


class ExportLinear(_ExportGemm):
    """A Linear exported as ``MatMul(x, W^T) + b`` with ``W^T`` stored
    ``(in, out)`` (per-output-channel DQ on ``axis=1``) and ``b`` shaped
    ``(1, ..., 1, out)``."""

    weight_axis = 1

    def __init__(self, layer: nn.Linear, bits: Optional[int]) -> None:
        super().__init__()
        self._setup(layer, layer.weight.t().contiguous(), bits)
        # read by model code (e.g. DINO's pre_decoder: cls_branches[-1])
        self.in_features = layer.in_features
        self.out_features = layer.out_features

    def forward(self, x: Tensor) -> Tensor:
        y = torch.matmul(self._input(x), self.export_weight())
        if self.bias is None:
            return y
        # a bias of the output's rank keeps ONNX Runtime's MatMul+Add ->
        # Gemm rewrite (which puts a Reshape between DQ and GEMM) away, so
        # the Q/DQ MatMul fuses into an integer kernel
        return y + self.bias.view([1] * (y.dim() - 1) + [-1])


class ExportConv2d(_ExportGemm):
    """A Conv2d exported with a (possibly int8 + DQ) weight initializer and
    its bias as a separate ``Add``."""

    weight_axis = 0

    def __init__(self, layer: nn.Conv2d, bits: Optional[int]) -> None:
        super().__init__()
        if layer.padding_mode != 'zeros':
            raise TypeError(f'cannot export Conv2d with padding_mode='
                            f'{layer.padding_mode!r}; only zeros padding')
        self._setup(layer, layer.weight, bits)
        self.in_channels = layer.in_channels
        self.out_channels = layer.out_channels
        self.conv_args = dict(stride=layer.stride, padding=layer.padding,
                              dilation=layer.dilation, groups=layer.groups)

    def forward(self, x: Tensor) -> Tensor:
        y = F.conv2d(self._input(x), self.export_weight(), None,
                     **self.conv_args)
        # the bias stays a float Add: ONNX Runtime would otherwise quantize
        # it to int32 at scale s_x * s_w, which saturates for channels with
        # tiny weights (TensorRT fuses the Add either way)
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)
