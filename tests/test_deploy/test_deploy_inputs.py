"""Bad deploy inputs: clear errors before any heavy step, and no file in the
work dir (nor the checkpoint) is touched."""
import hashlib
import os
import os.path as osp

import pytest
from mmengine.config import Config

from gpusq_mm.deploy.codebases.base import resolve_test_pipeline
from gpusq_mm.deploy.pipeline import DeployPipeline
from tests.utils import REPO, load_tool

from .conftest import demo_config

CLS_ORT = osp.join(REPO, 'configs', 'deploy', 'classification',
                   'classification_onnxruntime_int8.py')


def _snapshot(*paths) -> dict:
    files = {}
    for path in paths:
        for root, _, names in os.walk(path) if osp.isdir(path) else \
                [(osp.dirname(path), None, [osp.basename(path)])]:
            for name in names:
                full = osp.join(root, name)
                with open(full, 'rb') as f:
                    files[full] = hashlib.sha256(f.read()).hexdigest()
    return files


@pytest.fixture
def work_dir(tmp_path) -> str:
    """A work dir holding an earlier deploy's files."""
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'end2end.onnx').write_bytes(b'an earlier export')
    (out / 'report.json').write_text('{"earlier": true}')
    return str(out)


def _training_only(val: bool) -> Config:
    cfg = Config.fromfile(demo_config('deit_tiny_gpusq.py'))
    cfg.test_dataloader = None
    cfg.test_evaluator = None
    cfg.test_pipeline = None
    if not val:
        cfg.val_dataloader = None
    return cfg


def test_training_only_config_uses_val_pipeline():
    pipeline, source = resolve_test_pipeline(_training_only(val=True))
    assert source == 'val_dataloader' and pipeline
    with pytest.raises(ValueError, match=r'--test-pipeline FILE .* or add a '
                       'test_dataloader'):
        resolve_test_pipeline(_training_only(val=False))


def test_no_pipeline_fails_before_loading(deit_gpusq_ckpt, cls_img,
                                          work_dir):
    before = _snapshot(work_dir, deit_gpusq_ckpt)
    pipe = DeployPipeline(Config.fromfile(CLS_ORT), _training_only(False),
                          deit_gpusq_ckpt, cls_img, work_dir)
    with pytest.raises(ValueError, match='no test pipeline'):
        pipe.run()
    assert not hasattr(pipe, 'loaded')  # failed before the checkpoint
    assert _snapshot(work_dir, deit_gpusq_ckpt) == before


def test_test_pipeline_option(deit_gpusq_ckpt, cls_img, tmp_path, capsys,
                              monkeypatch):
    cfg = Config.fromfile(demo_config('deit_tiny_gpusq.py'))
    model_cfg = tmp_path / 'train_only.py'
    stripped = Config(dict(_training_only(False)))
    stripped.dump(str(model_cfg))
    pipeline_file = tmp_path / 'pipeline.py'
    pipeline_file.write_text(
        'test_pipeline = '
        f'{[t.to_dict() for t in cfg.test_dataloader.dataset.pipeline]!r}\n')
    args = ['deploy.py', CLS_ORT, str(model_cfg), deit_gpusq_ckpt, cls_img,
            '--work-dir', str(tmp_path / 'out')]
    tool = load_tool('deploy.py')
    monkeypatch.setattr('sys.argv', args)
    assert tool.main() == 2
    assert '--test-pipeline FILE' in capsys.readouterr().err
    monkeypatch.setattr('sys.argv', args + ['--test-pipeline',
                                            str(pipeline_file)])
    assert tool.main() == 0
    assert (tmp_path / 'out' / 'end2end.ort.onnx').is_file()
    monkeypatch.setattr('sys.argv', args + ['--test-pipeline',
                                            str(tmp_path / 'nope.py')])
    assert tool.main() == 2
    assert "--test-pipeline file '" in capsys.readouterr().err


@pytest.mark.parametrize('what', ['img', 'test_img', 'checkpoint'])
def test_inputs_checked_before_heavy_steps(what, deit_gpusq_ckpt, cls_img,
                                           work_dir, tmp_path):
    missing = str(tmp_path / 'missing.png')
    kwargs = dict(img=cls_img, test_img=None, checkpoint=deit_gpusq_ckpt)
    kwargs[what] = missing if what != 'checkpoint' else \
        str(tmp_path / 'missing.pth')
    before = _snapshot(work_dir, deit_gpusq_ckpt)
    pipe = DeployPipeline(Config.fromfile(CLS_ORT),
                          Config.fromfile(demo_config('deit_tiny_gpusq.py')),
                          kwargs['checkpoint'], kwargs['img'], work_dir,
                          test_img=kwargs['test_img'])
    with pytest.raises(FileNotFoundError,
                       match=r"missing\.p..' does not exist"):
        pipe.run()
    assert not hasattr(pipe, 'loaded') and 'gpusq' not in pipe.report
    assert _snapshot(work_dir, deit_gpusq_ckpt) == before


def test_missing_config_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr('sys.argv', [
        'deploy.py', str(tmp_path / 'deploy.py'), CLS_ORT, 'x.pth', 'x.png'])
    assert load_tool('deploy.py').main() == 2
    assert 'deploy config' in capsys.readouterr().err
