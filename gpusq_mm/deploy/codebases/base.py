"""What every codebase exporter provides (the interface ``tools/deploy.py``
drives), with the image loading they share."""
import logging
import os.path as osp
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch
from mmengine.config import Config, ConfigDict
from torch import Tensor, nn


class UnsupportedModelError(TypeError, ValueError):
    """A model part the exporter cannot export; the message names it and
    lists what is supported. (A ``ValueError`` too: the detector exporter
    raised that before the codebases shared one error type.)"""


def check_part(codebase: str, what: str, module, supported: Sequence[str]
               ) -> None:
    """Raise :class:`UnsupportedModelError` unless ``type(module)``'s name
    is in ``supported`` (``None`` is checked as the string 'None')."""
    name = 'None' if module is None else type(module).__name__
    if name not in supported:
        raise UnsupportedModelError(
            f'{codebase} exporter: the {what} {name} is not supported; '
            f'supported {what}s: {", ".join(supported)}')


def read_image_checked(path: str) -> np.ndarray:
    """Read ``path`` with mmcv, or fail with a clear message."""
    import mmcv
    if not osp.isfile(path):
        raise FileNotFoundError(f'image {path!r} does not exist; give the '
                                'path of a JPEG/PNG image')
    try:
        img = mmcv.imread(path)
    except Exception as e:  # mmcv raises various decoder errors
        img, why = None, f'{type(e).__name__}: {e}'
    else:
        why = 'the decoder returned nothing'
    if img is None:
        raise ValueError(f'cannot read image {path!r} ({why}); give a '
                         'readable JPEG/PNG image')
    return img


def _loader_pipeline(cfg: Config, key: str):
    """The pipeline of ``cfg[key].dataset`` (through dataset wrappers such
    as ``RepeatDataset``), or None."""
    dataset = (cfg.get(key) or {}).get('dataset')
    while isinstance(dataset, dict):
        if dataset.get('pipeline'):
            return dataset['pipeline']
        dataset = dataset.get('dataset')
    return None


def resolve_test_pipeline(cfg: Config) -> Tuple[List[dict], str]:
    """The model config's test-time pipeline and where it came from.

    Looks at ``test_pipeline``, then ``test_dataloader``'s dataset, then
    ``val_dataloader``'s (a training-only config often has no test loader).

    Raises:
        ValueError: None of them exists; the message says what to add.
    """
    for source in ('test_pipeline', 'test_dataloader', 'val_dataloader'):
        pipeline = cfg.get(source) if source == 'test_pipeline' else \
            _loader_pipeline(cfg, source)
        if pipeline:
            return list(pipeline), source
    raise ValueError(
        'the model config has no test pipeline (no test_pipeline, and no '
        'test_dataloader or val_dataloader with a dataset pipeline); pass '
        '--test-pipeline FILE (a config file defining test_pipeline = '
        '[...]) or add a test_dataloader to the model config')


def inference_steps(cfg: Config) -> List[dict]:
    """The test pipeline of :func:`resolve_test_pipeline` without its
    annotation loaders (deploy reads images only)."""
    pipeline, source = resolve_test_pipeline(cfg)
    if source == 'val_dataloader':
        logging.getLogger('gpusq_mm.deploy').info(
            "the model config has no test pipeline; using val_dataloader's")
    return [t for t in pipeline if 'Annotations' not in t['type']]


def task_model_dict(cfg: Config) -> dict:
    """The task model's config dict: the student of a ``MixedKDDistiller``
    config; the top-level (or distiller's) ``data_preprocessor`` is set as
    a default, as MMEngine's Runner and the distiller do."""
    model = cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') \
        else dict(cfg.model)
    preprocessor = cfg.get('data_preprocessor')
    if model.get('type') == 'MixedKDDistiller':
        preprocessor = model.get('data_preprocessor') or preprocessor
        model = dict(model['architecture'])
    if preprocessor is not None:
        model.setdefault('data_preprocessor', dict(preprocessor))
    # ConfigDict all the way down: mmdet reads ``train_cfg.rpn`` etc. as
    # attributes
    return ConfigDict(model)


class BaseExporter:
    """Exporter of one codebase's models.

    Args:
        model_cfg (Config): The model config (task or GPUSQ config).
        deploy_cfg (Config): The deploy config.
    """

    scope = ''
    preprocessor_type = ''
    output_names: List[str] = []

    def __init__(self, model_cfg: Config, deploy_cfg: Config) -> None:
        self.model_cfg = model_cfg
        self.deploy_cfg = deploy_cfg

    # --------------------------------------------------------- inputs
    def load_image(self, path: str) -> Tuple[Tensor, Dict]:
        """Load ``path`` through the test pipeline and the model's data
        preprocessor (built from the model config).

        Returns:
            tuple: ``inputs`` ``(1, 3, H, W)`` and the image meta.

        Raises:
            FileNotFoundError, ValueError: The image is missing or
                unreadable.
        """
        from mmengine.dataset import Compose
        from mmengine.registry import MODELS, DefaultScope
        read_image_checked(path)
        with DefaultScope.overwrite_default_scope(self.scope):
            pipeline = Compose(inference_steps(self.model_cfg))
            data = pipeline(dict(img_path=path))
            preprocessor = dict(task_model_dict(self.model_cfg).get(
                'data_preprocessor') or {})
            preprocessor.setdefault('type', self.preprocessor_type)
            preprocessor = MODELS.build(preprocessor)
        batch = dict(inputs=[data['inputs']],
                     data_samples=[data['data_samples']])
        with torch.no_grad():
            batch = preprocessor(batch, False)
        inputs = batch['inputs']
        shape = self.deploy_cfg.onnx_config.get('input_shape')
        if shape is not None and list(inputs.shape[-2:]) != [shape[1],
                                                             shape[0]]:
            inputs = nn.functional.interpolate(
                inputs, size=(shape[1], shape[0]), mode='bilinear',
                align_corners=False)
        return inputs, dict(batch['data_samples'][0].metainfo)

    # --------------------------------------------------------- interface
    def check_supported(self, model: nn.Module) -> None:
        raise NotImplementedError

    def export_module(self, model: nn.Module) -> nn.Module:
        raise NotImplementedError

    def compare(self, ref_outputs: List[np.ndarray],
                ort_outputs: List[np.ndarray]) -> dict:
        raise NotImplementedError


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two arrays, flattened.

    Returns:
        float: NaN when either array is all zeros (or not finite): the
        angle is undefined there, and two all-zero outputs (e.g. a
        zero-initialised head) agree on nothing. Every comparison with
        NaN is False, so a threshold check on it fails.
    """
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    denom = np.linalg.norm(a) * np.linalg.norm(b)
    if not denom or not np.isfinite(denom):
        return float('nan')
    return float(a @ b / denom)
