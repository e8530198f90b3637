"""ONNX to OpenVINO IR, keeping int8 weights int8 and float weights FP32."""
import os
import os.path as osp
import tempfile
from typing import Dict

INSTALL_HINT = ("the 'openvino' backend needs the openvino package: "
                "pip install 'openvino>=2025.0' (make setup installs it)")


def require_openvino():
    """Import and return ``openvino``.

    Raises:
        ImportError: It is not installed; the message says how to install
            it.
    """
    try:
        import openvino
    except ImportError as e:
        raise ImportError(f'{INSTALL_HINT} ({e})') from e
    return openvino


def ir_weight_bytes(model) -> Dict[str, int]:
    """Bytes of the model's constants per element type, e.g.
    ``{'i8': ..., 'f32': ..., 'i64': ...}``.

    Args:
        model (openvino.Model): A read or converted model.
    """
    found: Dict[str, int] = {}
    for op in model.get_ordered_ops():
        if op.get_type_name() != 'Constant':
            continue
        kind = op.get_element_type().get_type_name()
        found[kind] = found.get(kind, 0) + int(op.get_byte_size())
    return found


def _unsigned_copy(onnx_path: str, out_dir: str) -> tuple:
    """A temporary copy of ``onnx_path`` with uint8 activation quantizers
    (:func:`.graph.unsigned_activations`); returns ``(path, count)``."""
    import onnx

    from .graph import unsigned_activations
    model = onnx.load(onnx_path)
    count = len(unsigned_activations(model))
    handle, path = tempfile.mkstemp(suffix='.onnx', dir=out_dir)
    os.close(handle)
    onnx.save(model, path)
    return path, count


def convert_to_ir(onnx_path: str, xml_path: str,
                  compress_to_fp16: bool = False,
                  unsigned_activations: bool = False) -> dict:
    """Convert ``onnx_path`` to OpenVINO IR ``xml_path`` (+ ``.bin``).

    OpenVINO's ``save_model`` compresses float weights to FP16 by default;
    here it does not unless asked, so the FP32 reference stays FP32 and
    the IR computes what the ONNX computes. int8 initializers behind a
    ``DequantizeLinear`` stay int8 constants either way.

    Args:
        onnx_path (str): The ONNX file (the verified Q/DQ export).
        xml_path (str): Output ``.xml``; the weights go to the ``.bin``
            beside it.
        compress_to_fp16 (bool): OpenVINO's FP16 weight compression.
            Defaults to False.
        unsigned_activations (bool): Convert the graph with uint8
            activation quantizers (same integers shifted by 128, see
            :mod:`.graph`). Defaults to False.

    Returns:
        dict: ``xml``, ``bin``, ``bin_bytes``, ``weight_bytes`` (per
        element type), ``int8_weight_bytes``, ``compress_to_fp16``,
        ``unsigned_activations`` (quantizers rewritten) and the
        ``openvino`` version.
    """
    ov = require_openvino()
    src, count = onnx_path, 0
    if unsigned_activations:
        src, count = _unsigned_copy(onnx_path,
                                    osp.dirname(osp.abspath(xml_path)))
    try:
        model = ov.convert_model(src)
        ov.save_model(model, xml_path, compress_to_fp16=compress_to_fp16)
    finally:
        if src != onnx_path:
            os.remove(src)
    bin_path = osp.splitext(xml_path)[0] + '.bin'
    weights = ir_weight_bytes(ov.Core().read_model(xml_path))
    return dict(xml=xml_path, bin=bin_path, bin_bytes=osp.getsize(bin_path),
                weight_bytes=weights, int8_weight_bytes=weights.get('i8', 0),
                compress_to_fp16=compress_to_fp16,
                unsigned_activations=count, openvino=ov.get_version())
