"""Which part of a model the GPUSQ hooks compress: the pruning and
quantization scope, and the patch layers kept dense by default.

The paper prunes and quantizes the transformer blocks of the backbone
(``paper.md`` §3); necks and heads of detectors and segmentors are not
mentioned, so the default scope is ``'backbone'``. ``'backbone+neck'`` adds
the neck (FPN, ...), ``'all'`` every layer. A model without a ``backbone``
child (a bare network) is handled as ``'all'``.

Patch embeddings and Swin-style patch merging (modules whose class is one
of ``PATCH_CLASSES``, e.g. mmcv's and mmpretrain's ``PatchEmbed`` /
``PatchMerging``, also MiT's ``layers.N.0`` stage embeddings, and any module
named ``patch_embed``) stay dense and in float by default in every family:
they see raw pixels or downsample, hold few weights and TensorRT gains
little there.
"""
import re
from typing import Dict, Iterable, Tuple

from torch import nn

SCOPES = ('backbone', 'backbone+neck', 'all')
PATCH_CLASSES = ('PatchEmbed', 'PatchMerging', 'OverlapPatchEmbed',
                 'ConvPatchEmbed', 'PatchEmbedding')
PATCH_REASON = ('patch embedding / patch merging (dense and float by '
                'default)')
PATCH_NAME = re.compile(r'(^|\.)patch_embed(\.|$)')
_PREFIXES = {'backbone': ('backbone', ), 'backbone+neck': ('backbone', 'neck')}


def check_scope(scope: str, owner: str) -> None:
    """Raise a clear error for an unknown ``scope`` of hook ``owner``."""
    if scope not in SCOPES:
        raise ValueError(f'{owner}: unknown scope {scope!r}; choose one of '
                         f"{SCOPES} ('backbone' is the paper's choice)")


def resolve_scope(model: nn.Module, scope: str) -> Tuple[str, str]:
    """The scope that applies to ``model``, and a note when it differs.

    Returns:
        tuple[str, str]: ``(scope, note)``; the note is '' unless a model
        without ``backbone`` falls back to ``'all'``.
    """
    if scope != 'all' and not isinstance(getattr(model, 'backbone', None),
                                         nn.Module):
        return 'all', (f"scope {scope!r} needs a model with a 'backbone'; "
                       f'{type(model).__name__} has none, using scope '
                       "'all'")
    return scope, ''


def patch_modules(model: nn.Module) -> Tuple[str, ...]:
    """Names of the patch embedding / merging modules of ``model``."""
    return tuple(n for n, m in model.named_modules()
                 if type(m).__name__ in PATCH_CLASSES)


def scope_reasons(model: nn.Module, names: Iterable[str], scope: str,
                  keep_patch_layers: bool = True) -> Dict[str, str]:
    """Why each module or parameter name is outside the scope ('' if in).

    Args:
        model (nn.Module): The model the names belong to.
        names (Iterable[str]): Module names or parameter paths.
        scope (str): One of ``SCOPES`` (already resolved for ``model``).
        keep_patch_layers (bool): Keep patch layers out of scope.
            Defaults to True.

    Returns:
        dict: ``{name: reason}``.
    """
    prefixes = _PREFIXES.get(scope)
    patches = patch_modules(model) if keep_patch_layers else ()
    out = {}
    for name in names:
        if prefixes and name.split('.', 1)[0] not in prefixes:
            out[name] = f"outside scope '{scope}'"
        elif keep_patch_layers and (PATCH_NAME.search(name) or any(
                name == p or name.startswith(f'{p}.') for p in patches)):
            out[name] = PATCH_REASON
        else:
            out[name] = ''
    return out
