"""``import gpusq_mm`` changes exactly the MMEngine attributes that
:mod:`gpusq_mm.patches` lists, idempotently, and :func:`undo` puts the
originals back.

Runs in a fresh interpreter: this test process imported gpusq_mm long ago.
"""
import json
import subprocess
import sys

import pytest

from gpusq_mm import patches

SCRIPT = r'''
import json
import sys
import types

# import-time changes of the OpenMMLab packages themselves are not ours
import mmdet.models, mmseg.models, mmpretrain.models  # noqa: E401,F401
import mmengine.dataset, mmengine.fileio, mmengine.runner  # noqa: E401,F401


def snapshot():
    """id of every attribute of every loaded mmengine module, of every
    class attribute of the classes they define, and of every entry of the
    dicts among both. A dict counts by its entries (a re-sorted registry is
    no patch), once, under the deepest module that holds it (the one that
    defines it; packages re-export it)."""
    out, tables = {}, {}
    for name, mod in list(sys.modules.items()):
        if not name.startswith('mmengine') or mod is None:
            continue
        for key, value in list(vars(mod).items()):
            path = f'{name}.{key}'
            if isinstance(value, types.ModuleType):
                continue
            if isinstance(value, dict):
                seen = tables.get(id(value))
                if seen is None or len(name) > len(seen[0]):
                    tables[id(value)] = (name, path, value)
                continue
            out[path] = id(value)
            if isinstance(value, type) and value.__module__ == name:
                for ckey, cvalue in list(vars(value).items()):
                    if isinstance(cvalue, dict):
                        tables[id(cvalue)] = (name, f'{path}.{ckey}', cvalue)
                    else:
                        out[f'{path}.{ckey}'] = id(cvalue)
    for _, path, table in tables.values():
        for key, value in list(table.items()):
            if isinstance(key, str):
                out[f'{path}[{key!r}]'] = id(value)
    return out


def diff(before, after):
    """What changed, was removed, or was added beside what existed."""
    changed = {k for k in before if after.get(k) != before[k]}
    owners = {k.rsplit('.', 1)[0] for k in before}
    added = {k for k in after if k not in before
             and k.split('[')[0].rsplit('.', 1)[0] in owners}
    return sorted(changed | added)


before = snapshot()
import gpusq_mm  # noqa: E402
from gpusq_mm import patches  # noqa: E402
after = snapshot()
again = patches.apply()
after_again = snapshot()
undone = patches.undo(['atomic_io'])
partly = snapshot()
patches.undo()
restored = snapshot()
reapplied = patches.apply()
print(json.dumps(dict(
    changed=diff(before, after), again=again,
    changed_by_again=diff(after, after_again),
    undone=undone, still_patched=diff(before, partly),
    restored=diff(before, restored), reapplied=reapplied,
    changed_by_reapply=diff(before, snapshot()),
    targets=patches.targets(), applied=patches.applied())))
'''


@pytest.fixture(scope='module')
def report():
    proc = subprocess.run([sys.executable, '-c', SCRIPT],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _short(names):
    return sorted(n.replace('mmengine.', '') for n in names)


def test_import_changes_exactly_the_listed_attributes(report):
    assert report['changed'] == sorted(report['targets'])
    assert _short(report['targets']) == sorted([
        "runner.checkpoint.CheckpointLoader._schemes['']",
        "runner.checkpoint.CheckpointLoader._schemes['http://']",
        "runner.checkpoint.CheckpointLoader._schemes['https://']",
        "runner.checkpoint.CheckpointLoader._schemes['(\\\\S+\\\\:)?s3://']",
        "runner.checkpoint.CheckpointLoader._schemes"
        "['(\\\\S+\\\\:)?petrel://']",
        'runner.checkpoint.load_from_http',
        "fileio.backends.registry_utils.backends['local']",
        "fileio.backends.registry_utils.prefix_to_backends['']",
        'runner.checkpoint.find_latest_checkpoint',
        'runner.runner.find_latest_checkpoint',
        'dataset.base_dataset.BaseDataset._serialize_data'])


def test_apply_is_idempotent_and_undo_restores(report):
    assert report['again'] == [] and report['changed_by_again'] == []
    assert report['undone'] == ['atomic_io']
    assert report['still_patched'] == sorted(
        patches.targets(['safe_loader', 'dataset_checks']))
    assert report['restored'] == []  # the originals, object for object
    assert report['reapplied'] == list(patches.PATCHES)
    assert report['changed_by_reapply'] == report['changed']
    assert report['applied'] == list(patches.PATCHES)


def test_unknown_patch_name_is_refused():
    with pytest.raises(ValueError, match=r"unknown gpusq_mm patch.*'atomic'"
                       r".*'atomic_io'"):
        patches.undo(['atomic'])
    assert patches.applied() == list(patches.PATCHES)
