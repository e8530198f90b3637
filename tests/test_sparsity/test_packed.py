"""The packed INT8 2:4 file: exact round trip and its size."""
import os

import pytest
import torch

from gpusq_mm.quantization import fake_quantize, per_channel_amax
from gpusq_mm.sparsity import magnitude_mask
from gpusq_mm.sparsity.packed import (dequantize, load_packed, pack_rows,
                                      quantize_weight, save_packed)


def _sparse(shape, seed=0):
    torch.manual_seed(seed)
    w = torch.randn(*shape)
    return w * magnitude_mask(w)


def test_round_trip_exact_and_size(tmp_path):
    linear = _sparse((96, 384))
    conv = _sparse((32, 64, 3, 3), seed=1)
    linear[0, :4] = 0  # a group with no non-zero at all
    tensors = {n: quantize_weight(w) for n, w in
               (('fc', linear), ('conv', conv))}
    path = str(tmp_path / 'w.gsq24')
    written = save_packed(path, tensors)
    assert written == os.path.getsize(path)
    loaded = load_packed(path)
    assert list(loaded) == ['fc', 'conv']
    for name, w in (('fc', linear), ('conv', conv)):
        q, scales = loaded[name]
        assert q.dtype == torch.int8 and q.shape == w.shape
        assert torch.equal(q, tensors[name][0])
        assert torch.equal(scales, tensors[name][1])
        # dequantized = what the fake quantizer computes in training
        expected = fake_quantize(w, per_channel_amax(w))
        assert torch.equal(dequantize(q, scales), expected)
    payload = (linear.numel() + conv.numel()) * 5 // 8
    scales = (96 + 32) * 4
    assert payload + scales < written < payload + scales + 1024
    fp32 = (linear.numel() + conv.numel()) * 4
    assert fp32 / written > 6.0


def test_rejects_dense_and_bad_files(tmp_path):
    q, _ = quantize_weight(torch.randn(8, 16) + 3)
    with pytest.raises(ValueError, match='not 2:4 sparse'):
        pack_rows(q)
    with pytest.raises(ValueError, match='multiple of 8'):
        pack_rows(torch.zeros(8, 12, dtype=torch.int8))
    bad = tmp_path / 'bad.bin'
    bad.write_bytes(b'not a packed file')
    with pytest.raises(ValueError, match='bad magic'):
        load_packed(str(bad))
