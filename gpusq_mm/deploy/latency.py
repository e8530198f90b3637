"""ONNX Runtime CPU latency of several graphs on the same input, timed
interleaved (A, B, C, A, B, C, ...) so that a load change on the machine
hits every graph alike."""
import time
from typing import Dict, List

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
              spinning: bool = True) -> Dict[str, dict]:
    """Time each graph of ``paths`` on ``inputs``.

    Args:
        paths (dict[str, str]): ``{label: ONNX file}``; each graph takes
            one input.
        inputs (np.ndarray): The input, float32.
        threads (int): ONNX Runtime intra-op threads. Defaults to 2.
        warmup (int): Untimed runs of each graph first. Defaults to 10.
        repeats (int): Timed runs of each graph. Defaults to 30.
        spinning (bool): Let ORT's idle worker threads spin (its default).
            With several sessions timed in turn on few cores, spinning
            threads of one session slow the next; False is the fair
            comparison there. Defaults to True.

    Returns:
        dict: ``{label: dict(median_ms, times_ms, outputs)}``; ``outputs``
        are the first run's outputs.
    """
    if repeats < 1:
        raise ValueError(f'repeats must be >= 1, got {repeats}')
    sessions = {k: ort_session(p, threads, spinning=spinning)
                for k, p in paths.items()}
    feeds = {k: {s.get_inputs()[0].name: inputs}
             for k, s in sessions.items()}
    outputs = {k: s.run(None, feeds[k]) for k, s in sessions.items()}
    for _ in range(warmup):
        for k, s in sessions.items():
            s.run(None, feeds[k])
    times: Dict[str, List[float]] = {k: [] for k in sessions}
    for _ in range(repeats):
        for k, s in sessions.items():
            start = time.perf_counter()
            s.run(None, feeds[k])
            times[k].append((time.perf_counter() - start) * 1e3)
    return {k: dict(median_ms=float(np.median(v)), times_ms=v,
                    outputs=outputs[k]) for k, v in times.items()}
