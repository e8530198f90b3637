"""Evaluate a checkpoint (plain task or GPUSQ) with its config.

Same command line as ``mmdet/tools/test.py``::

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE]
        [--show-dir DIR] [--tta] [--cfg-options k=v ...] [--launcher pytorch]
"""
import argparse

from mmengine.config import Config
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

import gpusq_mm  # noqa: F401  (registers hooks/models, safe checkpoint loader)
from gpusq_mm.checkpoint_format import load_gpusq_checkpoint
from gpusq_mm.utils.cli import add_common_args, load_config
from gpusq_mm.utils.dist import prepare_cpu_distributed, shutdown_distributed


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Test (and eval) a model (plain or GPUSQ)')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='the directory to save the file containing evaluation metrics')
    parser.add_argument(
        '--out',
        type=str,
        help='dump predictions to a pickle file for offline evaluation')
    parser.add_argument(
        '--show-dir',
        help='directory where painted images will be saved. '
        'If specified, it will be automatically saved '
        'to the work_dir/timestamp/show_dir')
    add_common_args(parser)
    return parser.parse_args()


def enable_show_dir(cfg: Config, show_dir: str) -> None:
    """Turn on the task's visualization hook, wherever the config has it."""
    hook = cfg.default_hooks.get('visualization', None)
    if hook is None:
        raise RuntimeError('--show-dir needs a `visualization` hook in '
                           '`default_hooks` of the config')
    hook['draw'] = True
    hook['interval'] = 1
    hook['test_out_dir'] = show_dir


def main() -> None:
    args = parse_args()
    cfg = load_config(args)
    prepare_cpu_distributed(cfg)
    cfg.load_from = None  # loaded below, GPUSQ structure first
    if args.show_dir:
        enable_show_dir(cfg, args.show_dir)
    if args.out is not None:
        assert args.out.endswith(('.pkl', '.pickle')), \
            'The dump file must be a pkl file.'
        cfg.test_evaluator = [*cfg.test_evaluator] if isinstance(
            cfg.test_evaluator, list) else [cfg.test_evaluator]
        cfg.test_evaluator.append(
            dict(type='DumpResults', out_file_path=args.out))
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg \
        else RUNNERS.build(cfg)
    load_gpusq_checkpoint(runner, args.checkpoint)
    runner.test()
    shutdown_distributed()


if __name__ == '__main__':
    main()
