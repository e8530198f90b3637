"""The integer passes of the ONNX Runtime lowering
(gpusq_mm.deploy.onnxruntime.int8) on hand-built Q/DQ graphs: the quantized
integers stay exactly those of the exporter's ``Clip -> QuantizeLinear``
(also at and beyond the saturation points), and the explicit
``MatMulIntegerToFloat`` gives the DQ ``MatMul + Add`` result."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from gpusq_mm.deploy.exporter import ort_session
from gpusq_mm.deploy.onnxruntime.int8 import (U8_ZERO_POINT, integer_matmuls,
                                              quantize_then_clip)

SCALE = np.float32(0.05)


def _gelu(x: str, out: str) -> list:
    """PyTorch's exported exact GELU, ``x * (erf(x / sqrt 2) + 1) * 0.5``."""
    def const(name, value):
        return helper.make_node('Constant', [], [name], value=helper.
                                make_tensor(name, TensorProto.FLOAT, [],
                                            [value]))
    return [const('sqrt2', 2 ** 0.5), const('one', 1.0),
            const('half', 0.5),
            helper.make_node('Div', [x, 'sqrt2'], ['g_div']),
            helper.make_node('Erf', ['g_div'], ['g_erf']),
            helper.make_node('Add', ['g_erf', 'one'], ['g_add']),
            helper.make_node('Mul', [x, 'g_add'], ['g_mul']),
            helper.make_node('Mul', ['g_mul', 'half'], [out])]


def _qdq_linear(relu: bool = False, extra_reader: bool = False,
                gelu: bool = False, scale: np.float32 = SCALE):
    """``[Relu|GELU] -> Clip(-127 s) -> Q -> DQ -> MatMul(DQ(W)) + b`` with
    the dequantized activation as a second output."""
    gen = np.random.default_rng(0)
    w = gen.integers(-127, 128, (16, 8)).astype(np.int8)
    inits = [
        numpy_helper.from_array(np.array(-127 * scale, np.float32), 'low'),
        numpy_helper.from_array(np.array(scale), 's'),
        numpy_helper.from_array(np.array(0, np.int8), 'zp'),
        numpy_helper.from_array(w, 'w'),
        numpy_helper.from_array(
            gen.uniform(0.001, 0.01, 8).astype(np.float32), 'sw'),
        numpy_helper.from_array(np.zeros(8, np.int8), 'zw'),
        numpy_helper.from_array(gen.standard_normal(8).astype(np.float32),
                                'b'),
    ]
    nodes = [helper.make_node('Relu', ['x'], ['r'])] if relu else \
        _gelu('x', 'r') if gelu else []
    nodes += [
        helper.make_node('Clip', ['r' if relu or gelu else 'x', 'low'],
                         ['c']),
        helper.make_node('QuantizeLinear', ['c', 's', 'zp'], ['q']),
        helper.make_node('DequantizeLinear', ['q', 's', 'zp'], ['xq']),
        helper.make_node('DequantizeLinear', ['w', 'sw', 'zw'], ['wf'],
                         axis=1),
        helper.make_node('MatMul', ['xq', 'wf'], ['mm']),
        helper.make_node('Add', ['mm', 'b'], ['y']),
    ]
    outputs = [helper.make_tensor_value_info('y', TensorProto.FLOAT,
                                             [2, 5, 8]),
               helper.make_tensor_value_info('xq', TensorProto.FLOAT,
                                             [2, 5, 16])]
    if extra_reader:  # the int8 tensor itself is a graph output
        outputs.append(helper.make_tensor_value_info('q', TensorProto.INT8,
                                                     [2, 5, 16]))
    graph = helper.make_graph(
        nodes, 'g',
        [helper.make_tensor_value_info('x', TensorProto.FLOAT, [2, 5, 16])],
        outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid('',
                                                                       17)])


def _inputs() -> np.ndarray:
    gen = np.random.default_rng(1)
    x = gen.standard_normal((2, 5, 16)).astype(np.float32) * 4
    # saturation edges: the narrow range ends at -127 (not -128)
    edges = np.array([-127.5, -127.49, -127, -128, -200, 127.49, 127.5, 128,
                      300, 0.5, -0.5, 1.5], np.float32) * SCALE
    x.reshape(-1)[:edges.size] = edges
    return x


def _run(model, x):
    sess = ort_session(model.SerializeToString(), 1)
    return sess.run(None, {'x': x})


@pytest.mark.parametrize('relu', [False, True])
def test_integer_gemm_keeps_integers_and_result(relu):
    model = _qdq_linear(relu)
    lowered = onnx.ModelProto()
    lowered.CopyFrom(model)
    assert integer_matmuls(lowered) == ['']  # the one (unnamed) MatMul
    clips = quantize_then_clip(lowered)
    onnx.checker.check_model(lowered, full_check=True)
    ops = [n.op_type for n in lowered.graph.node]
    assert 'MatMul' not in ops and 'Add' not in ops
    assert ops.count('MatMulIntegerToFloat') == 1
    inits = {i.name: numpy_helper.to_array(i)
             for i in lowered.graph.initializer}
    assert inits[U8_ZERO_POINT].dtype == np.uint8
    assert inits[U8_ZERO_POINT] == 128
    if relu:  # x >= 0: the Clip has nothing to do
        assert clips == dict(moved=0, dropped=1) and 'Clip' not in ops
    else:  # the Clip acts on the uint8 integers
        assert clips == dict(moved=1, dropped=0)
        assert ops.index('Clip') == ops.index('QuantizeLinear') + 1
    x = _inputs()
    (y_ref, xq_ref), (y, xq) = _run(model, x), _run(lowered, x)
    # the same integers, including -127.5 s (rounds to -128, clipped to
    # -127 either way) and everything below
    np.testing.assert_array_equal(xq, xq_ref)
    assert xq.min() >= -127 * SCALE and xq.max() <= 127 * SCALE
    np.testing.assert_allclose(y, y_ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize('scale', [SCALE, np.float32(0.001)])
def test_clip_behind_gelu_dropped_only_when_bounded(scale):
    """GELU >= -0.16997: with s = 0.05 no value can quantize below -127 and
    the Clip goes; with s = 0.001 GELU's minimum is -170 steps and the
    Clip must stay (dropping it would give -128 there: the inputs below
    reach the minimum, so the check on the integers would fail)."""
    model = _qdq_linear(gelu=True, scale=scale)
    lowered = onnx.ModelProto()
    lowered.CopyFrom(model)
    integer_matmuls(lowered)
    clips = quantize_then_clip(lowered)
    big = scale == SCALE
    assert clips == dict(moved=0 if big else 1, dropped=1 if big else 0)
    x = np.linspace(-3, 3, 160, dtype=np.float32).reshape(2, 5, 16)
    x.reshape(-1)[0] = -0.7518  # GELU's minimum, -0.16997
    (_, xq_ref), (_, xq) = _run(model, x), _run(lowered, x)
    np.testing.assert_array_equal(xq, xq_ref)
    assert xq.min() >= -127 * scale
    if not big:
        assert xq.min() == pytest.approx(-127 * scale)  # clipped


def test_int8_tensor_read_elsewhere_stays():
    """A quantizer whose int8 tensor has a reader other than a DQ or an
    integer GEMM keeps its zero point, its Clip and its MatMul."""
    model = _qdq_linear(extra_reader=True)
    before = model.SerializeToString()
    assert integer_matmuls(model) == []
    assert quantize_then_clip(model) == dict(moved=0, dropped=0)
    assert model.SerializeToString() == before
