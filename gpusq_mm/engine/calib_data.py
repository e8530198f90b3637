"""The calibration set of QATHook: which samples, through which pipeline,
in which batches.

- **Which samples**: ``calib_samples`` drawn at random (seeded, the same on
  every rank and on every resumed run) from the whole training set; under
  DDP each rank takes every ``world_size``-th of them. ImageNet-style
  folders are sorted by class, so the first N would be one class.
- **Which pipeline**: the test pipeline of the config (no random crops, no
  Mixup/CutMix), else the val pipeline (logged), else a clear error. A
  dataset without a pipeline (its items are model inputs already) is used
  as it is.
- **Which batches**: samples of equal input shape are batched together, up
  to the training batch size, so the test-mode data preprocessors accept
  them (mmseg's needs equal image sizes within a batch).

The training loader itself is not iterated: its sampler may be a shared
infinite generator that a second iterator would disturb, and calibration
must not change the training data order.
"""
import logging
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import torch
from mmengine.dist import get_rank, get_world_size
from mmengine.logging import print_log

DEFAULT_SAMPLES = dict(classification=512, dense=64)
DENSE_HEADS = ('decode_head', 'rpn_head', 'roi_head', 'bbox_head')


def check_calibration_size(calib_samples: Optional[int],
                           calib_batches: Optional[int],
                           owner: str = 'QATHook') -> None:
    """Validate the calibration size at config time (hook construction).

    Raises:
        ValueError: Not a positive int, or both given.
    """
    for name, value in (('calib_samples', calib_samples),
                        ('calib_batches', calib_batches)):
        if value is not None and (isinstance(value, bool)
                                  or not isinstance(value, int) or value < 1):
            raise ValueError(f'{owner}: {name} must be a positive int (a '
                             f'number of samples), got {value!r}')
    if calib_batches is None:
        return
    if calib_samples is not None:
        raise ValueError(f'{owner}: give calib_samples or the deprecated '
                         'calib_batches, not both')
    warnings.warn(f'{owner}: calib_batches is deprecated; use calib_samples '
                  '(a number of samples, independent of the batch size)',
                  DeprecationWarning)


def default_calib_samples(student: torch.nn.Module) -> int:
    """512 for classifiers, 64 for detectors and segmentors (dense
    prediction: larger images, more activations per image)."""
    dense = any(hasattr(student, h) for h in DENSE_HEADS)
    return DEFAULT_SAMPLES['dense' if dense else 'classification']


def loader_batch_size(loader) -> int:
    """Samples per batch of a DataLoader, also when a batch sampler
    (mmdet's ``AspectRatioBatchSampler``) holds the batch size."""
    size = loader.batch_size or getattr(loader.batch_sampler, 'batch_size',
                                        None)
    return int(size or 1)


@dataclass
class CalibrationSet:
    """This rank's calibration samples and how they are prepared.

    Attributes:
        indices (list[int]): Dataset indices of this rank.
        total (int): Samples over all ranks.
        dataset_size (int): Length of the training set.
        source (str): The pipeline used, in words.
        pipeline (Callable, optional): Applied to ``get_data_info(i)``;
            None uses ``dataset[i]``.
        labels (Counter): Class counts of the samples seen so far
            (classifiers).
    """

    indices: List[int]
    total: int
    dataset_size: int
    source: str
    pipeline: Optional[Callable] = None
    labels: Counter = field(default_factory=Counter)


def plan_calibration(runner, num_samples: int, seed: int,
                     owner: str = 'QATHook') -> CalibrationSet:
    """Choose this rank's samples and the pipeline.

    Raises:
        ValueError: The training set is empty, or it has a pipeline but the
            config has neither a test nor a val pipeline.
    """
    dataset = runner.train_dataloader.dataset
    size = len(dataset)
    if size == 0:
        raise ValueError(f'{owner}: the training set is empty; calibration '
                         'needs data')
    if num_samples > size:
        print_log(f'{owner}: calib_samples={num_samples} is more than the '
                  f'{size} training samples; calibrating on all of them',
                  logger='current', level=logging.WARNING)
        num_samples = size
    gen = torch.Generator().manual_seed(int(seed))
    chosen = torch.randperm(size, generator=gen)[:num_samples].tolist()
    indices = chosen[get_rank()::get_world_size()]
    pipeline, source = _pipeline(runner, dataset, owner)
    return CalibrationSet(indices, num_samples, size, source, pipeline)


