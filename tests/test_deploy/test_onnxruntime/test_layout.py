"""The layout pass of the ONNX Runtime lowering
(gpusq_mm.deploy.onnxruntime.layout): token <-> NHWC transpose chains around a
Reshape become one Reshape with the very same output values."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from gpusq_mm.deploy.exporter import ort_session
from gpusq_mm.deploy.onnxruntime.layout import fold_layout_transposes

N, H, W, C = 2, 3, 4, 8


def _token_graph(const_shape: np.ndarray = None):
    """``tokens -> NCHW -> NHWC -> (x + 1) -> NCHW -> tokens``, the way
    ``nlc_to_nchw`` / pointwise-as-MatMul / ``nchw_to_nlc`` export it;
    the way back computes its target shape from ``Shape`` of the NCHW
    tensor (as the exporter does), the way in uses ``const_shape`` or a
    computed shape."""
    inits = [numpy_helper.from_array(np.array([-1], np.int64), 'minus1'),
             numpy_helper.from_array(np.array([0], np.int64), 'zero'),
             numpy_helper.from_array(np.array([2], np.int64), 'two'),
             numpy_helper.from_array(np.array([H, W], np.int64), 'hw'),
             numpy_helper.from_array(np.array(1, np.float32), 'one')]
    nodes = [helper.make_node('Transpose', ['x'], ['ncl'], perm=[0, 2, 1])]
    if const_shape is None:
        nodes += [
            helper.make_node('Shape', ['ncl'], ['ncl_shape']),
            helper.make_node('Slice', ['ncl_shape', 'zero', 'two'], ['nc']),
            helper.make_node('Concat', ['nc', 'hw'], ['nchw_shape'], axis=0)]
    else:
        inits.append(numpy_helper.from_array(const_shape, 'nchw_shape'))
    nodes += [
        helper.make_node('Reshape', ['ncl', 'nchw_shape'], ['nchw']),
        helper.make_node('Transpose', ['nchw'], ['nhwc'], perm=[0, 2, 3, 1]),
        helper.make_node('Add', ['nhwc', 'one'], ['nhwc1']),
        helper.make_node('Transpose', ['nhwc1'], ['back'], perm=[0, 3, 1, 2]),
        helper.make_node('Shape', ['back'], ['back_shape']),
        helper.make_node('Slice', ['back_shape', 'zero', 'two'], ['nc2']),
        helper.make_node('Concat', ['nc2', 'minus1'], ['ncl_shape2'],
                         axis=0),
        helper.make_node('Reshape', ['back', 'ncl_shape2'], ['ncl2']),
        helper.make_node('Transpose', ['ncl2'], ['y'], perm=[0, 2, 1]),
    ]
    graph = helper.make_graph(
        nodes, 'g',
        [helper.make_tensor_value_info('x', TensorProto.FLOAT, [N, H * W, C])],
        [helper.make_tensor_value_info('y', TensorProto.FLOAT,
                                       [N, H * W, C])], inits)
    return helper.make_model(graph,
                             opset_imports=[helper.make_opsetid('', 17)])


def _run(model, x):
    return ort_session(model.SerializeToString(), 1).run(None, {'x': x})[0]


@pytest.mark.parametrize('const_shape', [
    None, np.array([N, C, H, W], np.int64),
    np.array([0, C, H, W], np.int64)])
def test_token_transposes_fold(const_shape):
    model = _token_graph(const_shape)
    lowered = onnx.ModelProto()
    lowered.CopyFrom(model)
    assert len(fold_layout_transposes(lowered)) == 2
    onnx.checker.check_model(lowered, full_check=True)
    assert not [n for n in lowered.graph.node if n.op_type == 'Transpose']
    x = np.random.default_rng(0).standard_normal((N, H * W, C)).astype(
        np.float32)
    np.testing.assert_array_equal(_run(lowered, x), _run(model, x))
    np.testing.assert_array_equal(_run(lowered, x), x + 1)


def test_zero_past_first_entry_is_left_alone():
    """0 in a Reshape target copies the input's dimension at that index;
    a permuted 0 would copy the wrong one."""
    model = _token_graph(np.array([N, 0, H, W], np.int64))
    lowered = onnx.ModelProto()
    lowered.CopyFrom(model)
    # only the way back (computed shape) folds
    assert len(fold_layout_transposes(lowered)) == 1
    assert [n.op_type for n in lowered.graph.node].count('Transpose') == 2
