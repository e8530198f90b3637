"""Load a GPUSQ (or, on request, plain) checkpoint into the task model."""
from dataclasses import dataclass, field
from typing import Dict, List

import torch
from mmengine.config import Config
from torch import Tensor, nn

from gpusq_mm.checkpoint_format import (STUDENT_PREFIX, distiller_to_student,
                                        read_meta, restore_quant_structure,
                                        sparse_masks)
from gpusq_mm.quantization import enable_quant, upgrade_range_keys
from gpusq_mm.utils import load_checkpoint_file

from .codebases.base import task_model_dict

# the suffix of every quantization range's state-dict key once
# upgrade_range_keys has renamed the format-1 ones (a dense export drops
# them)
RANGE_SUFFIX = '.amax'


class NotGPUSQCheckpointError(ValueError):
    """The checkpoint has no ``meta['gpusq']``."""


@dataclass
class LoadedModel:
    """The task model and the GPUSQ state of its checkpoint.

    Attributes:
        model (nn.Module): The task model in eval mode (fake quantization
            on when the checkpoint holds QAT state).
        gpusq (dict): ``meta['gpusq']`` ({} for a dense checkpoint).
        sparse_params (list[str]): Parameter paths the checkpoint calls
            2:4.
        masks (dict): ``{param name: mask}`` when the checkpoint has them.
        quant_layers (list[str]): Fake-quantized layers restored.
        from_distiller (bool): The checkpoint was a distiller's.
    """
    model: nn.Module
    gpusq: dict
    sparse_params: List[str] = field(default_factory=list)
    masks: Dict[str, Tensor] = field(default_factory=dict)
    quant_layers: List[str] = field(default_factory=list)
    from_distiller: bool = False


def build_task_model(model_cfg: Config, scope: str,
                     init_weights: bool = False) -> nn.Module:
    """Build the task model (the student of a distiller config) on CPU.

    Args:
        model_cfg (Config): Task or GPUSQ model config.
        scope (str): Default registry scope of the codebase.
        init_weights (bool): Run ``init_weights()``. Needed when no
            checkpoint follows: some parameters (e.g. DETR's
            ``level_embed``) are allocated uninitialised and set only there
            (uninitialised memory made a random-init model output NaN now
            and then). Defaults to False.
    """
    from mmengine.registry import MODELS, DefaultScope
    with DefaultScope.overwrite_default_scope(
            model_cfg.get('default_scope', scope)):
        model = MODELS.build(task_model_dict(model_cfg))
        if init_weights:
            model.init_weights()
    return model.eval()


def load_deploy_model(model_cfg: Config, checkpoint: str, scope: str,
                      dense: bool = False) -> LoadedModel:
    """Build the task model and load ``checkpoint`` into it.

    The quantizer structure is rebuilt before the weights load
    (:func:`gpusq_mm.checkpoint_format.restore_quant_structure`); a
    ``MixedKDDistiller`` checkpoint contributes its student only.

    Args:
        model_cfg (Config): Task or GPUSQ model config.
        checkpoint (str): Checkpoint path (read-only here).
        scope (str): Default registry scope of the codebase.
        dense (bool): Accept a checkpoint without ``meta['gpusq']`` and
            export without quantization. Defaults to False.

    Raises:
        NotGPUSQCheckpointError: No ``meta['gpusq']`` and not ``dense``.
        ValueError: The weights do not fit the model.
    """
    ckpt = load_checkpoint_file(checkpoint)
    gpusq = read_meta(ckpt)
    if not gpusq and not dense:
        raise NotGPUSQCheckpointError(
            f"checkpoint {checkpoint!r} has no meta['gpusq']: it was not "
            'written by the GPUSQ hooks. Deploy a GPUSQ checkpoint, or pass '
            '--dense to export it as a dense model')
    state = ckpt.get('state_dict', ckpt)
    from_distiller = any(k.startswith(STUDENT_PREFIX) for k in state)
    if from_distiller:
        ckpt = distiller_to_student(ckpt)
    model = build_task_model(model_cfg, scope)
    quant_layers = [] if dense else restore_quant_structure(model, ckpt)
    _load_weights(model, ckpt['state_dict'], checkpoint)
    if quant_layers:
        enable_quant(model)
    params = sorted((gpusq.get('sparsity') or {}).get('layers') or [])
    masks = sparse_masks(ckpt)
    return LoadedModel(
        model=model.eval(), gpusq=gpusq,
        sparse_params=params,
        masks={k: v.bool() for k, v in masks.items()},
        quant_layers=quant_layers, from_distiller=from_distiller)


def _load_weights(model: nn.Module, state: dict, path: str) -> None:
    own = model.state_dict()
    state = {k: v for k, v in upgrade_range_keys(state).items()
             if k in own or not k.endswith(RANGE_SUFFIX)}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f'checkpoint {path!r} does not fit the model: missing '
            f'{missing[:5]}, unexpected {unexpected[:5]}; check that the '
            'model config is the one the checkpoint was trained with')
    with torch.no_grad():
        for tensor in own.values():
            if tensor.is_floating_point() and not torch.isfinite(
                    tensor).all():
                raise ValueError(f'checkpoint {path!r} holds NaN/inf '
                                 'weights')
