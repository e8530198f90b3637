"""CPU latency of several graphs (ONNX Runtime sessions, OpenVINO infer
requests) on the same input, timed interleaved (A, B, C, A, B, C, ...) so
that a load change on the machine hits every graph alike."""
import time
from typing import Callable, Dict, List

import numpy as np

from .exporter import ort_session


def batch_is_dynamic(path: str) -> bool:
    """Whether the first input of the ONNX graph at ``path`` has a
    symbolic (not fixed) batch dimension."""
    import onnx
    dim = onnx.load(path, load_external_data=False).graph.input[0] \
        .type.tensor_type.shape.dim[0]
    return not dim.HasField('dim_value')


def time_onnx(paths: Dict[str, str], inputs: np.ndarray, threads: int = 2,
              warmup: int = 10, repeats: int = 30,
              spin: str = 'run') -> Dict[str, dict]:
    """Time each graph of ``paths`` on ``inputs``.

    Args:
        paths (dict[str, str]): ``{label: ONNX file}``; each graph takes
            one input.
        inputs (np.ndarray): The input, float32.
        threads (int): ONNX Runtime intra-op threads. Defaults to 2.
        warmup (int): Untimed runs of each graph first. Defaults to 10.
        repeats (int): Timed runs of each graph. Defaults to 30.
        spin (str): How ORT's idle workers wait
            (:data:`.exporter.SPIN_MODES`). Defaults to 'run': they spin
            within a run, as a lone session's do, and stop after it, so the
            session timed next is not slowed down.

    Returns:
        dict: ``{label: dict(median_ms, times_ms, outputs)}``; ``outputs``
        are the first run's outputs.
    """
    runners = {k: ort_runner(p, threads, spin) for k, p in paths.items()}
    return time_runners(runners, inputs, warmup, repeats)


def ort_runner(path: str, threads: int = 2,
               spin: str = 'run') -> Callable[[np.ndarray], list]:
    """``inputs -> outputs`` of an ONNX Runtime CPU session of ``path``
    (``spin``: :data:`.exporter.SPIN_MODES`)."""
    sess = ort_session(path, threads, spin=spin)
    name = sess.get_inputs()[0].name
    return lambda x: sess.run(None, {name: x})


def runner_for(runtime: str, path: str, threads: int = 2,
               spin: str = 'run') -> Callable[[np.ndarray], list]:
    """``inputs -> outputs`` of ``path`` on ``runtime``: ``'ort'`` (an
    ONNX Runtime CPU session, :func:`ort_runner`) or ``'ov'`` (an OpenVINO
    IR compiled for the CPU at FP32 inference precision)."""
    if runtime == 'ov':
        from .openvino import OVRunner, compile_ir
        return OVRunner(compile_ir(path, threads))
    if runtime != 'ort':
        raise ValueError(f"runtime must be 'ort' or 'ov', got {runtime!r}")
    return ort_runner(path, threads, spin)


def time_runners(runners: Dict[str, Callable[[np.ndarray], list]],
                 inputs: np.ndarray, warmup: int = 10,
                 repeats: int = 30) -> Dict[str, dict]:
    """Time each runner (ONNX Runtime sessions, OpenVINO requests, ...)
    on ``inputs``, interleaved.

    Args:
        runners (dict): ``{label: inputs -> outputs}``.
        inputs (np.ndarray): The input, float32.
        warmup (int): Untimed runs of each first. Defaults to 10.
        repeats (int): Timed runs of each. Defaults to 30.

    Returns:
        dict: ``{label: dict(median_ms, times_ms, outputs)}``.
    """
    if repeats < 1:
        raise ValueError(f'repeats must be >= 1, got {repeats}')
    outputs = {k: run(inputs) for k, run in runners.items()}
    for _ in range(warmup):
        for run in runners.values():
            run(inputs)
    times: Dict[str, List[float]] = {k: [] for k in runners}
    for _ in range(repeats):
        for k, run in runners.items():
            start = time.perf_counter()
            run(inputs)
            times[k].append((time.perf_counter() - start) * 1e3)
    return {k: dict(median_ms=float(np.median(v)), times_ms=v,
                    outputs=outputs[k]) for k, v in times.items()}
