"""A clear error for a data set that ends up empty.

MMEngine's ``BaseDataset.full_init`` serializes the sample list with
``np.concatenate``; when loading and filtering leave no sample (wrong
``ann_file``/``data_prefix``, ``filter_empty_gt`` on a set without
annotations) it fails with ``ValueError: need at least one array to
concatenate``, naming neither the data set nor the cause.
:func:`register_dataset_checks` makes that case say what happened.
"""
from typing import Any

_MARK = '_gpusq_checked'


def _describe(dataset: Any) -> str:
    parts = [type(dataset).__name__]
    for key in ('ann_file', 'data_root'):
        value = getattr(dataset, key, None)
        if value:
            parts.append(f'{key}={value!r}')
    return ', '.join(parts)


def empty_dataset_error(dataset: Any) -> ValueError:
    """The error for a data set without samples."""
    return ValueError(
        f'the data set is empty after loading and filtering '
        f'({_describe(dataset)}): check data_root, ann_file and data_prefix, '
        'and that filter_cfg (e.g. filter_empty_gt=True on a set without '
        'annotations) does not drop every sample')


def register_dataset_checks() -> None:
    """Wrap ``BaseDataset._serialize_data`` with the empty-set check.
    Idempotent; called by ``import gpusq_mm``."""
    from mmengine.dataset import BaseDataset
    original = BaseDataset._serialize_data
    if getattr(original, _MARK, False):
        return

    def _serialize_data(self):
        if len(self.data_list) == 0:
            raise empty_dataset_error(self)
        return original(self)

    setattr(_serialize_data, _MARK, True)
    _serialize_data.__doc__ = original.__doc__
    BaseDataset._serialize_data = _serialize_data
