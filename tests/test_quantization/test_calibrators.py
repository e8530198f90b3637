"""Histogram calibrators over every value: running histogram with range
growth and cross-process merge, each statistic against a reference on the
concatenated full tensors, an outlier channel, uncalled quantizers."""
import threading

import pytest
import torch
from torch import nn

from gpusq_mm.quantization import (calibrate, fake_quantize, insert_quantizers,
                                   select_quant_layers, uncalibrated)
from gpusq_mm.quantization.calibrate import (NEVER_CALLED, TRAINING_ONLY,
                                             merge_histograms)
from gpusq_mm.quantization.calibrators import amax_from_histogram
from gpusq_mm.quantization.histogram import RunningHistogram, range_exponent


def _direct_hist(values: torch.Tensor, hist: RunningHistogram):
    """Histogram of ``values`` at ``hist``'s final range, in one go."""
    idx = (values.abs().double() / hist.width).floor().long()
    return torch.bincount(idx.clamp(max=hist.bins - 1),
                          minlength=hist.bins).double()


def _batches(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    # growing ranges: every batch needs a larger power of two
    return [torch.randn(50, 16, generator=gen) * s for s in (0.1, 1, 3, 40)]


def test_running_histogram_equals_histogram_of_concatenation():
    batches = _batches()
    hist = RunningHistogram(bins=256)
    hist.update(torch.zeros(7))  # zeros before any range
    for x in batches:
        hist.update(x)
    full = torch.cat([torch.zeros(7)] + [x.flatten() for x in batches])
    assert hist.total == full.numel()
    assert torch.equal(hist.hist, _direct_hist(full, hist))
    assert hist.width * hist.bins > full.abs().max() >= \
        hist.width * hist.bins / 2


class _Group:
    """In-process stand-in for a process group: one thread per rank."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.slots = [None] * size
        self.barrier = threading.Barrier(size)

    def reducer(self, rank: int, op):

        def reduce(tensor: torch.Tensor) -> None:
            self.slots[rank] = tensor.clone()
            self.barrier.wait()
            result = op(torch.stack(self.slots))
            self.barrier.wait()
            tensor.copy_(result)

        return reduce


def test_histograms_merge_across_ranks():
    batches = _batches()
    ranks = [RunningHistogram(bins=256), RunningHistogram(bins=256)]
    for i, x in enumerate(batches):
        ranks[i % 2].update(x)  # rank 1 sees the largest range
    group = _Group(2)

    def run(rank):
        merge_histograms([ranks[rank]], 'cpu',
                         group.reducer(rank, lambda t: t.max(0).values),
                         group.reducer(rank, lambda t: t.sum(0)))

    threads = [threading.Thread(target=run, args=(r, )) for r in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    full = torch.cat([x.flatten() for x in batches])
    for hist in ranks:
        assert hist.exponent == ranks[1].exponent
        assert torch.equal(hist.hist, _direct_hist(full, hist))


def _calibrated(batches, calibrator, bins=4096, percentile=99.99):
    model = nn.Sequential(nn.Linear(batches[0].shape[-1], 8))
    insert_quantizers(model, select_quant_layers(model))
    amax = calibrate(model, lambda m: [m(x) for x in batches], calibrator,
                     percentile=percentile, bins=bins)
    return amax['0']


@pytest.mark.parametrize('percentile', [99.0, 99.9, 99.99])
def test_percentile_within_one_bin_of_full_tensor_quantile(percentile):
    batches = _batches()
    amax = _calibrated(batches, 'percentile', percentile=percentile)
    full = torch.cat([x.flatten() for x in batches]).abs().double()
    exact = float(torch.quantile(full, percentile / 100,
                                 interpolation='higher'))
    width = 2.0**range_exponent(float(full.max())) / 4096
    assert abs(amax - exact) <= width


def test_max_is_exact():
    batches = _batches()
    full = torch.cat([x.flatten() for x in batches]).abs()
    assert _calibrated(batches, 'max') == float(full.max())


def _centred_batches(bins: int, seed: int = 0):
    """Heavy-tailed values at the centres of the bins of ``[0, 8)``, where
    the histogram represents the data exactly."""
    gen = torch.Generator().manual_seed(seed)
    width = 8.0 / bins
    batches = []
    for top in (bins // 4, bins // 2, bins):  # the range grows twice
        k = (torch.randn(40, 4, generator=gen).abs() * top / 16).long()
        k = k.clamp(max=top - 1)
        k[0, 0] = top - 1
        sign = torch.randint(0, 2, k.shape, generator=gen) * 2 - 1
        batches.append((k + 0.5) * width * sign)
    return batches, width


def test_mse_chooses_the_brute_force_bin():
    batches, width = _centred_batches(bins=1024)
    amax = _calibrated(batches, 'mse', bins=1024)
    full = torch.cat([x.flatten() for x in batches]).double()
    edges = range(1, 1025)
    errors = [float((fake_quantize(full, torch.tensor(e * width)) - full)
                    .pow(2).mean()) for e in edges]
    best = max(e for e in edges if errors[e - 1] == min(errors))
    assert amax == pytest.approx(min(best * width, float(full.abs().max())))
    assert best < 1024  # a real choice, not the full range


def _brute_force_kl(hist, i, levels):
    ref = [float(v) for v in hist[:i]]
    ref[-1] += float(hist[i:].sum())
    groups = {}
    for j in range(i):
        groups.setdefault(j * levels // i, []).append(j)
    q = [0.0] * i
    for members in groups.values():
        nonzero = [j for j in members if hist[j] > 0]
        for j in nonzero:
            q[j] = sum(float(hist[m]) for m in members) / len(nonzero)
    p_sum, q_sum = sum(ref), sum(q)
    kl = 0.0
    for p, qq in zip(ref, q):
        if p > 0:
            kl += p / p_sum * torch.log(torch.tensor(
                (p / p_sum) / max(qq / q_sum, 1e-12),
                dtype=torch.float64)).item()
    return kl


def test_entropy_chooses_the_brute_force_bin():
    batches, width = _centred_batches(bins=64)
    hist = RunningHistogram(bins=64)
    for x in batches:
        hist.update(x)
    full = torch.cat([x.flatten() for x in batches])
    direct = _direct_hist(full, hist)
    used = int(torch.nonzero(direct).max()) + 1
    kls = {i: _brute_force_kl(direct, i, 8) for i in range(8, used + 1)}
    best = max(i for i in kls if kls[i] <= min(kls.values()) + 1e-12)
    amax = amax_from_histogram(hist.hist, hist.width, 'entropy',
                               float(full.abs().max()), levels=8)
    assert amax == pytest.approx(min(best * width, float(full.abs().max())))


def test_outlier_channel_is_seen():
    gen = torch.Generator().manual_seed(0)
    # channel-last activations, one outlier channel of 96 (Swin-T stage 1)
    x = torch.randn(8, 49, 96, generator=gen)
    x[..., 37] *= 100
    amax = _calibrated([x], 'percentile', percentile=99.9)
    exact = float(torch.quantile(x.abs().flatten().double(), 0.999,
                                 interpolation='higher'))
    assert exact > 50  # 1 in 96 values is an outlier: the 99.9th is one
    assert abs(amax - exact) <= 2.0**range_exponent(
        float(x.abs().max())) / 4096


def test_uncalled_quantizer_is_reported_not_calibrated():
    model = nn.Module()
    model.used = nn.Linear(16, 8)
    model.unused = nn.Linear(16, 8)
    insert_quantizers(model, select_quant_layers(model))
    amax = calibrate(model, lambda m: m.used(torch.randn(4, 16)))
    assert amax['used'] > 0 and amax['unused'] == 0
    assert uncalibrated(model) == {'unused': NEVER_CALLED}
    assert model.unused.quant_state == 'off'


def test_training_only_module_is_reported_as_such():
    model = nn.Module()
    model.backbone = nn.Linear(16, 8)
    model.auxiliary_head = nn.Linear(8, 4)
    insert_quantizers(model, select_quant_layers(model))
    calibrate(model, lambda m: m.backbone(torch.randn(4, 16)))
    assert uncalibrated(model) == {'auxiliary_head': TRAINING_ONLY}


def test_calibrator_table_checks_names_and_options_once():
    from gpusq_mm.quantization.calibrators import (CALIBRATORS, Calibrator,
                                                   build_calibrator)
    assert tuple(CALIBRATORS) == ('max', 'percentile', 'mse', 'entropy')
    for name, cls in CALIBRATORS.items():
        calibrator = build_calibrator(name)
        assert type(calibrator) is cls and calibrator.name == name
        assert calibrator.uses_histogram == (name != 'max')
    given = build_calibrator('percentile', percentile=99.0)
    assert build_calibrator(given) is given  # an instance passes through
    assert given.percentile == 99.0
    with pytest.raises(ValueError, match="unknown calibrator 'kl'; choose "
                       "one of \\('max', 'percentile', 'mse', 'entropy'\\)"):
        build_calibrator('kl')
    with pytest.raises(ValueError, match='percentile must be in'):
        build_calibrator('percentile', percentile=0)
    assert isinstance(given, Calibrator)
