"""Fold the project's fake quantization into exportable Q/DQ modules.

A fake-quantized layer (:mod:`gpusq_mm.quantization.quant_layers`) holds a
per-tensor ``input_amax`` and a per-output-channel ``weight_amax``; its
forward computes ``linear(fq(x), fq(W))`` with the symmetric scheme
``scale = amax / qmax``, zero point 0. :func:`build_deploy_model` replaces
every such layer by an export module whose ONNX graph is

- activations: ``QuantizeLinear -> DequantizeLinear`` (per tensor) directly
  in front of the ``MatMul``/``Conv``;
- weights: an **int8 initializer** (quantized offline, 2:4 zeros kept) and a
  per-channel ``DequantizeLinear`` feeding the GEMM directly. Linear weights
  are stored transposed, ``(in, out)`` with ``axis=1``, so no ``Transpose``
  sits between the ``DequantizeLinear`` and the ``MatMul`` (the pattern
  ONNX Runtime fuses into an integer kernel and TensorRT into an int8 GEMM).

Sparse layers that are not quantized get the same treatment with a float
weight, so every sparse weight is a named initializer the verify step finds.
Tensor quantizers with an ``amax`` buffer and ``quant_state == 'quant'``
(e.g. attention-matmul quantizers) become a per-tensor Q/DQ pair.
"""
import copy
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gpusq_mm.quantization.quant_layers import _QuantMixin
from gpusq_mm.sparsity import count_violations

QMIN, QMAX = -128, 127
WEIGHT_INT8 = 'deploy_weight_int8'
WEIGHT_FLOAT = 'deploy_weight'


class _QDQ(torch.autograd.Function):
    """Quantize-dequantize with a constant scale; exports as a Q/DQ pair."""

    @staticmethod
    def forward(ctx, x: Tensor, scale: Tensor) -> Tensor:
        q = torch.clamp(torch.round(x / scale), QMIN, QMAX)
        return (q * scale).to(x.dtype)

    @staticmethod
    def symbolic(g, x, scale):
        zero = g.op('Constant', value_t=torch.zeros((), dtype=torch.int8))
        q = g.op('QuantizeLinear', x, scale, zero)
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
            scale = _scale(layer.weight_amax.flatten(), qmax)
            shape = [1] * weight.dim()
            shape[self.weight_axis] = -1
            q = torch.clamp(torch.round(weight.detach().float() /
                                        scale.view(shape)), -qmax, qmax)
            self.register_buffer(WEIGHT_INT8, q.to(torch.int8))
            self.register_buffer('weight_scale', scale)
            self.input_qdq = QDQTensor(layer.input_amax)
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

    def forward(self, x: Tensor) -> Tensor:
        y = torch.matmul(self._input(x), self.export_weight())
        if self.bias is None:
            return y
        # a bias of the output's rank keeps ONNX Runtime's MatMul+Add ->
        # Gemm rewrite (which puts a Reshape between DQ and GEMM) away, so
        # the Q/DQ MatMul fuses into an integer kernel
        return y + self.bias.view([1] * (y.dim() - 1) + [-1])


class ExportConv2d(_ExportGemm):
    """A Conv2d exported with a (possibly int8 + DQ) weight initializer."""

    weight_axis = 0

    def __init__(self, layer: nn.Conv2d, bits: Optional[int]) -> None:
        super().__init__()
        if layer.padding_mode != 'zeros':
            raise TypeError(f'cannot export Conv2d with padding_mode='
                            f'{layer.padding_mode!r}; only zeros padding')
        self._setup(layer, layer.weight, bits)
        self.conv_args = dict(stride=layer.stride, padding=layer.padding,
                              dilation=layer.dilation, groups=layer.groups)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(self._input(x), self.export_weight(), self.bias,
                        **self.conv_args)


