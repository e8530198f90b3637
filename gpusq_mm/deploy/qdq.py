"""Fold the project's fake quantization into exportable Q/DQ modules.

A fake-quantized layer (:mod:`gpusq_mm.quantization.quant_layers`) holds a
per-tensor ``input_quantizer`` and a per-output-channel
``weight_quantizer``; its
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
The other switched-on per-tensor quantizers (attention-matmul operands)
become a per-tensor Q/DQ pair.
"""
import copy
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

from gpusq_mm.quantization import (QuantLayerMixin, TensorQuantizer,
                                   has_quant_gemms)
from gpusq_mm.sparsity import count_violations

from .layers import ExportConv2d, ExportLinear, QDQTensor, _ExportGemm
from .mha import PROJECTIONS, ExportMultiheadAttention, projection_bits


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
    """A per-tensor quantizer that is switched on (the quantizers of a
    layer are exported with the layer)."""
    return isinstance(module, TensorQuantizer) and \
        not module.per_channel and module.quant_state == 'quant'


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


def _sparse_targets(model: nn.Module, sparse_params: List[str]
                    ) -> Tuple[List[str], List[str]]:
    """Module names to export with named weights, and the MHA modules to
    rebuild, for the 2:4 parameters ``sparse_params``."""
    modules = dict(model.named_modules())
    params = dict(model.named_parameters())
    layers, mhas = [], []
    for pname in sparse_params:
        owner, _, attr = pname.rpartition('.')
        if pname not in params:
            raise ValueError(f'parameter {pname!r} is called 2:4 by the '
                             'checkpoint but the model has no such '
                             'parameter; check the model config')
        bad = count_violations(params[pname])
        if bad:
            raise ValueError(f'parameter {pname!r} is called 2:4 by the '
                             f'checkpoint but {bad} groups of 4 hold more '
                             'than 2 non-zeros; the checkpoint is not sparse')
        mha = owner.rpartition('.')[0] if owner.endswith('out_proj') \
            else owner
        if isinstance(modules.get(mha), nn.MultiheadAttention):
            mhas.append(mha)
            layers += [f'{mha}.{p}' for p in PROJECTIONS] \
                if attr == 'in_proj_weight' else [owner]
        elif attr == 'weight' and isinstance(modules[owner],
                                             (nn.Linear, nn.Conv2d)):
            layers.append(owner)
        else:
            raise TypeError(
                f'cannot export the 2:4 parameter {pname!r} of '
                f'{type(modules[owner]).__name__}; supported: Linear and '
                'Conv2d weights, nn.MultiheadAttention projections')
    return sorted(set(layers)), sorted(set(mhas))


def _export_layer(module: nn.Module, info: DeployInfo,
                  name: str) -> nn.Module:
    quant = isinstance(module, QuantLayerMixin) and \
        module.quant_state == 'quant'
    bits = module.weight_bits if quant else None
    if quant:
        info.quantized[name] = bits
    if isinstance(module, nn.Linear):
        return ExportLinear(module, bits)
    return ExportConv2d(module, bits)


@torch.no_grad()
def build_deploy_model(model: nn.Module,
                       sparse_params: List[str],
                       masks: Optional[Dict[str, Tensor]] = None
                       ) -> Tuple[nn.Module, DeployInfo]:
    """Copy ``model`` with fake quantization folded into Q/DQ modules.

    Args:
        model (nn.Module): The task model (fake-quantized layers in state
            ``'quant'`` after calibration/restoring).
        sparse_params (list[str]): Parameter paths the checkpoint calls
            2:4 (``meta['gpusq']['sparsity']['layers']``).
        masks (dict, optional): ``{param name: bool mask}`` from the
            checkpoint; pruned weights not yet zero are zeroed (recorded
            in ``info.baked``). Defaults to None.

    Returns:
        tuple: The deploy copy (eval mode) and a :class:`DeployInfo` whose
        ``sparse`` lists exported layer names (an attention's
        ``in_proj_weight`` becomes its ``q_proj``/``k_proj``/``v_proj``).

    Raises:
        ValueError: A parameter called sparse is missing or not 2:4.
        TypeError: A sparse parameter cannot be exported with its name.
    """
    model = copy.deepcopy(model).eval()
    info = DeployInfo()
    if masks:
        _bake_masks(model, masks, info)
    sparse_layers, mhas = _sparse_targets(model, sparse_params)
    mhas = sorted(set(mhas) | {n for n, m in model.named_modules()
                               if has_quant_gemms(m)})
    for name in mhas:
        mha = model.get_submodule(name)
        out_proj = _export_layer(mha.out_proj, info, f'{name}.out_proj')
        info.quantized.update({f'{name}.{p}': bits for p, bits in
                               projection_bits(mha).items() if bits})
        _set_module(model, name, ExportMultiheadAttention(mha, out_proj))
    layers = {n for n, m in model.named_modules()
              if isinstance(m, QuantLayerMixin)}
    for name, module in list(model.named_modules()):
        if name.rpartition('.')[0] in layers:
            continue  # a layer's own quantizers go with the layer
        if isinstance(module, QuantLayerMixin) and \
                module.quant_state != 'quant':
            info.float_layers.append(name)
        if is_tensor_quantizer(module):
            _set_module(model, name, QDQTensor(module.amax))
            info.tensor_quantizers.append(name)
        elif (isinstance(module, QuantLayerMixin)
              and module.quant_state == 'quant') or name in sparse_layers:
            if not isinstance(module, _ExportGemm):
                _set_module(model, name, _export_layer(module, info, name))
    info.sparse = sparse_layers
    return model, info



@torch.no_grad()
def keep_used_layers(module: nn.Module, inputs: Tensor, info: DeployInfo,
                     prefix: str = 'model.') -> List[str]:
    """Drop from ``info`` the layers a forward pass of ``module`` never
    runs (training-only parts such as mmseg's auxiliary head), so the
    report and the checks cover exactly the deployed graph.

    Returns:
        list[str]: The layers dropped.
    """
    used, handles = set(), []
    for name, layer in module.named_modules():
        if isinstance(layer, _ExportGemm):
            key = name[len(prefix):] if name.startswith(prefix) else name
            handles.append(layer.register_forward_hook(
                lambda *_, key=key: used.add(key)))
    try:
        module.eval()(inputs)
    finally:
        for handle in handles:
            handle.remove()
    unused = sorted((set(info.sparse) | set(info.quantized)) - used)
    info.sparse = [n for n in info.sparse if n in used]
    info.quantized = {n: b for n, b in info.quantized.items() if n in used}
    return unused
