"""Permutation on the full Swin-T backbone (mmdet): more magnitude kept
than plain magnitude pruning, same function before pruning."""
import pytest
import torch


@pytest.mark.slow
def test_permutation_on_swin_t_backbone():
    from mmdet.models.backbones import SwinTransformer

    from gpusq_mm.sparsity import find_layers
    from gpusq_mm.sparsity.sparsifier import Sparsifier
    torch.manual_seed(0)
    backbone = SwinTransformer(embed_dims=96, depths=[2, 2, 6, 2],
                               num_heads=[3, 6, 12, 24])
    backbone.init_weights()
    backbone.eval()  # mmdet's Swin.train() returns None: no chaining
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = backbone(x)
    decisions = find_layers(backbone)

    magnitude = Sparsifier('magnitude')
    kept_magnitude = magnitude.compute(backbone, decisions)
    permutation = Sparsifier('permutation', permutation_iters=10)
    note = permutation.prepare([backbone], decisions)
    gains = permutation.strategy.gains
    assert note.startswith('permuted 12 feed-forward blocks')
    assert len(gains) == 12  # one feed-forward block per Swin block
    with torch.no_grad():
        out = backbone(x)
    diff = max((a - b).abs().max().item() for a, b in zip(out, ref))
    assert diff <= 1e-5
    kept_permuted = permutation.compute(backbone, decisions)

    def total(kept):  # magnitude-weighted over all pruned weights
        params = dict(backbone.named_parameters())
        mass = {n: params[n].abs().sum().item() for n in kept}
        return sum(kept[n] * mass[n] for n in kept) / sum(mass.values())

    assert total(kept_permuted) > total(kept_magnitude)
    assert all(g >= 0 for g in gains.values())
    print(f'Swin-T kept magnitude: magnitude {total(kept_magnitude):.4f}, '
          f'permutation {total(kept_permuted):.4f}, max |diff| {diff:.2e}')
