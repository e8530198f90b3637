"""ONNX export, checking and ONNX Runtime execution of deploy modules."""
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import Tensor, nn

MIN_OPSET = 17


def export_onnx(module: nn.Module,
                inputs: Tensor,
                path: str,
                output_names: Sequence[str],
                opset: int = MIN_OPSET,
                input_name: str = 'input',
                dynamic_axes: Optional[Dict[str, Dict[int, str]]] = None
                ) -> str:
    """Export ``module(inputs)`` with the TorchScript-based exporter.

    The export keeps the module's own precision (FP32 for ONNX Runtime;
    see :func:`gpusq_mm.deploy.fp16.convert_to_fp16` for the TensorRT
    flavour). ``TrainingMode.PRESERVE`` on an eval-mode module skips the
    exporter's Conv+BatchNorm folding, so every weight keeps the name of
    its buffer and the verify step can find it.

    Args:
        module (nn.Module): Traceable module, ``forward(inputs) -> tuple``.
        inputs (Tensor): Example input ``(N, 3, H, W)``.
        path (str): Output ``.onnx`` file.
        output_names (Sequence[str]): Names of the outputs.
        opset (int): ONNX opset, at least 17. Defaults to 17.
        input_name (str): Name of the input. Defaults to 'input'.
        dynamic_axes (dict, optional): ``torch.onnx.export`` dynamic axes.
            Defaults to None (static shapes).

    Returns:
        str: ``path``, after ``onnx.checker`` accepted it.
    """
    import onnx
    if opset < MIN_OPSET:
        raise ValueError(f'opset {opset} is too old: explicit Q/DQ with '
                         f'per-channel scales needs opset >= {MIN_OPSET}')
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    module.eval()
    with torch.no_grad():
        torch.onnx.export(
            module, (inputs, ), path, input_names=[input_name],
            output_names=list(output_names), opset_version=opset,
            dynamic_axes=dynamic_axes, do_constant_folding=True,
            training=torch.onnx.TrainingMode.PRESERVE, dynamo=False)
    onnx.checker.check_model(path, full_check=True)
    return path


def ort_session(path, threads: int = 0, optimized_path: str = '',
                spinning: bool = True):
    """An ONNX Runtime CPU session (``threads`` 0 = ORT's default).

    ``path`` may also be the serialized model (bytes). ``spinning=False``
    stops idle intra-op workers from busy-waiting: several sessions timed in
    turn on a machine with as many cores as threads otherwise slow each
    other down (``tools/analysis/benchmark_onnx.py --no-spin``).
    """
    import onnxruntime as ort
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    if not spinning:
        opts.add_session_config_entry('session.intra_op.allow_spinning', '0')
    if optimized_path:
        opts.optimized_model_filepath = optimized_path
    opts.log_severity_level = 3
    return ort.InferenceSession(path, opts,
                                providers=['CPUExecutionProvider'])


def run_ort(path: str, inputs: Tensor, threads: int = 0) -> List[np.ndarray]:
    """Run ``path`` on ``inputs`` with ONNX Runtime (CPU)."""
    return run_session(ort_session(path, threads), inputs)


def run_session(sess, inputs: Tensor) -> List[np.ndarray]:
    """Run an open ONNX Runtime session on ``inputs`` (its first input)."""
    name = sess.get_inputs()[0].name
    return sess.run(None, {name: inputs.detach().cpu().numpy()})


@torch.no_grad()
def run_torch(module: nn.Module, inputs: Tensor) -> List[np.ndarray]:
    """Run ``module`` and return its outputs as float numpy arrays."""
    outs = module.eval()(inputs)
    outs = outs if isinstance(outs, (tuple, list)) else (outs, )
    return [o.detach().cpu().numpy() for o in outs]
