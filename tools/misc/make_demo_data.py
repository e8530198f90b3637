"""Generate the synthetic demo datasets (COCO instances, semantic
segmentation, ImageNet-style classification), deterministically: the same
seed writes byte-identical files. ~1200 images per set take a few seconds.

    python tools/misc/make_demo_data.py [--out data/demo] [--train 1000]
        [--val 200] [--sets coco seg cls] [--seed 0]
"""
import argparse
import os.path as osp
import sys
import time

from gpusq_mm.datasets import make_cls, make_coco, make_seg

MAKERS = dict(coco=make_coco, seg=make_seg, cls=make_cls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--out', default='data/demo', help='output root')
    parser.add_argument('--train', type=int, default=1000,
                        help='training images per dataset')
    parser.add_argument('--val', type=int, default=200,
                        help='validation images per dataset')
    parser.add_argument('--sets', nargs='+', default=list(MAKERS),
                        choices=list(MAKERS))
    parser.add_argument('--seed', type=int, default=None,
                        help='generator seed (default: each set\'s own)')
    args = parser.parse_args()
    for name in args.sets:
        start = time.time()
        seed = {} if args.seed is None else dict(seed=args.seed)
        # progress bars on a terminal only, not in logs
        root = MAKERS[name](osp.join(args.out, name), args.train, args.val,
                            progress=sys.stderr.isatty(), **seed)
        print(f'wrote {root} ({args.train} train / {args.val} val) in '
              f'{time.time() - start:.1f} s')


if __name__ == '__main__':
    main()
