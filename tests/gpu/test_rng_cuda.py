"""CUDA generators in gpusq_mm.utils.rng (GPU machines only).

Loads ``rng.py`` by path so it also runs where only torch and numpy are
installed: ``python tests/gpu/test_rng_cuda.py``.
"""
import importlib.util
import io
import os.path as osp

import pytest
import torch

RNG_PY = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(
    __file__)))), 'gpusq_mm', 'utils', 'rng.py')
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason='needs a CUDA GPU')


def _rng():
    spec = importlib.util.spec_from_file_location('gpusq_rng', RNG_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _draws() -> list:
    return [torch.rand(4, device='cuda').cpu(), torch.rand(2)]


def test_cuda_state_round_trip_and_isolation():
    rng = _rng()
    torch.manual_seed(5)
    torch.rand(1, device='cuda')  # CUDA generators initialised
    state = rng.get_rng_state()
    assert len(state['cuda']) == torch.cuda.device_count()
    buf = io.BytesIO()
    torch.save(state, buf)  # checkpoint-safe types only
    buf.seek(0)
    import numpy as np  # the numpy part of the project loader allowlist
    allow = [np._core.multiarray._reconstruct, np.ndarray, np.dtype,
             type(np.dtype('uint32'))]
    with torch.serialization.safe_globals(allow):
        loaded = torch.load(buf, weights_only=True)
    expected = _draws()
    rng.set_rng_state(loaded)
    got = _draws()
    assert all(torch.equal(a, b) for a, b in zip(expected, got))

    rng.set_rng_state(state)
    with rng.isolated_rng(9):
        inner = _draws()
    with rng.isolated_rng(9):
        assert all(torch.equal(a, b) for a, b in zip(inner, _draws()))
    after = _draws()  # the outer CUDA and CPU streams are untouched
    assert all(torch.equal(a, b) for a, b in zip(expected, after))
    assert not torch.equal(expected[0], inner[0])


if __name__ == '__main__':
    test_cuda_state_round_trip_and_isolation()
    print('cuda rng ok on', torch.cuda.get_device_name(0), torch.__version__)
