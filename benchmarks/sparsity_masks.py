"""Time to compute 2:4 masks and magnitude kept, per method, on the full
Mask R-CNN Swin-T of mmdet (47.8 M parameters).

No checkpoint is downloaded: the model keeps mmdet's random initialisation
(``--checkpoint`` loads trained weights instead; kept magnitude on trained
weights is the number that matters for accuracy). Prints JSON, then a
markdown table::

    python benchmarks/sparsity_masks.py [--permutation-iters 50]
        [--checkpoint CKPT] [--threads 2]
"""
import argparse
import copy
import json
import os.path as osp
import tempfile
import time

import torch

SWIN_MASK_RCNN = 'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py'


def build_model(checkpoint=None) -> torch.nn.Module:
    from mmengine.config import Config
    from mmengine.registry import MODELS, DefaultScope
    from mmengine.runner.checkpoint import load_checkpoint

    import gpusq_mm  # noqa: F401
    with tempfile.TemporaryDirectory() as tmp:
        path = osp.join(tmp, 'cfg.py')
        with open(path, 'w') as f:
            f.write(f"_base_ = '{SWIN_MASK_RCNN}'\n"
                    'model = dict(backbone=dict(init_cfg=None))\n')
        cfg = Config.fromfile(path)
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg.model)
    model.init_weights()
    if checkpoint:
        load_checkpoint(model, checkpoint, map_location='cpu')
    return model.eval()


def kept(model, masks) -> dict:
    params = dict(model.named_parameters())
    total = sum(float(params[n].abs().sum()) for n in masks)
    keep = sum(float((params[n].abs() * masks[n]).sum()) for n in masks)
    return dict(kept_magnitude=keep / total)


def run_method(base, decisions, method: str, perm_iters: int) -> dict:
    from gpusq_mm.sparsity.sparsifier import Sparsifier
    model = copy.deepcopy(base)
    sp = Sparsifier(method, ramp_iters=1, permutation_iters=perm_iters)
    start = time.perf_counter()
    extra = {}
    sp.prepare([model], decisions)
    if method == 'permutation':
        extra['permuted_blocks'] = len(sp.strategy.gains)
    sp.compute(model, decisions, step=1)
    seconds = time.perf_counter() - start
    return dict(method=method, seconds=round(seconds, 3),
                weights=len(sp.masks), **kept(model, sp.masks), **extra)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--permutation-iters', type=int, default=50)
    parser.add_argument('--checkpoint', default=None)
    parser.add_argument('--threads', type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    from gpusq_mm.sparsity import find_layers
    base = build_model(args.checkpoint)
    decisions = find_layers(base)
    eligible = [d for d in decisions if d.eligible]
    n_params = sum(p.numel() for p in base.parameters())
    eligible_params = sum(
        dict(base.named_parameters())[d.name].numel() for d in eligible)
    rows = [run_method(base, decisions, m, args.permutation_iters)
            for m in ('magnitude', 'permutation', 'gradual', 'srste')]
    result = dict(model='Mask R-CNN Swin-T (mmdet 3.3.0)',
                  weights='trained' if args.checkpoint else 'random init',
                  parameters=n_params, eligible_weights=len(eligible),
                  skipped_weights=len(decisions) - len(eligible),
                  eligible_parameters=eligible_params,
                  threads=args.threads,
                  permutation_iters=args.permutation_iters, methods=rows)
    print(json.dumps(result, indent=2))
    print(f'\n{result["model"]}, {result["weights"]}: {len(eligible)} of '
          f'{len(decisions)} GEMM/conv weights eligible '
          f'({eligible_params / n_params:.1%} of parameters)\n')
    print('| method | time (s) | kept magnitude |')
    print('|---|---|---|')
    for r in rows:
        print(f'| {r["method"]} | {r["seconds"]:.2f} | '
              f'{r["kept_magnitude"]:.4f} |')


if __name__ == '__main__':
    main()
