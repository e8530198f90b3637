"""Convert a MixedKDDistiller (GPUSQ) checkpoint to a plain task checkpoint.

    python tools/model_converters/kd_to_student.py IN.pth OUT.pth

The output loads into the task config (``tools/test.py TASK_CONFIG OUT.pth``)
and keeps ``meta['gpusq']``, the 2:4 masks and the quantizer state.
"""
import argparse
import os
import os.path as osp

import torch

from gpusq_mm.checkpoint_format import distiller_to_student
from gpusq_mm.utils import load_checkpoint_file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('src', help='distiller checkpoint')
    parser.add_argument('dst', help='output task checkpoint')
    args = parser.parse_args()
    if osp.realpath(args.src) == osp.realpath(args.dst):
        parser.error('refusing to overwrite the input checkpoint; give '
                     'another output path')
    out = distiller_to_student(load_checkpoint_file(args.src))
    tmp = args.dst + '.tmp'
    torch.save(out, tmp)
    os.replace(tmp, args.dst)  # never leaves a truncated output
    print(f'wrote {args.dst}: {len(out["state_dict"])} student tensors')


if __name__ == '__main__':
    main()
