"""One-shot GPUSQ structure for export checks and benchmarks (no training):
2:4 magnitude masks, fake-quantized layers and max calibration."""
from typing import Dict, List, Sequence, Tuple

import torch
from torch import Tensor, nn

from gpusq_mm.quantization import (calibrate, insert_quantizers,
                                   select_quant_layers)
from gpusq_mm.sparsity import find_layers, magnitude_mask


@torch.no_grad()
def quick_gpusq(model: nn.Module, calib_inputs: Sequence[Tensor],
                exclude: Sequence[str] = ('patch_embed', ),
                forward: str = 'tensor'
                ) -> Tuple[List[str], Dict[str, Tensor]]:
    """Prune every eligible weight 2:4 and calibrate INT8 quantizers.

    What ``Sparse24Hook`` + ``QATHook`` produce, minus the training: for
    speed and export tests on random or pretrained weights.

    Args:
        model (nn.Module): An OpenMMLab task model (``forward(x, mode=...)``).
        calib_inputs (Sequence[Tensor]): Preprocessed batches.
        exclude (Sequence[str]): Regexes of weights kept dense and float.
            Defaults to ``('patch_embed', )``.
        forward (str): The ``mode`` used for calibration. Defaults to
            'tensor'.

    Returns:
        tuple: Sparse parameter paths and ``{param name: mask}``.
    """
    model.eval()
    params = dict(model.named_parameters())
    masks = {}
    # patch embeddings / patch merging stay dense and float, as the hooks'
    # defaults keep them
    for decision in find_layers(model, exclude=list(exclude),
                                keep_patch_layers=True):
        if decision.eligible:
            weight = params[decision.name]
            masks[decision.name] = magnitude_mask(weight)
            weight.mul_(masks[decision.name])
    insert_quantizers(model, select_quant_layers(model,
                                                 exclude=list(exclude)))

    def loop(m: nn.Module) -> None:
        for x in calib_inputs:
            m(x, mode=forward)

    calibrate(model, loop)
    return sorted(masks), masks


@torch.no_grad()
def reinit_zero_layers(model: nn.Module, std: float = 0.02,
                       seed: int = 0) -> List[str]:
    """Re-initialise the Linear/Conv weights that are all zeros.

    mmpretrain's ViT/DeiT heads are zero-initialised, so a randomly
    initialised model outputs all zeros and any agreement check on its
    outputs compares zeros with zeros. Benchmarks on random weights call
    this first (normal init, ``std``, biases kept).

    Returns:
        list[str]: Names of the re-initialised modules.
    """
    gen = torch.Generator().manual_seed(seed)
    done = []
    for name, module in model.named_modules():
        weight = getattr(module, 'weight', None)
        if isinstance(module, (nn.Linear, nn.Conv2d)) and \
                weight is not None and not weight.any():
            weight.copy_(torch.randn(weight.shape, generator=gen) * std)
            done.append(name)
    return done
