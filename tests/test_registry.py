"""The config contract: unprefixed and scoped gpusq names resolve from the
mmdet, mmseg and mmpretrain scopes after ``custom_imports``."""
import subprocess
import sys
import textwrap

import pytest

SCOPES = ['mmdet', 'mmseg', 'mmpretrain']
NAMES = [('HOOKS', 'Sparse24Hook'), ('HOOKS', 'QATHook'),
         ('MODELS', 'MixedKDDistiller')]


@pytest.mark.parametrize('scope', SCOPES)
@pytest.mark.parametrize('registry,name', NAMES)
@pytest.mark.parametrize('prefix', ['', 'gpusq_mm.'])
def test_names_resolve_in_task_scope(scope, registry, name, prefix):
    import mmengine.registry as mmreg
    from mmengine.registry import DefaultScope

    import gpusq_mm
    root = getattr(mmreg, registry)
    with DefaultScope.overwrite_default_scope(scope):
        with root.switch_scope_and_registry(scope) as task_registry:
            assert task_registry.scope == scope
            obj = task_registry.get(prefix + name)
    assert obj is getattr(gpusq_mm, name)


def test_hooks_build_in_mmdet_scope():
    from mmengine.registry import HOOKS, DefaultScope

    from gpusq_mm import QATHook, Sparse24Hook
    with DefaultScope.overwrite_default_scope('mmdet'):
        hook = HOOKS.build(dict(type='Sparse24Hook', start_iter=3))
        qat = HOOKS.build(dict(type='gpusq_mm.QATHook', calib_batches=2))
    assert isinstance(hook, Sparse24Hook) and hook.start.start_iter == 3
    assert isinstance(qat, QATHook) and qat.calib_batches == 2


def test_custom_imports_alone_registers(tmp_path):
    """A fresh interpreter that never imports gpusq_mm itself: the config's
    ``custom_imports`` line is enough, and default_scope stays the task's."""
    cfg_file = tmp_path / 'cfg.py'
    cfg_file.write_text(textwrap.dedent('''
        _base_ = 'mmpretrain::deit/deit-tiny_4xb256_in1k.py'
        custom_imports = dict(imports=['gpusq_mm'],
                              allow_failed_imports=False)
        custom_hooks = [dict(type='Sparse24Hook'), dict(type='QATHook')]
    '''))
    code = textwrap.dedent(f'''
        import sys
        from mmengine.config import Config
        from mmengine.registry import HOOKS, MODELS, DefaultScope
        cfg = Config.fromfile({str(cfg_file)!r})
        assert 'gpusq_mm' in sys.modules
        assert cfg.default_scope == 'mmpretrain', cfg.default_scope
        for scope in ('mmdet', 'mmseg', 'mmpretrain'):
            with DefaultScope.overwrite_default_scope(scope):
                hooks = [HOOKS.build(h) for h in cfg.custom_hooks]
                assert [type(h).__name__ for h in hooks] == [
                    'Sparse24Hook', 'QATHook']
                with MODELS.switch_scope_and_registry(scope) as reg:
                    assert reg.get('MixedKDDistiller').__name__ == \\
                        'MixedKDDistiller'
        print('OK')
    ''')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith('OK')
