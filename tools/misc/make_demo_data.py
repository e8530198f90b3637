"""Generate the synthetic demo datasets (COCO, ADE-style, ImageNet-style).

    python tools/misc/make_demo_data.py [--out data/demo] [--train N]
        [--val N]
"""
import argparse
import os.path as osp

from gpusq_mm.datasets import make_cls, make_coco, make_seg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--out', default='data/demo', help='output root')
    parser.add_argument('--train', type=int, default=16,
                        help='training images per dataset')
    parser.add_argument('--val', type=int, default=8,
                        help='validation images per dataset')
    args = parser.parse_args()
    for name, fn in (('coco', make_coco), ('seg', make_seg),
                     ('cls', make_cls)):
        root = fn(osp.join(args.out, name), args.train, args.val)
        print(f'wrote {root}')


if __name__ == '__main__':
    main()
