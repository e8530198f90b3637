"""The 2:4 methods, one strategy class each (see
:class:`.base.SparsityMethod` for the interface)."""
import inspect
from typing import Dict, Type

from .base import SparsityMethod
from .gradual import GradualMethod
from .magnitude import MagnitudeMethod
from .permutation import PermutationMethod
from .srste import SRSTEMethod

#: Method name -> class; the one list of the valid names.
METHODS: Dict[str, Type[SparsityMethod]] = {
    cls.name: cls for cls in (MagnitudeMethod, PermutationMethod,
                              SRSTEMethod, GradualMethod)
}


def build_method(name: str, **options) -> SparsityMethod:
    """The method ``name`` with the ``options`` its class takes (the
    others are ignored, so one set of hook options serves every method).

    Raises:
        ValueError: Unknown name.
    """
    if name not in METHODS:
        raise ValueError(f'unknown 2:4 method {name!r}; choose one of '
                         f'{tuple(METHODS)}')
    cls = METHODS[name]
    accepted = inspect.signature(cls.__init__).parameters
    return cls(**{k: v for k, v in options.items() if k in accepted})


__all__ = [
    'METHODS', 'GradualMethod', 'MagnitudeMethod', 'PermutationMethod',
    'SRSTEMethod', 'SparsityMethod', 'build_method'
]
