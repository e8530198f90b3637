"""The package's import structure: no import cycle between its modules, and
dependencies point downwards only (``../shared/docs/DESIGN.md`` §3, the
README's Layout): the pure-torch cores and the deploy package never import
the training engine."""
import ast
import functools
import os
import os.path as osp
from typing import Dict, List, Set

import pytest

PACKAGE = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))),
                   'gpusq_mm')
# package -> packages it must never import (module- or function-level)
FORBIDDEN = {
    'gpusq_mm.utils': ('engine', 'deploy', 'models', 'demo', 'quantization',
                       'sparsity', 'checkpoint_format', 'oneshot'),
    'gpusq_mm.sparsity': ('engine', 'deploy', 'models', 'demo',
                          'quantization', 'checkpoint_format'),
    'gpusq_mm.quantization': ('engine', 'deploy', 'models', 'demo',
                              'sparsity', 'checkpoint_format'),
    'gpusq_mm.checkpoint_format': ('engine', 'deploy', 'models', 'demo'),
    'gpusq_mm.deploy': ('engine', 'models', 'demo'),
    'gpusq_mm.engine': ('deploy', 'demo'),
    'gpusq_mm.models': ('deploy', 'demo'),
}


def module_name(path: str) -> str:
    rel = osp.relpath(path, osp.dirname(PACKAGE))[:-len('.py')]
    parts = rel.split(os.sep)
    if parts[-1] == '__init__':
        parts = parts[:-1]
    return '.'.join(parts)


def imports_of(path: str, modules: Set[str]) -> Set[str]:
    """The package modules ``path`` imports anywhere in its body."""
    name = module_name(path)
    is_pkg = path.endswith('__init__.py')
    base = name if is_pkg else name.rpartition('.')[0]
    with open(path) as f:
        tree = ast.parse(f.read())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = base.split('.')
                parent = '.'.join(parts[:len(parts) - node.level + 1])
                mod = f'{parent}.{node.module}' if node.module else parent
            else:
                mod = node.module
            targets = [mod] + [f'{mod}.{a.name}' for a in node.names]
        else:
            continue
        found |= {t for t in targets if t in modules}
    return found


@functools.lru_cache(maxsize=None)
def graph() -> Dict[str, Set[str]]:
    """``{module: package modules it imports}`` (read once per session;
    callers do not modify it)."""
    paths = [osp.join(d, f) for d, _, files in os.walk(PACKAGE)
             for f in files if f.endswith('.py')]
    modules = {module_name(p) for p in paths}
    return {module_name(p): imports_of(p, modules) - {module_name(p)}
            for p in paths}


def cycles(edges: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components with more than one module
    (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle():
    found = cycles(graph())
    assert found == [], found


def test_dependencies_point_downwards():
    bad = []
    for module, deps in graph().items():
        for owner, banned in FORBIDDEN.items():
            if module != owner and not module.startswith(owner + '.'):
                continue
            bad += [(module, d) for d in deps for b in banned
                    if d == f'gpusq_mm.{b}' or
                    d.startswith(f'gpusq_mm.{b}.')]
    assert bad == [], bad


def test_scan_finds_a_planted_cycle_and_upward_import(tmp_path):
    """The checks can fail: a cycle and an upward import are reported."""
    edges = {'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}
    assert cycles(edges) == [['a', 'b', 'c']]
    path = tmp_path / 'gpusq_mm' / 'sparsity' / 'x.py'
    path.parent.mkdir(parents=True)
    path.write_text('def f():\n    from gpusq_mm.engine import hooks\n')
    global PACKAGE
    old, PACKAGE = PACKAGE, str(tmp_path / 'gpusq_mm')
    try:
        modules = {'gpusq_mm.engine', 'gpusq_mm.engine.hooks',
                   'gpusq_mm.sparsity.x'}
        assert imports_of(str(path), modules) == {
            'gpusq_mm.engine', 'gpusq_mm.engine.hooks'}
    finally:
        PACKAGE = old


@pytest.mark.parametrize('package', sorted(FORBIDDEN))
def test_layers_exist_and_are_scanned(package):
    edges = graph()
    assert package in edges, package
    # relative imports resolve (a scan that sees nothing would pass)
    assert 'gpusq_mm.quantization.quant_layers' in edges[
        'gpusq_mm.quantization.attention_mha']
    assert 'gpusq_mm.checkpoint_format' in edges[
        'gpusq_mm.engine.hooks.qat_hook']