@dataclass
class DeployInfo:
    """What :func:`build_deploy_model` did, layer by layer.

    Attributes:
        quantized (dict): ``{layer: weight bits}`` exported with Q/DQ.
        sparse (list): Layers whose weight is exactly 2:4 (checked).
        float_layers (list): Fake-quant layers left in float (never
            calibrated, state ``'off'``).
        tensor_quantizers (list): Other quantizers turned into Q/DQ.
        baked (dict): ``{layer: weights zeroed}`` where the checkpoint's
            mask had not been applied to the weights yet.
    """
    quantized: Dict[str, int] = field(default_factory=dict)
    sparse: List[str] = field(default_factory=list)
    float_layers: List[str] = field(default_factory=list)
    tensor_quantizers: List[str] = field(default_factory=list)
    baked: Dict[str, int] = field(default_factory=dict)


def _set_module(root: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, attr = name.rpartition('.')
    setattr(root.get_submodule(parent) if parent else root, attr, module)


def is_tensor_quantizer(module: nn.Module) -> bool:
    """A stand-alone tensor quantizer (``amax`` buffer + ``quant_state``)
    that is switched on."""
    return (not isinstance(module, _QuantMixin)
            and isinstance(getattr(module, 'amax', None), Tensor)
            and getattr(module, 'quant_state', None) == 'quant')


@torch.no_grad()
def _bake_masks(model: nn.Module, masks: Dict[str, Tensor],
                info: DeployInfo) -> None:
    params = dict(model.named_parameters())
    for pname, mask in masks.items():
        weight = params.get(pname)
        if weight is None or weight.shape != mask.shape:
            raise ValueError(f'the checkpoint has a 2:4 mask for {pname!r} '
                             'that does not fit the model; check the '
                             'model config and the checkpoint')
        stray = int(((weight != 0) & ~mask.bool()).sum())
        if stray:
            weight.mul_(mask.to(weight.dtype))
            info.baked[pname.rpartition('.')[0]] = stray


@torch.no_grad()
def build_deploy_model(model: nn.Module,
                       sparse_layers: List[str],
                       masks: Optional[Dict[str, Tensor]] = None
                       ) -> (nn.Module, DeployInfo):
    """Copy ``model`` with fake quantization folded into Q/DQ modules.

    Args:
        model (nn.Module): The task model (fake-quantized layers in state
            ``'quant'`` after calibration/restoring).
        sparse_layers (list[str]): Module names the checkpoint calls 2:4.
        masks (dict, optional): ``{param name: bool mask}`` from the
            checkpoint; pruned weights not yet zero are zeroed (recorded
            in ``info.baked``). Defaults to None.

    Returns:
        tuple: The deploy copy (eval mode) and a :class:`DeployInfo`.

    Raises:
        ValueError: A layer called sparse is not exactly 2:4.
    """
    model = copy.deepcopy(model).eval()
    info = DeployInfo()
    if masks:
        _bake_masks(model, masks, info)
    modules = dict(model.named_modules())
    for name in sparse_layers:
        weight = getattr(modules.get(name), 'weight', None)
        if weight is None:
            raise ValueError(f'layer {name!r} is called 2:4 by the '
                             'checkpoint but the model has no such layer')
        bad = count_violations(weight)
        if bad:
            raise ValueError(f'layer {name!r} is called 2:4 by the '
                             f'checkpoint but {bad} groups of 4 hold more '
                             'than 2 non-zeros; the checkpoint is not sparse')
    for name, module in list(modules.items()):
        quant = isinstance(module, _QuantMixin) and \
            module.quant_state == 'quant'
        if isinstance(module, _QuantMixin) and not quant:
            info.float_layers.append(name)
        if is_tensor_quantizer(module):
            _set_module(model, name, QDQTensor(module.amax))
            info.tensor_quantizers.append(name)
            continue
        if not quant and name not in sparse_layers:
            continue
        bits = module.weight_bits if quant else None
        export_cls = ExportLinear if isinstance(module, nn.Linear) \
            else ExportConv2d
        _set_module(model, name, export_cls(module, bits))
        if quant:
            info.quantized[name] = bits
    info.sparse = sorted(sparse_layers)
    return model, info
