"""tools/analysis/benchmark_onnx.py on the tiny DeiT (structure of the
result; the DeiT-S numbers are in the README): both runtimes, every peer
setting, non-degenerate outputs on random weights."""
import json
import math

import numpy as np
import pytest

from gpusq_mm.deploy.cpu_benchmark import summarize
from gpusq_mm.deploy.exporter import SPIN_MODES, ort_session_options
from gpusq_mm.deploy.latency import runner_for
from tests.utils import run_tool

from .conftest import demo_config


def test_benchmark_tiny_deit(data_cwd, tmp_path):
    pytest.importorskip('openvino', reason='the CPU benchmark times '
                        'OpenVINO (make setup installs openvino)')
    out = tmp_path / 'bench'
    proc = run_tool('analysis/benchmark_onnx.py', [
        demo_config('deit_tiny_dense.py'), '--shape', '32', '32',
        '--repeats', '3', '--warmup', '1', '--calib-batches', '2',
        '--peers', 'u8s8_qdq', 'u8s8_qoperator', '--profile',
        '--work-dir', str(out)],
        cwd=data_cwd)
    result = json.loads((out / 'benchmark.json').read_text())
    kinds = ['ort_fp32', 'ort_gpusq_int8', 'ort_gpusq_int8_lowered',
             'ov_fp32', 'ov_gpusq_int8', 'ort_qs_u8s8_qdq', 'ov_qs_u8s8_qdq',
             'ort_qs_u8s8_qoperator']
    assert list(result['median_ms']) == kinds
    # OpenVINO does not convert ONNX Runtime's QOperator ops: said, not
    # hidden
    assert list(result['skipped']) == ['ov_qs_u8s8_qoperator']
    assert all(len(result['times_ms'][k]) == 3 for k in kinds)
    assert result['threads'] == 2 and result['input_shape'] == [1, 3, 32, 32]
    # ORT's workers spin within a run only, unless asked otherwise
    assert result['spin'] == 'run' and 'spinning: run' in proc.stdout
    assert result['speedup_vs_fp32']['ort_fp32'] == 1.0
    assert result['speedup_vs_fp32']['ov_fp32'] == 1.0
    assert result['peers']['ort'] in ('ort_qs_u8s8_qdq',
                                      'ort_qs_u8s8_qoperator')
    assert result['peers']['ov'] == 'ov_qs_u8s8_qdq'
    # the demo DeiT's head is zero-initialised: re-initialised, so the
    # cosines compare real logits (a zero head would give NaN)
    assert result['reinitialised_zero_layers'] == ['head.layers.head']
    cos = result['cosine_vs_fp32']
    assert cos['ov_fp32'] > 0.9999 and cos['ort_gpusq_int8'] > 0.9
    assert cos['ov_gpusq_int8'] > 0.9
    # DeiT: the 17 GEMMs run on uint8 activations in ORT; same outputs
    low = result['ort_lowering']
    assert low['conv_weights_folded'] == low['clips_to_max'] == \
        low['pointwise_to_matmul'] == 0
    assert low['integer_matmuls'] == 17 and low['max_rel_diff'] <= 1e-5
    assert result['quantized_layers'] == 17 and result['sparse_layers'] == 16
    assert '| OpenVINO | gpusq_int8 |' in proc.stdout
    assert 'best quantize_static setting' in proc.stdout
    # per-operator profiles: the int8 GEMMs show up as such on both
    profile = json.loads((out / 'profile.json').read_text())
    ort_ops = {r['op'] for r in profile['ort_gpusq_int8_lowered']}
    assert 'MatMulIntegerToFloat' in ort_ops
    assert 'MatMulIntegerToFloat' not in {r['op']
                                          for r in profile['ort_fp32']}
    ov_kernels = ' '.join(r['kernel'] for r in profile['ov_gpusq_int8'])
    assert 'i8' in ov_kernels.lower()
    assert 'i8' not in ' '.join(r['kernel'] for r in profile['ov_fp32'])
    assert all(abs(sum(r['share'] for r in rows) - 1) < 1e-6
               for rows in profile.values())


def _timed(ms: dict, zero: str = '') -> dict:
    out = np.arange(1.0, 11.0)
    return {k: dict(median_ms=v, outputs=[out * 0 if k == zero else out])
            for k, v in ms.items()}


def test_summarize_ratios_and_zero_outputs():
    ms = dict(ort_fp32=40.0, ort_gpusq_int8_lowered=20.0, ov_fp32=30.0,
              ov_gpusq_int8=10.0, ort_qs_a=25.0, ort_qs_b=50.0, ov_qs_a=12.0,
              ov_qs_b=11.0)
    res = summarize(_timed(ms))
    assert res['peers'] == dict(ort='ort_qs_a', ov='ov_qs_b')
    assert res['targets'] == dict(ov_int8_vs_ov_fp32=3.0,
                                  ov_int8_vs_ov_peer=1.1,
                                  ort_lowered_vs_ort_fp32=2.0,
                                  ort_lowered_vs_ort_peer=1.25)
    assert res['speedup_vs_fp32']['ov_qs_a'] == 2.5
    assert res['speedup_vs_ort_fp32']['ov_gpusq_int8'] == 4.0
    # an all-zero output agrees on nothing: NaN, never 1.0
    res = summarize(_timed(ms, zero='ov_gpusq_int8'))
    assert math.isnan(res['cosine_vs_fp32']['ov_gpusq_int8'])
    assert res['cosine_vs_fp32']['ov_fp32'] == pytest.approx(1.0)


def test_spin_modes_set_ort_options():
    entries = ('session.intra_op.allow_spinning',
               'session.force_spinning_stop')

    def entry(opts, key):
        try:
            return opts.get_session_config_entry(key)
        except RuntimeError:  # not set
            return None

    def config(spin):
        opts = ort_session_options(2, spin)
        assert opts.intra_op_num_threads == 2
        return [entry(opts, k) for k in entries]

    assert SPIN_MODES == ('always', 'run', 'never')
    assert config('always') == [None, None]  # ORT's defaults
    assert config('run') == [None, '1']
    assert config('never') == ['0', None]
    with pytest.raises(ValueError, match=r"spin must be one of .*'sometimes'"):
        ort_session_options(2, 'sometimes')
    with pytest.raises(ValueError, match="runtime must be 'ort' or 'ov', "
                       "got 'trt'"):
        runner_for('trt', 'model.onnx')
