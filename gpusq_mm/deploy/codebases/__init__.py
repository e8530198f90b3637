"""Codebase exporters, keyed by ``codebase_config.type``.

Each exporter is imported only when used, so a missing task package (or
the detector exporter) fails with a message naming it.
"""
import importlib

from mmengine.config import Config

from .base import BaseExporter, UnsupportedModelError

CODEBASES = {
    'mmpretrain': 'gpusq_mm.deploy.codebases.mmpretrain:MMPretrainExporter',
    'mmseg': 'gpusq_mm.deploy.codebases.mmseg:MMSegExporter',
    'mmdet': 'gpusq_mm.deploy.codebases.mmdet:MMDetExporter',
}


def build_exporter(model_cfg: Config, deploy_cfg: Config) -> BaseExporter:
    """Build the exporter named by ``deploy_cfg.codebase_config.type``.

    Raises:
        ValueError: Unknown codebase type.
        ImportError: The exporter (or its task package) cannot be imported.
    """
    kind = deploy_cfg.get('codebase_config', {}).get('type')
    if kind not in CODEBASES:
        raise ValueError(f'codebase_config.type={kind!r} is not supported; '
                         f'choose one of {sorted(CODEBASES)}')
    module, _, cls = CODEBASES[kind].partition(':')
    try:
        exporter = getattr(importlib.import_module(module), cls)
    except (ImportError, AttributeError) as e:
        raise ImportError(f'cannot import the {kind} exporter {module}:{cls} '
                          f'({type(e).__name__}: {e}); install the {kind} '
                          'package or update gpusq_mm') from e
    return exporter(model_cfg, deploy_cfg)


__all__ = ['BaseExporter', 'CODEBASES', 'UnsupportedModelError',
           'build_exporter']
