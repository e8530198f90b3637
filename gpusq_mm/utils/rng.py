"""Capture, restore and isolate the random number generators of a process.

A training step draws from Python's ``random`` (some transforms), NumPy's
global generator (most OpenMMLab data transforms, e.g. ``RandomFlip``),
torch's CPU generator (dropout, RoI samplers, DataLoader base seeds) and the
CUDA generators. Resuming exactly needs all of them; see
:class:`gpusq_mm.engine.hooks.RNGStateHook`.

The state is kept in checkpoint-safe types only (tensors, numpy arrays,
ints, strings, tuples), so checkpoints holding it load with
``weights_only=True``.
"""
import random
from contextlib import contextmanager
from typing import Any, Dict, Iterator

import numpy as np
import torch


def get_rng_state() -> Dict[str, Any]:
    """Return the state of every global generator of this process.

    Returns:
        dict: ``python``, ``numpy``, ``torch`` and ``cuda`` (a list, empty
        without CUDA) states.
    """
    cuda = []
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        cuda = [s.clone() for s in torch.cuda.get_rng_state_all()]
    py_version, py_state, py_gauss = random.getstate()
    return dict(
        python=(py_version, torch.tensor(py_state, dtype=torch.int64),
                py_gauss),
        numpy=np.random.get_state(legacy=True),
        torch=torch.get_rng_state(),
        cuda=cuda)


def set_rng_state(state: Dict[str, Any]) -> None:
    """Restore generators from :func:`get_rng_state`'s result.

    Args:
        state (dict): A state from :func:`get_rng_state`.

    Raises:
        ValueError: The dict misses one of the keys.
    """
    missing = {'python', 'numpy', 'torch'} - set(state)
    if missing:
        raise ValueError(f'RNG state lacks {sorted(missing)}; it was not '
                         'written by gpusq_mm.utils.rng.get_rng_state')
    py_version, py_state, py_gauss = state['python']
    random.setstate((py_version, tuple(int(v) for v in py_state), py_gauss))
    np.random.set_state(state['numpy'])
    torch.set_rng_state(state['torch'])
    cuda = state.get('cuda') or []
    if cuda and torch.cuda.is_available() and \
            len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def seed_all(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextmanager
def isolated_rng(seed: int) -> Iterator[None]:
    """Run a block with freshly seeded generators, then put the previous
    states back.

    The block's random draws are reproducible wherever it runs (e.g. QAT
    calibration at the start of phase Q, also when a resumed run starts it
    at another point of the step), and the outer random stream is exactly
    as if the block had not run.

    Args:
        seed (int): Seed for the block.
    """
    saved = get_rng_state()
    seed_all(seed)
    try:
        yield
    finally:
        set_rng_state(saved)
