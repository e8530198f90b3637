"""tools/analysis/check_trt.py: on a machine without TensorRT or a GPU it
exits non-zero with a message naming what is missing (CI never needs
TensorRT); its per-layer table is read from the engine inspector's JSON."""
import os.path as osp
import subprocess
import sys

from tests.utils import REPO

SCRIPT = osp.join(REPO, 'tools', 'analysis', 'check_trt.py')


def test_exits_with_reason_without_tensorrt(tmp_path):
    # run the script with `import tensorrt` failing, whether or not this
    # machine has TensorRT (a None entry in sys.modules makes it raise)
    runner = ("import runpy, sys; sys.modules['tensorrt'] = None; "
              f"sys.argv = [{SCRIPT!r}, '--demo-dir', {str(tmp_path)!r}]; "
              f"runpy.run_path({SCRIPT!r}, run_name='__main__')")
    proc = subprocess.run([sys.executable, '-c', runner],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert 'TensorRT is not installed' in proc.stderr


def test_layer_rows_from_inspector_json():
    sys.path.insert(0, osp.dirname(SCRIPT))
    try:
        from check_trt import layer_rows
    finally:
        sys.path.pop(0)
    info = {'Layers': [
        {'Name': 'fc1', 'LayerType': 'CaskGemmConvolution',
         'Outputs': [{'Format/Datatype': 'Row major Int8 format'}],
         'TacticName': 'sm80_xmma_fprop_sparse_conv_interleaved_i8i8'},
        {'Name': 'ln', 'LayerType': 'Normalization',
         'Outputs': [{'Format/Datatype': 'Row major linear FP16 format'}],
         'TacticName': ''}, 'not a layer']}
    rows = layer_rows(info)
    assert [(r['name'], r['precision'], r['sparse']) for r in rows] == [
        ('fc1', 'INT8', True), ('ln', 'FP16', False)]
