"""Input-channel permutation for 2:4 without torch.fx.

Which 2 of every 4 input channels survive depends on how channels are
grouped. Reordering the input channels of a consumer weight ``W[:, perm]``
can keep much more magnitude; the network computes the same function when
the producer of those channels emits them in the same order (its output
rows, bias, and any per-channel layer in between are permuted alike).

Pairs are found from module structure, not from a traced graph: the
feed-forward blocks of OpenMMLab transformers (mmcv ``FFN``: fc1 → act →
fc2; mmseg ``MixFFN``: fc1 → depthwise conv → act → fc2). The search swaps
channels between randomly paired groups, keeping a swap only when it raises
the magnitude kept by 2:4 (a vectorised variant of the channel-swap search
of Pool & Yu, NeurIPS 2021).
"""
from dataclasses import dataclass, field
from typing import Dict, Iterable, List

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from .masked_training import permute_state
from .pattern import GROUP, to_groups_view

FFN_CLASSES = ('FFN', 'MixFFN')


@dataclass
class PermutationPair:
    """A consumer weight whose input channels may be permuted.

    Attributes:
        consumer (str): Parameter path of the consumer weight.
        producers (list[str]): Parameter paths permuted along dim 0 with it
            (producer weight and bias, per-channel layers in between).
    """

    consumer: str
    producers: List[str] = field(default_factory=list)


def _is_depthwise(m: nn.Module) -> bool:
    return isinstance(m, nn.Conv2d) and m.groups == m.in_channels \
        == m.out_channels


def _gemm_width(m: nn.Module):
    """(in, out) of a Linear or a 1x1 ungrouped Conv2d, else None."""
    if isinstance(m, nn.Linear):
        return m.in_features, m.out_features
    if isinstance(m, nn.Conv2d) and m.groups == 1 and \
            m.kernel_size == (1, 1):
        return m.in_channels, m.out_channels
    return None


def _pair_of(prefix: str, block: nn.Module) -> List[PermutationPair]:
    leaves = [(n, m) for n, m in block.named_modules()
              if not list(m.children()) and list(m.parameters(False))]
    if len(leaves) < 2:
        return []
    (_, fc1), (n_out, fc2) = leaves[0], leaves[-1]
    w1, w2 = _gemm_width(fc1), _gemm_width(fc2)
    middle = leaves[1:-1]
    if w1 is None or w2 is None or w1[1] != w2[0] or not all(
            _is_depthwise(m) and m.in_channels == w1[1] for _, m in middle):
        return []
    producers = [f'{prefix}{n}.{p}' for n, m in [leaves[0], *middle]
                 for p, _ in m.named_parameters(recurse=False)]
    return [PermutationPair(f'{prefix}{n_out}.weight', producers)]


def find_ffn_pairs(model: nn.Module) -> List[PermutationPair]:
    """Find the feed-forward (fc1 → per-channel ops → fc2) pairs.

    Args:
        model (nn.Module): The model.

    Returns:
        list[PermutationPair]: One pair per recognised feed-forward block.
    """
    pairs = []
    for name, module in model.named_modules():
        if type(module).__name__ in FFN_CLASSES and hasattr(module, 'layers'):
            pairs += _pair_of(f'{name}.layers.' if name else 'layers.',
                              module.layers)
    return pairs


def _kept(groups: Tensor) -> Tensor:
    """Magnitude kept by 2:4 in ``(N, P, 4)`` groups, summed over N."""
    return groups.topk(2, dim=-1).values.sum(dim=(0, -1))


@torch.no_grad()
def search_permutation(weight: Tensor, iters: int = 200,
                       seed: int = 0) -> Tensor:
    """Search an input-channel order that keeps more magnitude under 2:4.

    Args:
        weight (Tensor): Consumer weight, Linear ``(K, C)`` or Conv2d.
        iters (int): Rounds of random group pairing. Defaults to 200.
        seed (int): Seed of the pairing (same weight + seed = same result,
            on every DDP rank). Defaults to 0.

    The search stops early after 10 rounds without an improving swap.

    Returns:
        Tensor: ``perm`` (long, length C): new channel j is old ``perm[j]``.
        Never keeps less magnitude than the identity.
    """
    cols = to_groups_view(weight.detach()).abs().float()
    n_cols = cols.shape[1]
    perm = torch.arange(n_cols)
    n_groups = n_cols // GROUP
    if n_groups < 2:
        return perm
    gen = torch.Generator().manual_seed(seed)
    stale, patience = 0, 10
    for _ in range(iters):
        order = torch.randperm(n_groups, generator=gen)
        half = n_groups // 2
        g1, g2 = order[:half], order[half:2 * half]
        idx1 = perm.view(n_groups, GROUP)[g1]  # (P, 4) column ids
        idx2 = perm.view(n_groups, GROUP)[g2]
        x, y = cols[:, idx1], cols[:, idx2]  # (N, P, 4)
        base = _kept(x) + _kept(y)  # (P, )
        # all 16 swaps at once: xs[:, :, i, j] is x with column i := y[j]
        xs = x[:, :, None, None, :].repeat(1, 1, GROUP, GROUP, 1)
        ys = y[:, :, None, None, :].repeat(1, 1, GROUP, GROUP, 1)
        for k in range(GROUP):
            xs[:, :, k, :, k] = y
            ys[:, :, :, k, k] = x
        swapped = (xs.topk(2, dim=-1).values.sum(dim=(0, -1)) +
                   ys.topk(2, dim=-1).values.sum(dim=(0, -1)))  # (P, 4, 4)
        best, flat = swapped.flatten(1).max(dim=1)
        better = best > base * (1 + 1e-6)
        if not better.any():
            stale += 1
            if stale >= patience:
                break
            continue
        stale = 0
        for p in torch.nonzero(better).flatten().tolist():
            i, j = divmod(int(flat[p]), GROUP)
            a, b = int(g1[p]) * GROUP + i, int(g2[p]) * GROUP + j
            perm[a], perm[b] = perm[b].clone(), perm[a].clone()
    return perm


@torch.no_grad()
def apply_permutation(model: nn.Module, pair: PermutationPair,
                      perm: Tensor,
                      optimizers: Iterable[Optimizer] = ()) -> None:
    """Permute the consumer's input channels and the producers' outputs in
    place (storage kept, so optimizers and DDP buckets stay valid).

    Args:
        model (nn.Module): The model holding ``pair``.
        pair (PermutationPair): What to permute.
        perm (Tensor): New channel j is old ``perm[j]``.
        optimizers (Iterable[Optimizer]): Optimizers whose per-element
            state (moments) of these parameters is permuted alike, so a
            permutation after iteration 0 keeps every moment on its
            channel. Defaults to ().
    """
    optimizers = list(optimizers)
    params: Dict[str, nn.Parameter] = dict(model.named_parameters())
    for name, dim in [(pair.consumer, 1)] + [(n, 0) for n in pair.producers]:
        p = params[name]
        p.copy_(p.index_select(dim, perm.to(p.device)))
        permute_state(optimizers, p, perm, dim)
