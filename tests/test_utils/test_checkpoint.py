"""The project's checkpoint loader: weights_only + allowlist, clear errors,
explicit per-file opt-in for trusted pickles."""
import collections
import os
import os.path as osp

import numpy as np
import pytest
import torch

from gpusq_mm.utils import (CheckpointLoadError, load_checkpoint_file,
                            register_safe_globals)
from gpusq_mm.utils.checkpoint import TRUSTED_ENV


class _RunsCode:
    """Unpickling this object runs a shell command (creates a file)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


class _Box:
    """A plain user type stored in a checkpoint."""


def _mmengine_like_checkpoint():
    from mmengine.logging import HistoryBuffer
    buf = HistoryBuffer()
    buf.update(0.5)
    buf.update(np.float64(0.25))
    return dict(
        meta=dict(epoch=1, iter=2, seed=np.int64(7),
                  dataset_meta=dict(classes=('a', 'b'))),
        state_dict=collections.OrderedDict(w=torch.arange(4.)),
        message_hub=dict(log_scalars={'train/loss': buf},
                         runtime_info=dict(lr=np.float32(0.1),
                                           arr=np.arange(3))))


def test_mmengine_checkpoint_loads(tmp_path):
    path = str(tmp_path / 'epoch_1.pth')
    torch.save(_mmengine_like_checkpoint(), path)
    ckpt = load_checkpoint_file(path)
    assert torch.equal(ckpt['state_dict']['w'], torch.arange(4.))
    buf = ckpt['message_hub']['log_scalars']['train/loss']
    assert buf.mean() == pytest.approx(0.375)
    assert ckpt['meta']['seed'] == 7
    np.testing.assert_array_equal(ckpt['message_hub']['runtime_info']['arr'],
                                  np.arange(3))


def test_malicious_pickle_refused_and_not_run(tmp_path):
    marker = tmp_path / 'pwned'
    path = str(tmp_path / 'evil.pth')
    torch.save({'state_dict': {}, 'x': _RunsCode(str(marker))}, path)
    with pytest.raises(CheckpointLoadError, match='safe allowlist') as err:
        load_checkpoint_file(path)
    assert 'system' in str(err.value)  # names the offending global
    assert not marker.exists()
    # the same through MMEngine's loader (load_from, --resume, teacher_ckpt)
    from mmengine.runner.checkpoint import _load_checkpoint

    import gpusq_mm  # noqa: F401  (routes MMEngine's CheckpointLoader)
    with pytest.raises(CheckpointLoadError):
        _load_checkpoint(path, map_location='cpu')
    assert not marker.exists()
    assert osp.getsize(path) > 0  # the file itself is left untouched


def test_truncated_checkpoint_clear_error(tmp_path):
    path = str(tmp_path / 'epoch_1.pth')
    torch.save(_mmengine_like_checkpoint(), path)
    data = open(path, 'rb').read()
    with open(path, 'wb') as f:
        f.write(data[:len(data) // 2])
    with pytest.raises(CheckpointLoadError, match='truncated or corrupted'):
        load_checkpoint_file(path)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match='does not exist'):
        load_checkpoint_file(str(tmp_path / 'nope.pth'))


def test_trusted_opt_in_is_per_file(tmp_path, monkeypatch):
    path = str(tmp_path / 'box.pth')
    other = str(tmp_path / 'other.pth')
    box = _Box()
    box.value = 2
    torch.save({'box': box}, path)
    torch.save({'box': box}, other)
    with pytest.raises(CheckpointLoadError, match=TRUSTED_ENV):
        load_checkpoint_file(path)
    assert load_checkpoint_file(path, trusted=True)['box'].value == 2
    monkeypatch.setenv(TRUSTED_ENV, path)
    assert load_checkpoint_file(path)['box'].value == 2
    with pytest.raises(CheckpointLoadError):
        load_checkpoint_file(other)  # only the listed file is trusted


def test_register_safe_globals(tmp_path, monkeypatch):
    from gpusq_mm.utils import checkpoint as ckpt_mod
    monkeypatch.setattr(ckpt_mod, '_extra_safe_globals', [])
    path = str(tmp_path / 'box.pth')
    box = _Box()
    box.value = 3
    torch.save({'box': box}, path)
    with pytest.raises(CheckpointLoadError, match='_Box'):
        load_checkpoint_file(path)
    register_safe_globals([_Box])
    assert load_checkpoint_file(path)['box'].value == 3
