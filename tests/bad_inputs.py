"""Shared pieces of the bad-input tests (each layer's own
``test_bad_*.py``): a toy GPUSQ checkpoint, a work dir that holds a run's
checkpoints, and :func:`fails`, which checks the error type, the key words
of its message (what is wrong and what to do) and that the checkpoints
already in the work dir are byte-for-byte untouched.

The fixtures ``gpusq_ckpt`` and ``work`` live in ``tests/conftest.py``.
"""
import hashlib
import os
import os.path as osp
import warnings
from contextlib import contextmanager

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope
from mmengine.runner import Runner

from tests.test_engine.toy import runner_cfg
from tests.utils import DEMO_CONFIGS

GPUSQ_HOOKS = [dict(type='Sparse24Hook'),
               dict(type='QATHook', start_iter=2, calib_batches=1),
               dict(type='RNGStateHook')]


def hashes(work: str) -> dict:
    """sha256 of the checkpoints and ``last_checkpoint`` in ``work``."""
    out = {}
    for name in sorted(os.listdir(work)):
        path = osp.join(work, name)
        if osp.isfile(path) and (name.endswith('.pth')
                                 or name == 'last_checkpoint'):
            with open(path, 'rb') as f:
                out[name] = hashlib.sha256(f.read()).hexdigest()
    return out


@contextmanager
def fails(work: str, exc, *words: str):
    """Expect ``exc`` whose message holds every word (case-insensitive);
    the work dir's checkpoints must be unchanged and none added."""
    before = hashes(work)
    with pytest.raises(exc) as info:
        yield info
    message = str(info.value).lower()
    for word in words:
        assert word.lower() in message, (word, str(info.value))
    assert hashes(work) == before, 'checkpoints in the work dir changed'


def toy_runner(work: str, hooks=None, max_iters: int = 4, **kw) -> Runner:
    """A Runner of the toy model in ``work``."""
    return Runner(**runner_cfg(work, max_iters, hooks or [], **kw))


def save(obj, work: str, name: str) -> str:
    """``torch.save`` beside (not in) the work dir; returns the path."""
    path = osp.join(osp.dirname(work), name)
    torch.save(obj, path)
    return path


def distiller(config: str = 'deit_tiny_gpusq.py', scope: str = 'mmpretrain',
               **overrides):
    """A demo MixedKDDistiller built from ``config`` with ``overrides``."""
    cfg = Config.fromfile(osp.join(DEMO_CONFIGS, config))
    model_cfg = cfg.model.copy()
    model_cfg.update(overrides)
    if 'data_preprocessor' in cfg:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    with warnings.catch_warnings(), \
            DefaultScope.overwrite_default_scope(scope):
        warnings.simplefilter('ignore')  # teacher_ckpt=None smoke warning
        return MODELS.build(model_cfg)
