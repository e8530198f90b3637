"""Training-step time: float vs 2:4 (masks re-applied) vs INT8 QAT (fake
quantization + masks), same model, same batch, measured in one run.

Default model: mmpretrain DeiT-Tiny at 224x224 (5.7 M parameters), batch 8,
SGD, 2 CPU threads; median over ``--iters`` steps after ``--warmup``. Prints
JSON, then a markdown table::

    python benchmarks/qat_overhead.py [--arch deit-tiny] [--batch 8]
        [--iters 10] [--threads 2]
"""
import argparse
import copy
import json
import statistics
import time

import torch


def build(arch: str) -> torch.nn.Module:
    from mmengine.registry import MODELS, DefaultScope

    import gpusq_mm  # noqa: F401
    cfg = dict(type='ImageClassifier',
               backbone=dict(type='VisionTransformer', arch=arch,
                             img_size=224, patch_size=16),
               neck=None,
               head=dict(type='VisionTransformerClsHead', num_classes=1000,
                         in_channels=dict(tiny=192, small=384, base=768)[
                             arch.split('-')[-1]]))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(cfg)


def time_steps(model, data, step_extra, iters: int, warmup: int) -> float:
    optim = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    times = []
    for i in range(warmup + iters):
        start = time.perf_counter()
        loss = model.loss(*data)['loss']
        optim.zero_grad()
        loss.backward()
        optim.step()
        step_extra(model)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--arch', default='deit-tiny')
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--iters', type=int, default=10)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--threads', type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    from mmpretrain.structures import DataSample

    from gpusq_mm.quantization import (calibrate, insert_quantizers,
                                       select_quant_layers)
    from gpusq_mm.sparsity import find_layers
    from gpusq_mm.sparsity.sparsifier import Sparsifier

    base = build(args.arch).train()
    inputs = torch.randn(args.batch, 3, 224, 224)
    samples = [DataSample().set_gt_label(i % 1000) for i in range(args.batch)]
    data = (inputs, samples)

    dense = copy.deepcopy(base)
    sparse = copy.deepcopy(base)
    sp = Sparsifier('magnitude')
    sp.compute(sparse, find_layers(sparse))
    quant = copy.deepcopy(sparse)
    layers = insert_quantizers(quant, select_quant_layers(quant))
    calibrate(quant, lambda m: m(inputs, mode='tensor'))
    quant.train()

    def none(_m):
        return None

    def masks(m):
        sp.apply([m])

    rows = [
        ('float fine-tuning', time_steps(dense, data, none, args.iters,
                                         args.warmup)),
        ('phase S: 2:4 masks', time_steps(sparse, data, masks, args.iters,
                                          args.warmup)),
        ('phase Q: 2:4 + INT8 fake quant', time_steps(
            quant, data, masks, args.iters, args.warmup)),
    ]
    base_time = rows[0][1]
    result = dict(model=f'mmpretrain {args.arch}', batch=args.batch,
                  image=224, threads=args.threads, iters=args.iters,
                  quantized_layers=len(layers), masked_weights=len(sp.masks),
                  steps=[dict(mode=name, seconds=round(sec, 4),
                              ratio=round(sec / base_time, 3))
                         for name, sec in rows])
    print(json.dumps(result, indent=2))
    print(f'\n{result["model"]}, batch {args.batch}, 224x224, '
          f'{args.threads} threads, median of {args.iters} steps\n')
    print('| training step | seconds | vs float |')
    print('|---|---|---|')
    for step in result['steps']:
        print(f'| {step["mode"]} | {step["seconds"]:.3f} | '
              f'{step["ratio"]:.2f}x |')


if __name__ == '__main__':
    main()
