"""Checks that turn late, cryptic failures into early, clear errors.

Used by the GPUSQ hooks at the runner stage where the input is first
visible: a checkpoint in ``after_load_checkpoint`` (before its state dict
loads), the training data in ``before_train`` (before the first batch).
"""
from typing import Dict, List

import torch

from gpusq_mm.utils.dataset_checks import empty_dataset_error


def check_resumable(checkpoint: dict, source: str = 'the checkpoint') -> None:
    """Raise if ``checkpoint`` cannot be resumed from.

    Args:
        checkpoint (dict): The loaded checkpoint.
        source (str): What to call it in messages.

    Raises:
        ValueError: It lacks ``meta`` with ``epoch`` and ``iter`` (a weights
            file, e.g. a converted student or a model-zoo download).
    """
    meta = checkpoint.get('meta')
    if not isinstance(meta, dict) or not {'epoch', 'iter'} <= set(meta):
        raise ValueError(
            f'cannot resume from {source}: it has no training state '
            "(meta['epoch'], meta['iter']); it is a weights-only file. Use "
            'load_from=<file> (without --resume) to initialise from it, or '
            'resume from a checkpoint written by training (iter_N.pth / '
            'epoch_N.pth)')


def check_masked_weights_zero(state_dict: Dict[str, torch.Tensor],
                              masks: Dict[str, torch.Tensor],
                              prefix: str = '') -> None:
    """Raise if a checkpoint's weights are non-zero where its own 2:4 masks
    prune them (the checkpoint contract: pruned entries are exactly zero).

    Args:
        state_dict (dict): The checkpoint's state dict.
        masks (dict): ``{parameter name: bool mask}`` stored beside it.
        prefix (str): Prefix of the student's keys in ``state_dict``.

    Raises:
        ValueError: Names the layers and the number of offending entries.
    """
    broken: List[str] = []
    for name, mask in masks.items():
        weight = state_dict.get(prefix + name)
        if weight is None or tuple(weight.shape) != tuple(mask.shape):
            continue  # a mismatch the mask restore reports itself
        count = int((weight.detach().cpu()[~mask.cpu().bool()] != 0).sum())
        if count:
            broken.append(f'{name} ({count} pruned entries non-zero)')
    if broken:
        raise ValueError(
            f'the checkpoint breaks its own 2:4 masks in {len(broken)} '
            f'weight(s): {broken[:5]}. It was modified after saving or mixes '
            'the weights of one checkpoint with the masks of another; use '
            'an unmodified checkpoint from the run (or restart phase S from '
            'the dense weights)')


def check_train_data(runner) -> None:
    """Raise if the training set is empty (before the sampler divides by
    its length).

    Raises:
        ValueError: Names the dataset and what to check.
    """
    dataset = runner.train_dataloader.dataset
    try:
        size = len(dataset)
    except TypeError:  # an IterableDataset has no length
        return
    if size == 0:
        raise empty_dataset_error(dataset)
