"""Weight bytes: FP32 vs INT8 and INT4 (W4A8) 2:4 in the packed on-disk
format (:mod:`gpusq_mm.sparsity.packed`: 2 values + two 2-bit positions per
group of 4, one float32 scale per output channel), measured on the file
written to disk, read back and checked to reconstruct the weights exactly.

The ceilings are 6.4x for INT8 (32 bits -> 5 bits per weight) and 10.67x
for INT4 (32 -> 3); the per-channel scales cost ``32 / C`` bits per weight
more (C = input channels). Models: mmpretrain
DeiT-S and Swin-T at 224x224 with random weights (the size does not depend
on the values), pruned 2:4 by magnitude; ``--checkpoint`` packs the 2:4
layers of a GPUSQ checkpoint instead (its QAT ranges when present). Prints
JSON, then a markdown table::

    python benchmarks/packed_weights.py [--models deit-small swin-tiny]
        [--bits 8 4] [--checkpoint work_dirs/demo/cls/gpusq/epoch_N.pth]
        [--keep DIR]
"""
import argparse
import json
import os.path as osp
import tempfile
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor

MODELS_224 = {
    'deit-small': dict(type='VisionTransformer', arch='deit-small',
                       img_size=224, patch_size=16),
    'swin-tiny': dict(type='SwinTransformer', arch='tiny', img_size=224),
}


def model_weights(name: str) -> Dict[str, Tuple[Tensor, None]]:
    """2:4-pruned eligible weights of a randomly initialised backbone."""
    from mmengine.registry import MODELS, DefaultScope

    import gpusq_mm  # noqa: F401
    from gpusq_mm.sparsity import eligible_weights, find_layers, magnitude_mask
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(dict(MODELS_224[name]))
    weights = eligible_weights(model, find_layers(model))
    return {n: (w.detach() * magnitude_mask(w), None)
            for n, w in weights.items()}


def checkpoint_weights(path: str) -> Dict[str, Tuple[Tensor,
                                                     Optional[Tensor]]]:
    """The 2:4 layers of a GPUSQ checkpoint and their weight ranges."""
    from gpusq_mm.checkpoint_format import STUDENT_PREFIX, read_meta
    from gpusq_mm.utils import load_checkpoint_file
    ckpt = load_checkpoint_file(path)
    gpusq = read_meta(ckpt)
    if not gpusq or not gpusq['sparsity'].get('layers'):
        raise SystemExit(f'{path} has no 2:4 layers in meta["gpusq"]: pass '
                         'a checkpoint written by a GPUSQ run')
    from gpusq_mm.quantization import upgrade_range_keys
    sd = upgrade_range_keys(ckpt['state_dict'])
    prefix = STUDENT_PREFIX if any(k.startswith(STUDENT_PREFIX)
                                   for k in sd) else ''
    out = {}
    for name in gpusq['sparsity']['layers']:
        # <layer>.weight_quantizer.amax, or the in_proj_weight_quantizer
        # of nn.MultiheadAttention
        amax = sd.get(prefix + name + '_quantizer.amax')
        out[name] = (sd[prefix + name].float(), amax)
    return out


def measure(label: str, weights: Dict[str, Tuple[Tensor,
                                                 Optional[Tensor]]],
            out_dir: str, bits: int = 8) -> dict:
    """Pack at ``bits``, write, read back, verify; return the byte
    counts."""
    from gpusq_mm.sparsity import count_violations
    from gpusq_mm.sparsity.packed import (load_packed, quantize_weight,
                                          save_packed)
    bad = [n for n, (w, _) in weights.items() if count_violations(w)]
    if bad:
        raise SystemExit(f'{label}: weights not 2:4 sparse: {bad[:3]}')
    tensors = {n: quantize_weight(w, amax, bits) for n, (w, amax) in
               weights.items()}
    path = osp.join(out_dir, f'{label.replace("/", "_")}-int{bits}.gsq24')
    written = save_packed(path, tensors, bits)
    loaded = load_packed(path)
    exact = all(torch.equal(loaded[n][0], q) and
                torch.equal(loaded[n][1], s) for n, (q, s) in tensors.items())
    numel = sum(w.numel() for w, _ in weights.values())
    fp32 = numel * 4
    payload = numel * (bits // 2 + 1) // 8  # bits/2 values + 1 index bit
    return dict(model=label, bits=bits, layers=len(weights), params=numel,
                fp32_bytes=fp32, packed_file_bytes=written,
                payload_bytes=payload, ratio=round(fp32 / written, 3),
                payload_ratio=round(fp32 / payload, 3),
                roundtrip_exact=exact, file=path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--models', nargs='*', default=list(MODELS_224),
                        choices=list(MODELS_224))
    parser.add_argument('--checkpoint', nargs='*', default=[],
                        help='GPUSQ checkpoint(s) to pack as well')
    parser.add_argument('--bits', nargs='*', type=int, default=[8, 4],
                        choices=[8, 4], help='weight bit widths to pack')
    parser.add_argument('--keep', help='write the packed files here')
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = args.keep or tmp
        weights = {m: model_weights(m) for m in args.models}
        weights.update({osp.basename(c): checkpoint_weights(c)
                        for c in args.checkpoint})
        rows = [measure(label, w, out_dir, bits)
                for label, w in weights.items() for bits in args.bits]
    result = dict(format='2:4 packed: 2 int8 (INT4: 2 int4 in one byte) + '
                  '2x2-bit index per group of 4, fp32 scale per output '
                  'channel', ceiling={'int8': 6.4, 'int4': round(32 / 3, 2)},
                  results=rows)
    print(json.dumps(result, indent=2))
    print('\n| weights (2:4 layers) | bits | params | FP32 bytes | packed '
          'file bytes | FP32 / packed | without scales | exact round trip |')
    print('|---|---|---|---|---|---|---|---|')
    for r in rows:
        print(f'| {r["model"]} ({r["layers"]} layers) | INT{r["bits"]} | '
              f'{r["params"]:,} | {r["fp32_bytes"]:,} | '
              f'{r["packed_file_bytes"]:,} | '
              f'{r["ratio"]:.2f}x | {r["payload_ratio"]:.2f}x | '
              f'{"yes" if r["roundtrip_exact"] else "NO"} |')


if __name__ == '__main__':
    main()