def _find_pipeline(dataset_cfg) -> Optional[list]:
    """The ``pipeline`` of a dataset config, looking into wrappers."""
    if not isinstance(dataset_cfg, dict):
        return None
    if dataset_cfg.get('pipeline') is not None:
        return dataset_cfg['pipeline']
    inner = dataset_cfg.get('dataset') or (dataset_cfg.get('datasets')
                                           or [None])[0]
    return _find_pipeline(inner)


def _pipeline(runner, dataset, owner: str) -> Tuple[Optional[Callable], str]:
    # OpenMMLab datasets and their wrappers (RepeatDataset, ConcatDataset,
    # ...) give raw data infos; plain torch datasets give model inputs
    if not hasattr(dataset, 'get_data_info'):
        return None, 'dataset items (the dataset has no pipeline)'
    from mmengine.dataset import Compose
    cfg = getattr(runner, 'cfg', None) or {}
    for split in ('test', 'val'):
        pipeline = _find_pipeline((cfg.get(f'{split}_dataloader') or {})
                                  .get('dataset'))
        if pipeline is not None:
            if split == 'val':
                print_log(f'{owner}: the config has no test pipeline; '
                          'calibrating through the val pipeline',
                          logger='current')
            return Compose(pipeline), f'{split} pipeline'
    raise ValueError(
        f'{owner}: calibration runs the training samples through the test '
        'pipeline (no random augmentation), but the config has neither '
        'test_dataloader.dataset.pipeline nor val_dataloader.dataset.'
        'pipeline; add a test_dataloader (or val_dataloader) to the config')


def calibration_batches(calib: CalibrationSet, dataset,
                        collate_fn: Callable,
                        batch_size: int) -> Iterator:
    """Batches of this rank's samples; samples of one batch share the
    input shape. Class labels are counted in ``calib.labels``."""
    buckets: Dict[tuple, list] = {}
    for index in calib.indices:
        sample = dataset[index] if calib.pipeline is None else \
            calib.pipeline(dataset.get_data_info(index))
        _count_label(calib.labels, sample)
        inputs = sample.get('inputs') if isinstance(sample, dict) else None
        key = tuple(inputs.shape) if torch.is_tensor(inputs) else ()
        bucket = buckets.setdefault(key, [])
        bucket.append(sample)
        if len(bucket) == batch_size:
            yield collate_fn(buckets.pop(key))
    for bucket in buckets.values():
        yield collate_fn(bucket)


def _count_label(labels: Counter, sample) -> None:
    """Count the ground-truth class of a classification sample."""
    data_sample = sample.get('data_samples') if isinstance(sample, dict) \
        else None
    label = getattr(data_sample, 'gt_label', None)
    if torch.is_tensor(label) and label.numel() == 1:
        labels[int(label)] += 1


def describe(calib: CalibrationSet) -> str:
    """One log line: how many samples, from where, which classes."""
    text = (f'{calib.total} of {calib.dataset_size} training samples '
            f'(seeded random subset; {len(calib.indices)} on this rank), '
            f'{calib.source}')
    if calib.labels:
        counts = sorted(calib.labels.items())
        text += (f'; {len(counts)} classes on this rank, '
                 f'{min(calib.labels.values())}-'
                 f'{max(calib.labels.values())} samples per class')
        if len(counts) <= 20:
            text += ': ' + ', '.join(f'{k}: {v}' for k, v in counts)
    return text


def calibration_loop(runner, model: torch.nn.Module,
                     calib: CalibrationSet) -> Callable[[torch.nn.Module],
                                                        None]:
    """The forward loop :func:`gpusq_mm.quantization.calibrate` runs: the
    samples of ``calib`` in batches of the train loader's size, through
    ``model``'s data preprocessor in test mode (no batch augmentation),
    into the student in eval mode (its mode is restored after).

    Args:
        runner (Runner): Gives the train dataloader.
        model (nn.Module): The runner's (unwrapped) model, whose
            ``data_preprocessor`` prepares the batches.
        calib (CalibrationSet): From :func:`plan_calibration`.
    """
    loader = runner.train_dataloader
    preprocessor = model.data_preprocessor

    def loop(student: torch.nn.Module) -> None:
        was_training = student.training
        student.eval()
        try:
            for batch in calibration_batches(calib, loader.dataset,
                                             loader.collate_fn,
                                             loader_batch_size(loader)):
                data = preprocessor(batch, False)
                student(**data, mode='tensor')
        finally:
            student.train(was_training)

    return loop
