"""Checkpoints users resume or load that do not fit: truncated, not a
checkpoint, of another model, edited, another 2:4 method, malicious. Each
fails with an error naming the file and the fix; nothing in the work dir
changes."""
import os
import os.path as osp

import pytest
import torch
from torch import nn

from gpusq_mm.utils import CheckpointLoadError, load_checkpoint_file
from tests.bad_inputs import GPUSQ_HOOKS, fails, save, toy_runner
from tests.test_engine.toy import ToyNet


def _corrupt(work: str, gpusq_ckpt: str, how: str) -> str:
    data = open(gpusq_ckpt, 'rb').read()
    path = osp.join(osp.dirname(work), f'{how}.pth')
    with open(path, 'wb') as f:
        if how == 'truncated':
            f.write(data[:len(data) // 3])
        elif how == 'garbage':
            f.write(os.urandom(4096))
        elif how == 'damaged':  # the zip directory at the end is damaged
            f.write(data[:-200] + bytes(b ^ 0xFF for b in data[-200:]))
    return path


@pytest.mark.parametrize('how', ['truncated', 'garbage', 'damaged', 'empty'])
def test_corrupted_checkpoint(work, gpusq_ckpt, how):
    path = _corrupt(work, gpusq_ckpt, how)
    runner = toy_runner(work, GPUSQ_HOOKS, 6, load_from=path, resume=True)
    with fails(work, CheckpointLoadError, repr(path),
               'truncated or corrupted', 'another checkpoint'):
        runner.train()


def test_checkpoint_path_does_not_exist(work):
    path = osp.join(work, 'iter_6.pth')
    runner = toy_runner(work, GPUSQ_HOOKS, load_from=path)
    with fails(work, FileNotFoundError, 'iter_6.pth', 'does not exist'):
        runner.train()


def test_checkpoint_that_is_not_a_dict(work):
    path = save(torch.ones(3), work, 'tensor.pth')
    runner = toy_runner(work, load_from=path)
    with fails(work, CheckpointLoadError, 'holds a Tensor',
               'not a checkpoint', 'torch.save(dict(state_dict='):
        runner.train()


def test_resume_from_weights_only_file(work):
    path = save(dict(state_dict=dict(ToyNet().state_dict())), work,
                 'weights.pth')
    runner = toy_runner(work, GPUSQ_HOOKS, load_from=path, resume=True)
    with fails(work, ValueError, 'cannot resume', 'weights-only',
               'load_from'):
        runner.train()


class _WiderToy(ToyNet):
    """Another model: same layer names, other widths."""

    def __init__(self, data_preprocessor=None) -> None:
        super().__init__(data_preprocessor)
        self.fc2 = nn.Linear(64, 128)
        self.head = nn.Linear(128, 4)


class _RenamedToy(ToyNet):
    """Another model: the 2:4 layers carry other names."""

    def __init__(self, data_preprocessor=None) -> None:
        super().__init__(data_preprocessor)
        self.mlp = nn.Sequential(self.fc1, nn.ReLU(), self.fc2)
        del self.fc1, self.fc2

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.head(torch.relu(self.mlp(
            self.patch_embed(inputs).flatten(1))))
        if mode == 'loss':
            return dict(loss=nn.functional.cross_entropy(out, data_samples))
        return out


@pytest.mark.parametrize('model,words', [
    (_WiderToy, ['fc2.weight', 'shape', 'another model']),
    (_RenamedToy, ['fc1.weight', 'another model']),
])
def test_gpusq_checkpoint_of_another_model(work, gpusq_ckpt, model, words):
    torch.manual_seed(0)
    runner = toy_runner(work, GPUSQ_HOOKS, 6, model=model(),
                         load_from=gpusq_ckpt, resume=True)
    with fails(work, ValueError, *words):
        runner.train()


def test_qat_checkpoint_of_another_model(work, gpusq_ckpt):
    ckpt = load_checkpoint_file(gpusq_ckpt)
    ckpt['gpusq_qat']['layers'].append('blocks.3.mlp')
    path = save(ckpt, work, 'other_qat.pth')
    runner = toy_runner(work, [dict(type='QATHook', start_iter=2)], 6,
                         load_from=path, resume=True)
    with fails(work, ValueError, 'quantizes layers', 'blocks.3.mlp',
               'another model'):
        runner.train()


def test_checkpoint_weights_break_2to4(work, gpusq_ckpt):
    ckpt = load_checkpoint_file(gpusq_ckpt)
    mask = ckpt['gpusq_sparse24']['masks']['fc1.weight']
    weight = ckpt['state_dict']['fc1.weight']
    weight[~mask] = 0.5  # pruned entries come back: not 2:4 any more
    path = save(ckpt, work, 'edited.pth')
    runner = toy_runner(work, GPUSQ_HOOKS, 6, load_from=path, resume=True)
    with fails(work, ValueError, 'Sparse24Hook', 'breaks its own 2:4 masks',
               'fc1.weight', 'unmodified checkpoint'):
        runner.train()


def test_resume_with_another_2to4_method(work, gpusq_ckpt):
    hooks = [dict(type='Sparse24Hook', method='srste')] + GPUSQ_HOOKS[1:]
    runner = toy_runner(work, hooks, 6, load_from=gpusq_ckpt, resume=True)
    with fails(work, ValueError, "Sparse24Hook: the checkpoint was written "
               "with method='magnitude' but the config says method='srste'"):
        runner.train()


def test_malicious_checkpoint_is_refused(work, tmp_path):
    marker = tmp_path / 'pwned'

    class RunsCode:

        def __reduce__(self):
            return (os.system, (f'touch {marker}', ))

    path = save(dict(state_dict={}, meta=dict(epoch=0, iter=0),
                      evil=RunsCode()), work, 'evil.pth')
    runner = toy_runner(work, GPUSQ_HOOKS, load_from=path, resume=True)
    with fails(work, CheckpointLoadError, 'safe allowlist', 'system',
               'GPUSQ_TRUSTED_CHECKPOINTS'):
        runner.train()
    assert not marker.exists()
