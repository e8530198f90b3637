"""A toy model and dataset with layers big enough to be 2:4 eligible."""
import torch
from mmengine.model import BaseModel
from torch import nn
from torch.utils.data import Dataset


class ToyNet(BaseModel):
    """Two eligible Linear layers, one too small, and a patch-embed conv."""

    def __init__(self, data_preprocessor=None) -> None:
        super().__init__(data_preprocessor=data_preprocessor)
        self.patch_embed = nn.Conv2d(3, 32, 4, 4)
        self.fc1 = nn.Linear(32 * 16, 64)
        self.fc2 = nn.Linear(64, 64)
        self.head = nn.Linear(64, 4)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        x = self.patch_embed(inputs).flatten(1)
        out = self.head(torch.relu(self.fc2(torch.relu(self.fc1(x)))))
        if mode == 'loss':
            return dict(loss=nn.functional.cross_entropy(out, data_samples))
        return out


class ToyData(Dataset):

    def __init__(self, n: int = 16) -> None:
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 3, 16, 16, generator=gen)
        self.y = torch.randint(0, 4, (n, ), generator=gen)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        return dict(inputs=self.x[i], data_samples=self.y[i])


def runner_cfg(work_dir: str, max_iters: int = 4, hooks=None, **kw) -> dict:
    """A complete Runner config around :class:`ToyNet`; ``kw`` overrides."""
    from mmengine.dataset import DefaultSampler, default_collate
    torch.manual_seed(0)  # the model is built here, before the Runner seeds
    cfg = dict(
        model=ToyNet(),
        work_dir=work_dir,
        train_dataloader=dict(
            dataset=ToyData(), batch_size=4,
            sampler=dict(type=DefaultSampler, shuffle=False),
            collate_fn=dict(type=default_collate)),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        custom_hooks=hooks or [],
        default_hooks=dict(checkpoint=dict(type='CheckpointHook',
                                           by_epoch=False, interval=2)),
        randomness=dict(seed=0))
    cfg.update(kw)
    return cfg


def train_toy(work_dir: str, hooks, max_iters: int = 4, **kw):
    """Build a Runner around :class:`ToyNet`, train it and return it."""
    from mmengine.runner import Runner
    runner = Runner(**runner_cfg(work_dir, max_iters, hooks, **kw))
    runner.train()
    return runner
