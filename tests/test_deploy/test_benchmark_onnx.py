"""tools/analysis/benchmark_onnx.py on the tiny DeiT (structure of the
result; the DeiT-S numbers are in the README)."""
import json

from tests.utils import run_tool

from .conftest import demo_config


def test_benchmark_tiny_deit(data_cwd, tmp_path):
    out = tmp_path / 'bench'
    proc = run_tool('analysis/benchmark_onnx.py', [
        demo_config('deit_tiny_dense.py'), '--shape', '32', '32',
        '--repeats', '3', '--warmup', '1', '--calib-batches', '2',
        '--work-dir', str(out)], cwd=data_cwd)
    result = json.loads((out / 'benchmark.json').read_text())
    kinds = ['fp32', 'gpusq_int8', 'gpusq_int8_ort', 'ort_quantize_static']
    assert list(result['median_ms']) == kinds
    assert all(len(result['times_ms'][k]) == 3 for k in kinds)
    assert result['threads'] == 2 and result['input_shape'] == [1, 3, 32, 32]
    assert result['speedup_vs_fp32']['fp32'] == 1.0
    # DeiT: no Conv weight to fold, no Clip behind a Conv; the 17 GEMMs
    # run on uint8 activations (patch embedding conv stays float); same
    # outputs
    low = result['ort_lowering']
    assert low['conv_weights_folded'] == low['clips_to_max'] == \
        low['pointwise_to_matmul'] == 0
    assert low['integer_matmuls'] == 17
    assert low['max_rel_diff'] <= 1e-5 and result['spinning'] is True
    assert result['quantized_layers'] == 17 and result['sparse_layers'] == 16
    assert result['cosine_vs_fp32']['gpusq_int8'] > 0.9
    assert '| gpusq_int8 |' in proc.stdout
    assert (out / 'benchmark.md').read_text().count('\n|') == 6
