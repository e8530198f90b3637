"""Training-step time of the GPUSQ phases against plain fine-tuning, same
model, same batch, one process, interleaved (A B C A B C ...):

- plain fine-tuning: the task model alone (no teacher, float);
- phase S: ``MixedKDDistiller`` (dense teacher forward + KD losses) with 2:4
  masks re-applied after every optimizer step;
- phase Q: phase S plus INT8 fake quantization of the student.

Default model: mmpretrain DeiT-Tiny at 224x224 (student and teacher),
batch 8, AdamW, 2 CPU threads. Reports the median step time of each mode,
the median of the per-round ratios and a bootstrap 95% interval. Prints
JSON, then a markdown table::

    python benchmarks/train_step.py [--arch deit-tiny] [--batch 8]
        [--rounds 15] [--warmup 2] [--threads 2]
"""
import argparse
import copy
import json
import platform
import random
import statistics
import time
from typing import Callable, List

import torch

KD = dict(hard_weight=1.0, soft_weight=10.0, feature_weight=5.0, tau=1.0,
          features=['backbone'], feature_gating='auto', phi='inverse')


def classifier_cfg(arch: str) -> dict:
    width = dict(tiny=192, small=384, base=768)[arch.split('-')[-1]]
    return dict(type='ImageClassifier',
                backbone=dict(type='VisionTransformer', arch=arch,
                              img_size=224, patch_size=16),
                neck=None,
                head=dict(type='VisionTransformerClsHead', num_classes=1000,
                          in_channels=width))


def build_modes(arch: str, inputs: torch.Tensor) -> dict:
    """The three models, all starting from the same weights."""
    from mmengine.registry import MODELS, DefaultScope

    import gpusq_mm  # noqa: F401
    from gpusq_mm.quantization import (calibrate, insert_quantizers,
                                       select_quant_layers)
    from gpusq_mm.sparsity import find_layers
    from gpusq_mm.sparsity.sparsifier import Sparsifier
    cfg = classifier_cfg(arch)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        plain = MODELS.build(cfg)
        kd = MODELS.build(dict(type='MixedKDDistiller', architecture=cfg,
                               teacher=cfg, distill=KD))
    kd.architecture.load_state_dict(plain.state_dict())
    kd.teacher.load_state_dict(plain.state_dict())
    sparse = copy.deepcopy(kd)
    sp = Sparsifier('magnitude')
    sp.compute(sparse.architecture, find_layers(sparse.architecture))
    sp.apply([sparse.architecture])
    quant = copy.deepcopy(sparse)
    student = quant.architecture
    insert_quantizers(student, select_quant_layers(student))
    calibrate(student, lambda m: m(inputs, mode='tensor'))
    quant.on_phase_change('Q')

    def masks(model):
        sp.apply([model.architecture])

    return {'plain fine-tuning': (plain, None),
            'phase S: 2:4 + KD': (sparse, masks),
            'phase Q: 2:4 + INT8 QAT + KD': (quant, masks)}


def make_step(model, after: Callable, data) -> Callable[[], float]:
    model.train()
    optim = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-5)

    def step() -> float:
        start = time.perf_counter()
        losses = model.loss(*data)
        loss = sum(v for k, v in losses.items() if 'loss' in k)
        optim.zero_grad()
        loss.backward()
        optim.step()
        if after is not None:
            after(model)
        return time.perf_counter() - start

    return step


def bootstrap_ci(values: List[float], n: int = 2000) -> List[float]:
    rng = random.Random(0)
    meds = sorted(statistics.median(rng.choices(values, k=len(values)))
                  for _ in range(n))
    return [round(meds[int(0.025 * n)], 3), round(meds[int(0.975 * n)], 3)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--arch', default='deit-tiny')
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--rounds', type=int, default=15)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--threads', type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    from mmpretrain.structures import DataSample
    inputs = torch.randn(args.batch, 3, 224, 224)
    samples = [DataSample().set_gt_label(i % 1000) for i in range(args.batch)]
    modes = build_modes(args.arch, inputs)
    steps = {name: make_step(m, after, (inputs, samples))
             for name, (m, after) in modes.items()}
    times = {name: [] for name in steps}
    for r in range(args.warmup + args.rounds):
        for name, step in steps.items():
            sec = step()
            if r >= args.warmup:
                times[name].append(sec)
    base = times['plain fine-tuning']
    rows = []
    for name, sec in times.items():
        ratios = [s / b for s, b in zip(sec, base)]
        rows.append(dict(mode=name, median_s=round(statistics.median(sec), 4),
                         ratio=round(statistics.median(ratios), 3),
                         ratio_ci95=bootstrap_ci(ratios)))
    result = dict(model=f'mmpretrain {args.arch} (student and teacher)',
                  batch=args.batch, image=224, threads=args.threads,
                  rounds=args.rounds, torch=torch.__version__,
                  machine=platform.processor() or platform.machine(),
                  steps=rows)
    print(json.dumps(result, indent=2))
    print(f'\n{result["model"]}, batch {args.batch}, 224x224, '
          f'{args.threads} threads, {args.rounds} interleaved rounds\n')
    print('| training step | median s | vs plain (median ratio) | 95% CI |')
    print('|---|---|---|---|')
    for r in rows:
        print(f'| {r["mode"]} | {r["median_s"]:.3f} | {r["ratio"]:.2f}x | '
              f'{r["ratio_ci95"][0]:.2f}-{r["ratio_ci95"][1]:.2f} |')


if __name__ == '__main__':
    main()
