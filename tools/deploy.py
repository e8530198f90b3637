"""Deploy a GPUSQ checkpoint: explicit Q/DQ ONNX with 2:4 weights, parity
with PyTorch, a TensorRT build script (and engine where possible).

    python tools/deploy.py DEPLOY_CFG MODEL_CFG CHECKPOINT IMG \\
        --work-dir OUT [--device cpu] [--test-img IMG2] [--show] \\
        [--dump-info] [--dense] [--precision fp32|fp16]

Writes ``OUT/end2end.onnx``, ``OUT/build_engine.sh``, ``OUT/report.json``,
``OUT/report.md``; for the onnxruntime backend ``OUT/end2end.ort.onnx``, for
the openvino backend the IR ``OUT/end2end.xml``/``.bin``, and, with
TensorRT and a GPU, ``OUT/end2end.engine``. Exit status 1: a deployed graph
failed parity.
"""
import argparse
import json
import logging
import os.path as osp
import sys

from mmengine.config import Config

import gpusq_mm  # noqa: F401  (registers models, safe checkpoint loader)
from gpusq_mm.deploy.codebases.base import inference_steps
from gpusq_mm.deploy.pipeline import DeployPipeline, ParityError


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Export a GPUSQ checkpoint to ONNX/TensorRT')
    parser.add_argument('deploy_cfg', help='deploy config path')
    parser.add_argument('model_cfg', help='model config path')
    parser.add_argument('checkpoint', help='model checkpoint path')
    parser.add_argument('img', help='image used to export and check')
    parser.add_argument('--work-dir', default='work_dirs/deploy',
                        help='directory for the outputs')
    parser.add_argument('--device', default='cpu',
                        help='device of the PyTorch reference (cpu, cuda)')
    parser.add_argument('--test-img', default=None,
                        help='image for the parity check (default: img)')
    parser.add_argument('--show', action='store_true',
                        help='save PyTorch and ONNX Runtime outputs '
                        '(outputs.npz) and print the parity summary')
    parser.add_argument('--dump-info', action='store_true',
                        help='write deploy.json and pipeline.json')
    parser.add_argument('--dense', action='store_true',
                        help='accept a checkpoint without meta[\'gpusq\'] '
                        'and export without Q/DQ')
    parser.add_argument('--test-pipeline', default=None, metavar='FILE',
                        help='config file whose test_pipeline replaces the '
                        'model config\'s (for training-only configs)')
    parser.add_argument('--precision', choices=['fp32', 'fp16'],
                        default=None, help='float precision of the graph '
                        '(default: the deploy config\'s gpusq_config)')
    return parser.parse_args()


def dump_info(pipe: DeployPipeline, args: argparse.Namespace) -> None:
    info = dict(args=vars(args), deploy_cfg=pipe.deploy_cfg.to_dict(),
                model_cfg=osp.abspath(args.model_cfg))
    with open(osp.join(args.work_dir, 'deploy.json'), 'w') as f:
        json.dump(info, f, indent=2, default=str)
    with open(osp.join(args.work_dir, 'pipeline.json'), 'w') as f:
        json.dump(inference_steps(pipe.model_cfg), f, indent=2, default=str)


def load_configs(args: argparse.Namespace):
    """The deploy and model configs (with ``--test-pipeline`` applied).

    Raises:
        FileNotFoundError: A config file does not exist.
        ValueError: ``--test-pipeline`` defines no ``test_pipeline``.
    """
    from gpusq_mm.resources import resolve_config
    args.deploy_cfg = resolve_config(args.deploy_cfg)
    args.model_cfg = resolve_config(args.model_cfg)
    for what, path in (('deploy config', args.deploy_cfg),
                       ('model config', args.model_cfg),
                       ('--test-pipeline file', args.test_pipeline)):
        if path is not None and not osp.isfile(path):
            raise FileNotFoundError(f'{what} {path!r} does not exist')
    model_cfg = Config.fromfile(args.model_cfg)
    if args.test_pipeline:
        pipeline = Config.fromfile(args.test_pipeline).get('test_pipeline')
        if not pipeline:
            raise ValueError(f'--test-pipeline {args.test_pipeline!r} '
                             'defines no test_pipeline = [...]')
        model_cfg.test_pipeline = pipeline
    return Config.fromfile(args.deploy_cfg), model_cfg


def main() -> int:
    args = parse_args()
    logging.basicConfig(level=logging.INFO,
                        format='%(asctime)s deploy %(message)s')
    try:
        deploy_cfg, model_cfg = load_configs(args)
    except (ValueError, FileNotFoundError) as e:
        print(f'error: {type(e).__name__}: {e}', file=sys.stderr)
        return 2
    pipe = DeployPipeline(
        deploy_cfg, model_cfg,
        args.checkpoint, args.img, args.work_dir, test_img=args.test_img,
        dense=args.dense, precision=args.precision, device=args.device)
    try:
        report = pipe.run()
    except ParityError as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    except (ValueError, TypeError, FileNotFoundError, ImportError,
            RuntimeError) as e:
        print(f'error: {type(e).__name__}: {e}', file=sys.stderr)
        return 2
    finally:
        if args.dump_info and hasattr(pipe, 'exporter'):
            dump_info(pipe, args)
    if args.show:
        print(f'outputs saved to {pipe.save_outputs()}')
    print(f"parity: {json.dumps(report['parity'])}")
    print(f'wrote {pipe.onnx_path}, {args.work_dir}/report.md')
    return 0


if __name__ == '__main__':
    sys.exit(main())
