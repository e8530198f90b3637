"""Record module outputs by dotted path with forward hooks (no torch.fx)."""
import difflib
from contextlib import contextmanager
from typing import Dict, Iterator, Sequence

from torch import nn


def check_paths(model: nn.Module, paths: Sequence[str]) -> None:
    """Raise a ``KeyError`` listing close matches for unknown module paths."""
    names = [n for n, _ in model.named_modules() if n]
    for path in paths:
        if path not in names:
            close = difflib.get_close_matches(path, names, n=5, cutoff=0.5)
            raise KeyError(f'feature path {path!r} names no submodule of '
                           f'{type(model).__name__}; close matches: '
                           f'{close or names[:5]}')


@contextmanager
def record_outputs(model: nn.Module,
                   paths: Sequence[str]) -> Iterator[Dict[str, object]]:
    """Collect the outputs of ``model``'s submodules named in ``paths``.

    Args:
        model (nn.Module): Model whose submodules are recorded.
        paths (Sequence[str]): Dotted module names, e.g. ``'backbone'`` or
            ``'neck.fpn_convs.0'``.

    Yields:
        dict: ``{path: output}``, filled while the block runs (the last call
        wins when a module runs several times).

    Raises:
        KeyError: A path names no submodule.
    """
    check_paths(model, paths)
    modules = dict(model.named_modules())
    records: Dict[str, object] = {}
    handles = []
    for path in paths:

        def hook(_module, _inputs, output, _path=path):
            records[_path] = output

        handles.append(modules[path].register_forward_hook(hook))
    try:
        yield records
    finally:
        for handle in handles:
            handle.remove()
