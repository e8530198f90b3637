"""Tell a :class:`torch.overrides.TorchFunctionMode` when a module's
children are running, so that it only rewrites the module's own calls."""
from contextlib import contextmanager
from typing import Iterator, Sequence

from torch import nn


@contextmanager
def children_marked(module: nn.Module, mode,
                    skip: Sequence[str] = ()) -> Iterator[None]:
    """Call ``mode.enter_child`` / ``mode.exit_child`` around the forward of
    every direct child of ``module`` (except those named in ``skip``) for
    the duration of the block; the hooks are removed afterwards.

    Args:
        module (nn.Module): The module whose forward ``mode`` watches.
        mode: An object with ``enter_child(*args)`` and
            ``exit_child(*args)``.
        skip (Sequence[str]): Names of children not to mark.
    """
    handles = [hook(mode_fn) for name, child in module.named_children()
               if name not in skip
               for hook, mode_fn in ((child.register_forward_pre_hook,
                                      mode.enter_child),
                                     (child.register_forward_hook,
                                      mode.exit_child))]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
