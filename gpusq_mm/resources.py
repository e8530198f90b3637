"""Where the configs and tools are, in a source checkout and in an installed
package.

A source checkout (``pip install -e .``, ``make setup``) uses the
repository's ``configs/`` and ``tools/``; ``pip install .`` copies both into
the package as ``gpusq_mm/.mim/`` (OpenMMLab's layout, see ``setup.py``),
which is used when there is no checkout around the package.
"""
import os.path as osp

PACKAGE = osp.dirname(osp.abspath(__file__))
#: What ``setup.py`` ships in ``gpusq_mm/.mim/``.
SHIPPED = ('configs', 'tools')


def resource_dir(name: str) -> str:
    """The ``configs`` or ``tools`` folder in use.

    Raises:
        FileNotFoundError: Neither a checkout nor an installed copy has it.
    """
    if name not in SHIPPED:
        raise ValueError(f'unknown resource {name!r}; one of {SHIPPED}')
    for root in (osp.dirname(PACKAGE), osp.join(PACKAGE, '.mim')):
        path = osp.join(root, name)
        if osp.isdir(path):
            return path
    raise FileNotFoundError(
        f'gpusq_mm has no {name}/ folder: it was installed without its '
        f'package data; reinstall with `pip install .` from the repository')


def repo_root() -> str:
    """The folder that holds ``configs/`` and ``tools/`` (the repository,
    or ``gpusq_mm/.mim`` of an installed package)."""
    return osp.dirname(resource_dir('tools'))


def resolve_config(path: str) -> str:
    """``path`` if it is a file, else the shipped config it names
    (``gpusq/demo/deit_tiny_dense.py`` or ``configs/gpusq/...``), so that
    installed configs work from any directory; ``path`` unchanged when
    neither exists (the caller reports it)."""
    if osp.isfile(path) or '::' in path:
        return path
    rel = path[len('configs/'):] if path.startswith('configs/') else path
    shipped = osp.join(resource_dir('configs'), rel)
    return shipped if osp.isfile(shipped) else path
