"""Parity on what ships, over several images: every graph the deploy writes
for the backend (the Q/DQ file and the ORT-lowered file) is checked against
PyTorch on the test image plus images of the val set, with per-image
verdicts and an aggregate rule; a corrupted lowered graph fails the tool."""
import hashlib
import os.path as osp

import numpy as np
import onnx
import pytest
from mmengine.config import Config
from onnx import numpy_helper

from gpusq_mm.deploy import pipeline as pipeline_mod
from gpusq_mm.deploy.codebases import build_exporter
from gpusq_mm.deploy.parity import aggregate, parity_rule
from tests.utils import REPO, load_tool

from .conftest import demo_config

SEG_ORT = osp.join(REPO, 'configs', 'deploy', 'segmentation',
                   'segmentation_onnxruntime_int8.py')


def _corrupt_head(path: str) -> None:
    """Negate the weights of the graph's last convolution (the decode
    head's classifier, ``conv_seg``) in ``path``."""
    model = onnx.load(path)
    inits = {i.name: i for i in model.graph.initializer}
    conv = next(n for n in reversed(model.graph.node)
                if n.op_type == 'Conv' and n.input[1] in inits)
    init = inits[conv.input[1]]
    array = numpy_helper.to_array(init)
    init.CopyFrom(numpy_helper.from_array(-array, init.name))
    onnx.save(model, path)


def _sha(path: str) -> str:
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_corrupted_lowered_graph_fails_the_tool(segformer_gpusq_ckpt,
                                                seg_img, data_cwd, tmp_path,
                                                monkeypatch, capsys):
    monkeypatch.chdir(data_cwd)  # the demo config's relative val set
    real = pipeline_mod.lower_file

    def corrupting(src, dst):
        facts = real(src, dst)
        _corrupt_head(dst)
        return facts

    monkeypatch.setattr(pipeline_mod, 'lower_file', corrupting)
    out = tmp_path / 'out'
    monkeypatch.setattr('sys.argv', [
        'deploy.py', SEG_ORT, demo_config('segformer_tiny_gpusq.py'),
        segformer_gpusq_ckpt, seg_img, '--work-dir', str(out)])
    assert load_tool('deploy.py').main() == 1
    err = capsys.readouterr().err
    assert 'parity failed' in err and 'end2end.ort.onnx' in err
    assert "'end2end.onnx'" not in err  # the Q/DQ file itself passed
    import json
    parity = json.loads((out / 'report.json').read_text())['parity']
    graphs = parity['graphs']
    assert graphs['end2end.onnx']['passed']
    lowered = graphs['end2end.ort.onnx']
    assert not lowered['passed'] and lowered['passed_images'] == 0
    # the test image plus the val set's other image (its first is the
    # test image), each judged
    assert lowered['num_images'] == 2
    assert [osp.basename(v['image']) for v in lowered['images']][0] == \
        osp.basename(seg_img)
    assert 'FAIL' in (out / 'report.md').read_text()


def test_good_deploy_passes_every_image(segformer_gpusq_ckpt, seg_img,
                                        data_cwd, tmp_path, monkeypatch):
    """Without the corruption the same images pass; outside the data set's
    directory the images are flipped/resized variants of the test
    image."""
    ckpt_sha = _sha(segformer_gpusq_ckpt)
    pipe = pipeline_mod.DeployPipeline(
        Config.fromfile(SEG_ORT),
        Config.fromfile(demo_config('segformer_tiny_gpusq.py')),
        segformer_gpusq_ckpt, seg_img, str(tmp_path))
    report = pipe.run()  # cwd: not data_cwd, the val set is not readable
    assert report['parity_images']['source'] == 'variants of the test image'
    for graph in ('end2end.onnx', 'end2end.ort.onnx'):
        result = report['parity']['graphs'][graph]
        assert result['num_images'] == 9 and result['passed']
        assert all(v['passed'] for v in result['images'])
    assert _sha(segformer_gpusq_ckpt) == ckpt_sha


def test_segmentation_tie_rule_is_fixed():
    exporter = build_exporter(
        Config.fromfile(demo_config('segformer_tiny_gpusq.py')),
        Config.fromfile(SEG_ORT))
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(1, 3, 20, 20)).astype(np.float32)
    ref[:, 0, :2] = ref[:, 1, :2] + 0.02  # 40 near-tie pixels (2 rows)
    ref[:, 2, :2] = -5
    got = ref.copy()
    got[:, 1, :2] += 0.04  # flips exactly the near ties
    outs = lambda x: [x, x.argmax(1)]  # noqa: E731
    tie = exporter.compare(outs(ref), outs(got))
    assert tie['pixel_agreement'] == pytest.approx(0.9)
    assert tie['tie_pixels'] == 40 and tie['passed']
    # the same flips with a large error elsewhere: no ties excused
    worse = got.copy()
    worse[:, 2, 10:, :] += 0.5
    verdict = exporter.compare(outs(ref), outs(worse))
    assert verdict['tie_pixels'] == 0 and not verdict['passed']
    # flips beyond the margin tolerance are disagreements, even with a
    # small logit error
    wide = ref.copy()
    wide[:, 0, 4:6] = wide[:, 1, 4:6] + 0.15
    wide[:, 2, 4:6] = -5
    moved = wide.copy()
    moved[:, 0, 4:6] -= 0.08
    moved[:, 1, 4:6] += 0.08
    verdict = exporter.compare(outs(wide), outs(moved))
    assert verdict['max_abs_logit_diff'] < 0.1
    assert verdict['tie_pixels'] == 0 and not verdict['passed']


def test_aggregate_rule():
    det = parity_rule(Config(dict(codebase_config=dict(type='mmdet'))),
                      'mmdet')
    assert det == dict(num_images=8, min_pass_fraction=0.875)
    seg = parity_rule(Config(dict(codebase_config=dict(type='mmseg'))),
                      'mmseg')
    assert seg['min_pass_fraction'] == 1.0
    verdicts = [dict(passed=True)] * 7 + [dict(passed=False)]
    assert aggregate(verdicts, 0.875)['passed']
    assert not aggregate(verdicts, 1.0)['passed']
    assert not aggregate(verdicts[:6] + [dict(passed=False)] * 2,
                         0.875)['passed']
    assert not aggregate([], 1.0)['passed']
    with pytest.raises(ValueError, match='min_pass_fraction'):
        parity_rule(Config(dict(codebase_config=dict(
            parity=dict(min_pass_fraction=0)))), 'mmseg')
