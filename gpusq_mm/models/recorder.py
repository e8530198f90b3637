"""Record module outputs by dotted path with forward hooks (no torch.fx)."""
from contextlib import contextmanager
from typing import Dict, Iterator, Sequence

from torch import nn


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
    modules = dict(model.named_modules())
    missing = [p for p in paths if p not in modules]
    if missing:
        raise KeyError(f'feature path(s) {missing} name no submodule of '
                       f'{type(model).__name__}; valid examples: '
                       f'{[n for n in list(modules)[1:8]]}')
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
