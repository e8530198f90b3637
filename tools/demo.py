"""The smallest end-to-end GPUSQ flow, on generated data, on a CPU.

1. generate the synthetic classification set,
2. train the dense tiny DeiT teacher,
3. run GPUSQ on it (phase S: 2:4 + KD, phase Q: INT8 QAT + KD),
4. evaluate dense and GPUSQ top-1, check the 2:4 pattern and print a table.

    python tools/demo.py [--work-dir work_dirs/demo]
"""
import argparse
import json
import os
import os.path as osp
import re
import subprocess
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO = osp.join(REPO, 'configs', 'gpusq', 'demo')


def run(script: str, args: list, log: str) -> str:
    """Run a tool, stream nothing, keep the log; return its output."""
    print(f'  $ python tools/{script} {" ".join(args)}', flush=True)
    start = time.time()
    proc = subprocess.run([sys.executable, osp.join(REPO, 'tools', script),
                           *args], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=REPO))
    with open(log, 'w') as f:
        f.write(proc.stdout + proc.stderr)
    if proc.returncode:
        sys.exit(f'{script} failed (exit {proc.returncode}); see {log}')
    print(f'    done in {time.time() - start:.0f} s (log: {log})', flush=True)
    return proc.stdout + proc.stderr


def top1(output: str) -> float:
    found = re.findall(r'accuracy/top1: ([0-9.]+)', output)
    if not found:
        sys.exit('no accuracy/top1 in the test output')
    return float(found[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--epochs', type=int, default=30)
    args = parser.parse_args()
    work = osp.abspath(args.work_dir)
    os.makedirs(work, exist_ok=True)
    data = osp.join(work, 'data')

    print('[1/4] generating synthetic data', flush=True)
    from gpusq_mm.datasets import make_cls
    make_cls(osp.join(data, 'cls'), num_train=240, num_val=120)
    data_opt = [f'train_dataloader.dataset.data_root={data}/cls',
                f'val_dataloader.dataset.data_root={data}/cls',
                f'test_dataloader.dataset.data_root={data}/cls']
    epochs = args.epochs
    sched = [f'train_cfg.max_epochs={epochs}',
             f'train_cfg.val_interval={epochs}',
             f'default_hooks.checkpoint.interval={epochs}']

    print('[2/4] training the dense teacher', flush=True)
    dense_dir = osp.join(work, 'dense')
    run('train.py', [osp.join(DEMO, 'deit_tiny_dense.py'), '--work-dir',
                     dense_dir, '--cfg-options', *data_opt, *sched],
        osp.join(work, 'dense_train.log'))
    dense_ckpt = osp.join(dense_dir, f'epoch_{epochs}.pth')

    print('[3/4] GPUSQ: phase S (2:4 + KD) then phase Q (INT8 QAT + KD)',
          flush=True)
    gpusq_dir = osp.join(work, 'gpusq')
    run('train.py', [osp.join(DEMO, 'deit_tiny_gpusq.py'), '--work-dir',
                     gpusq_dir, '--cfg-options', *data_opt, *sched,
                     f'model.teacher_ckpt={dense_ckpt}',
                     f'custom_hooks.1.start_epoch={epochs // 2}'],
        osp.join(work, 'gpusq_train.log'))
    gpusq_ckpt = osp.join(gpusq_dir, f'epoch_{epochs}.pth')

    print('[4/4] evaluating', flush=True)
    dense_top1 = top1(run('test.py', [
        osp.join(DEMO, 'deit_tiny_dense.py'), dense_ckpt, '--work-dir',
        osp.join(work, 'dense_test'), '--cfg-options', *data_opt],
        osp.join(work, 'dense_test.log')))
    gpusq_top1 = top1(run('test.py', [
        osp.join(DEMO, 'deit_tiny_gpusq.py'), gpusq_ckpt, '--work-dir',
        osp.join(work, 'gpusq_test'), '--cfg-options', *data_opt],
        osp.join(work, 'gpusq_test.log')))
    report = summarize(gpusq_ckpt, dense_top1, gpusq_top1)
    with open(osp.join(work, 'report.json'), 'w') as f:
        json.dump(report, f, indent=2)
    print_table(report)


def summarize(ckpt_path: str, dense_top1: float, gpusq_top1: float) -> dict:
    from gpusq_mm.sparsity import count_violations
    from gpusq_mm.utils import load_checkpoint_file
    ckpt = load_checkpoint_file(ckpt_path)
    gpusq = ckpt['meta']['gpusq']
    sd = ckpt['state_dict']
    sparse = gpusq['sparsity']['layers']
    violations = sum(count_violations(sd[f'architecture.{n}'])
                     for n in sparse)
    return dict(dense_top1=dense_top1, gpusq_top1=gpusq_top1,
                phase=gpusq['phase'], sparse_layers=len(sparse),
                quantized_layers=len(gpusq['quant']['layers']),
                violations_24=violations, checkpoint=ckpt_path)


def print_table(r: dict) -> None:
    print('\n| model | top-1 (%) | 2:4 layers | INT8 layers |')
    print('|---|---|---|---|')
    print(f'| dense tiny DeiT | {r["dense_top1"]:.2f} | 0 | 0 |')
    print(f'| GPUSQ (2:4 + INT8 QAT + KD) | {r["gpusq_top1"]:.2f} | '
          f'{r["sparse_layers"]} | {r["quantized_layers"]} |')
    print(f'\n2:4 violations in the GPUSQ checkpoint: {r["violations_24"]}')


if __name__ == '__main__':
    main()
