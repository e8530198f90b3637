"""Multi-process training on machines without GPUs (gloo on CPU).

MMEngine 0.10.7's ``pytorch`` launcher calls ``torch.cuda.set_device`` and
wraps the model in DDP with ``device_ids=[LOCAL_RANK]``; both fail without a
GPU. :func:`prepare_cpu_distributed` initialises the process group with gloo
first (the Runner then skips its own initialisation) and makes DDP wrap the
CPU model without device ids.
"""
import os

import torch
import torch.distributed as torch_dist
from mmengine.config import Config


def prepare_cpu_distributed(cfg: Config) -> bool:
    """Set up gloo DDP on CPU when a launcher is used and no GPU exists.

    Args:
        cfg (Config): The run's config (``cfg.launcher`` set).

    Returns:
        bool: Whether CPU distributed mode was set up.
    """
    if cfg.get('launcher', 'none') == 'none' or torch.cuda.is_available():
        return False
    if cfg.launcher != 'pytorch':
        raise RuntimeError(f'launcher {cfg.launcher!r} without a GPU is not '
                           'supported; use tools/dist_train.sh (torchrun, '
                           '--launcher pytorch) for CPU multi-process runs')
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(
            backend='gloo', rank=int(os.environ['RANK']),
            world_size=int(os.environ['WORLD_SIZE']))
    wrapper = dict(type='MMDistributedDataParallel', broadcast_buffers=False,
                   find_unused_parameters=cfg.get('find_unused_parameters',
                                                  False))
    wrapper.update(cfg.get('model_wrapper_cfg') or {})
    wrapper['device_ids'] = None  # CPU modules take no device ids
    cfg.model_wrapper_cfg = wrapper
    return True


def shutdown_distributed() -> None:
    """Tear the process group down before the interpreter exits.

    Without it, gloo's background threads may still be alive while the
    process exits, which aborts it ("terminate called without an active
    exception") after a successful run.
    """
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.barrier()
        torch_dist.destroy_process_group()
