"""``meta['gpusq']`` bookkeeping shared by the hooks."""
from typing import Any, Dict


def versions() -> Dict[str, str]:
    """Versions of the packages that decide a checkpoint's meaning."""
    import importlib.metadata as md
    out = {}
    for name in ('gpusq_mm', 'torch', 'mmengine', 'mmcv', 'mmdet',
                 'mmsegmentation', 'mmpretrain'):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            continue
    return out


def update_gpusq_meta(checkpoint: dict, key: str, value: Any,
                      phase: str) -> None:
    """Write ``checkpoint['meta']['gpusq'][key] = value`` and the phase.

    Args:
        checkpoint (dict): Checkpoint being saved.
        key (str): ``'sparsity'`` or ``'quant'``.
        value (Any): Plain-Python description (no custom classes).
        phase (str): Name of the active phase, e.g. ``'S'`` or ``'Q'``;
            the later phase wins when several hooks write.
    """
    meta = checkpoint.setdefault('meta', {})
    gpusq = meta.setdefault('gpusq', {})
    gpusq[key] = value
    order = {'dense': 0, 'S': 1, 'Q': 2}
    if order.get(phase, 0) >= order.get(gpusq.get('phase', 'dense'), 0):
        gpusq['phase'] = phase
    gpusq['versions'] = versions()


def update_distill_meta(checkpoint: dict, model) -> None:
    """Write ``meta['gpusq']['distill']`` when ``model`` (a runner's model,
    possibly DDP-wrapped) is a distiller that describes itself
    (``gpusq_meta()``: feature pairs, φ, stage-2 teacher)."""
    model = getattr(model, 'module', model)
    describe = getattr(model, 'gpusq_meta', None)
    if callable(describe):
        gpusq = checkpoint.setdefault('meta', {}).setdefault('gpusq', {})
        gpusq['distill'] = describe()
