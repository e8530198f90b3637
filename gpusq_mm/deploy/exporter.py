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
    see :func:`gpusq_mm.deploy.tensorrt.fp16.convert_to_fp16` for the TensorRT
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


#: How ONNX Runtime's idle intra-op workers wait (``spin`` below):
#: ``'always'`` busy-wait, during a run and after it (ORT's default);
#: ``'run'`` busy-wait during a run and stop after each run
#: (``session.force_spinning_stop``); ``'never'`` sleep whenever idle
#: (``session.intra_op.allow_spinning=0``). Sessions timed in turn on a
#: machine with no more cores than threads slow each other down under
#: ``'always'``; ``'run'`` avoids that and times each run as a lone session
#: with ORT's defaults runs it, while ``'never'`` makes every parallel
#: operator wake a sleeping worker, which penalises graphs with many small
#: operators (``benchmarks/ort_threading.py``).
SPIN_MODES = ('always', 'run', 'never')


def ort_session_options(threads: int = 0, spin: str = 'always'):
    """``onnxruntime.SessionOptions`` with ``threads`` intra-op threads
    (0 = ORT's default) and the worker wait mode ``spin`` (see
    :data:`SPIN_MODES`)."""
    import onnxruntime as ort
    if spin not in SPIN_MODES:
        raise ValueError(f'spin must be one of {SPIN_MODES}, got {spin!r}')
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    if spin == 'never':
        opts.add_session_config_entry('session.intra_op.allow_spinning', '0')
    elif spin == 'run':
        opts.add_session_config_entry('session.force_spinning_stop', '1')
    opts.log_severity_level = 3
    return opts


def ort_session(path, threads: int = 0, optimized_path: str = '',
                spin: str = 'always'):
    """An ONNX Runtime CPU session (``threads`` 0 = ORT's default).

    ``path`` may also be the serialized model (bytes). ``spin`` is how idle
    workers wait (:data:`SPIN_MODES`); timing several sessions in turn
    needs ``'run'`` or ``'never'``.
    """
    import onnxruntime as ort
    opts = ort_session_options(threads, spin)
    if optimized_path:
        opts.optimized_model_filepath = optimized_path
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
