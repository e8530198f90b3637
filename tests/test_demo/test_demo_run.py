"""``tools/demo.py --quick --tasks cls``: the whole demo pipeline on a few
images (the numbers are meaningless; the report's structure and the facts
that do not depend on training length are checked)."""
import json

import pytest

from tests.utils import run_tool


@pytest.mark.slow
def test_quick_demo_cls(tmp_path):
    work = tmp_path / 'demo'
    proc = run_tool('demo.py', ['--quick', '--tasks', 'cls', '--work-dir',
                                str(work)], cwd=str(tmp_path))
    report = json.loads((work / 'report.json').read_text())
    task = report['tasks']['cls']
    assert set(task['metrics']) == {'dense', 'control', '2:4', '2:4+INT8'}
    assert all(0 <= m['top-1'] <= 100 for m in task['metrics'].values())
    # the control is the dense model trained for exactly GPUSQ's schedule
    from mmengine.config import Config
    ctrl = Config.fromfile(str(work / 'cls' / 'control' /
                               'deit-tiny_60e_synthetic-cls.py'))
    ours = Config.fromfile(str(work / 'cls' / 'gpusq' /
                               'gpusq_deit-tiny_60e_synthetic-cls.py'))
    assert ctrl.load_from == task['checkpoints']['dense']
    for key in ('train_cfg', 'param_scheduler', 'optim_wrapper',
                'randomness', 'train_dataloader'):
        assert ctrl[key] == ours[key], key
    stats = task['stats']
    assert stats['phase'] == 'Q' and stats['violations_24'] == 0
    # scope='backbone' (the base config's default): the 16 block Linears are
    # 2:4 and INT8; the head stays float
    assert stats['sparse_layers'] == 16 and stats['quantized_layers'] == 16
    # 96-wide layers: the per-channel float32 scales keep it above 6.0x
    assert 6.0 <= stats['sparse_ratio'] < 6.4
    deploy = task['deploy']
    assert deploy['status'] == 'ok', deploy.get('reason')
    assert all(p['passed'] for p in deploy['parity'].values())
    assert [r['batch'] for r in deploy['latency']] == [1, 8]
    assert all(r['fp32_ms'] > 0 and r['int8_ms'] > 0
               for r in deploy['latency'])
    assert deploy['onnx_bytes']['int8'] < deploy['onnx_bytes']['fp32'] / 2
    # OpenVINO: both deploys pass parity (checked above), both IRs timed,
    # the INT8 IR's GEMMs run in int8
    assert set(deploy['parity']) == {'fp32', 'int8', 'ov_fp32', 'ov_int8'}
    assert all(r['ov_fp32_ms'] > 0 and r['ov_int8_ms'] > 0
               for r in deploy['latency'])
    ov = deploy['openvino']['ov_int8']
    assert ov['int8_gemm_layers'] == 16 and ov['int8_weight_bytes'] > 0
    assert deploy['openvino']['ov_fp32']['int8_weight_bytes'] == 0
    for name in ('accuracy.png', 'sparsity.png', 'sizes.png', 'latency.png'):
        assert (work / name).stat().st_size > 1000, name
    md = (work / 'report.md').read_text()
    assert '| cls | 3x64x64 | 8 |' in md and 'GPUSQ - control' in md
    assert '| cls | classification' in proc.stdout
