"""Parity of the deployed graphs with PyTorch over several images.

One image is an anecdote: the deploy step checks every graph it writes for
a backend on the given image plus up to ``codebase_config.parity.
num_images`` images of the model config's validation/test set (when the set
can be read here; else flipped and resized variants of the given image),
with the codebase's per-image thresholds, and applies the aggregate rule of
the deploy config: at least ``min_pass_fraction`` of the images must pass
(default: every image for classification and segmentation, 7 of 8 for
detection, whose top-k matching on a barely trained model flips now and
then).
"""
import logging
import math
import os
import os.path as osp
from typing import Callable, Dict, List, Sequence

import numpy as np
from mmengine.config import Config

logger = logging.getLogger('gpusq_mm.deploy')

DEFAULT_NUM_IMAGES = 8
DEFAULT_MIN_PASS = dict(mmpretrain=1.0, mmseg=1.0, mmdet=0.875)


def parity_rule(deploy_cfg: Config, codebase: str) -> dict:
    """``num_images`` and ``min_pass_fraction`` from
    ``codebase_config.parity`` (with the codebase's defaults).

    Raises:
        ValueError: A value is out of range.
    """
    cfg = dict((deploy_cfg.get('codebase_config') or {}).get('parity')
               or {})
    num = cfg.get('num_images', DEFAULT_NUM_IMAGES)
    frac = cfg.get('min_pass_fraction', DEFAULT_MIN_PASS.get(codebase, 1.0))
    if not isinstance(num, int) or num < 0:
        raise ValueError(f'codebase_config.parity.num_images must be an int '
                         f'>= 0, got {num!r}')
    if not 0 < frac <= 1:
        raise ValueError(f'codebase_config.parity.min_pass_fraction must be '
                         f'in (0, 1], got {frac!r}')
    return dict(num_images=num, min_pass_fraction=float(frac))


def dataset_images(model_cfg: Config, scope: str, num: int) -> List[str]:
    """Paths of ``num`` images spread over the model config's test (else
    val) set, or [] when the set cannot be built or read here."""
    from mmengine.registry import DATASETS, DefaultScope
    for key in ('test_dataloader', 'val_dataloader'):
        dataset = (model_cfg.get(key) or {}).get('dataset')
        if not dataset or num == 0:
            continue
        dataset = dict(dataset, pipeline=[], lazy_init=False)
        try:
            with DefaultScope.overwrite_default_scope(scope):
                built = DATASETS.build(dataset)
            size = len(built)
            picks = sorted({int(i) for i in np.linspace(0, size - 1, num)}) \
                if size else []
            paths = [built.get_data_info(i)['img_path'] for i in picks]
        except Exception as err:  # missing files, custom datasets
            logger.info('parity images: cannot read the %s set (%s: %s)',
                        key, type(err).__name__, err)
            continue
        paths = [p for p in paths if osp.isfile(p)]
        if paths:
            return paths
    return []


def image_variants(img: str, out_dir: str, num: int) -> List[str]:
    """Write up to ``num`` flipped/resized variants of ``img`` to
    ``out_dir`` (PNG) and return their paths."""
    import mmcv
    image = mmcv.imread(img)
    variants = []
    for scale in (1.0, 0.75, 1.25, 0.5, 1.5):
        resized = image if scale == 1.0 else mmcv.imrescale(image, scale)
        variants.append((f'flip_x{scale}', mmcv.imflip(resized)))
        if scale != 1.0:
            variants.append((f'x{scale}', resized))
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for name, array in variants[:num]:
        path = osp.join(out_dir, f'{name}.png')
        mmcv.imwrite(array, path)
        paths.append(path)
    return paths


def aggregate(verdicts: Sequence[dict], min_pass_fraction: float) -> dict:
    """The aggregate verdict of one graph over its per-image verdicts."""
    passed = sum(bool(v['passed']) for v in verdicts)
    needed = math.ceil(min_pass_fraction * len(verdicts) - 1e-9)
    return dict(num_images=len(verdicts), passed_images=passed,
                needed=needed, passed=bool(verdicts) and passed >= needed)


def check_graphs(images: Sequence[str],
                 load: Callable[[str], object],
                 reference: Callable[[object], List[np.ndarray]],
                 graphs: Dict[str, Callable[[object], List[np.ndarray]]],
                 compare: Callable[[list, list], dict],
                 min_pass_fraction: float) -> Dict[str, dict]:
    """Run the reference and every graph on every image and judge them.

    Args:
        images (Sequence[str]): Image paths; the first is the one the
            report's top-level numbers describe.
        load (Callable): ``path -> inputs``.
        reference (Callable): ``inputs -> outputs`` of PyTorch.
        graphs (dict): ``{graph file name: inputs -> outputs}``.
        compare (Callable): The codebase's per-image comparison.
        min_pass_fraction (float): The aggregate rule.

    Returns:
        dict: ``{graph: {images: [{image, ...verdict}], num_images,
        passed_images, needed, passed}}``.
    """
    per_graph: Dict[str, list] = {name: [] for name in graphs}
    for path in images:
        inputs = load(path)
        ref = reference(inputs)
        for name, run in graphs.items():
            verdict = compare(ref, run(inputs))
            per_graph[name].append(dict(image=path, **verdict))
    return {name: dict(images=verdicts,
                       **aggregate(verdicts, min_pass_fraction))
            for name, verdicts in per_graph.items()}
