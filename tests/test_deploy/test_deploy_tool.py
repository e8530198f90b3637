"""tools/deploy.py on GPUSQ checkpoints of a tiny DeiT and a tiny
SegFormer: the ONNX, its checks, parity and the bad inputs."""
import hashlib
import json
import os.path as osp

import numpy as np
import onnx
import pytest
import torch
from mmengine.config import Config

from gpusq_mm.deploy.codebases import UnsupportedModelError, build_exporter
from gpusq_mm.deploy.loader import NotGPUSQCheckpointError
from gpusq_mm.deploy.pipeline import DeployPipeline
from gpusq_mm.deploy.verify import DeployVerifyError
from tests.utils import REPO, run_tool

from .conftest import demo_config

DEPLOY = osp.join(REPO, 'configs', 'deploy')
CLS_ORT = osp.join(DEPLOY, 'classification',
                   'classification_onnxruntime_int8.py')
SEG_ORT = osp.join(DEPLOY, 'segmentation', 'segmentation_onnxruntime_int8.py')


def _pipeline(deploy_cfg: str, model_cfg: str, ckpt: str, img: str,
              work_dir, **kwargs) -> DeployPipeline:
    return DeployPipeline(Config.fromfile(deploy_cfg),
                          Config.fromfile(demo_config(model_cfg)), ckpt, img,
                          str(work_dir), **kwargs)


def _sha(path: str) -> str:
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_deit_int8_onnx(deit_gpusq_ckpt, cls_img, tmp_path):
    report = _pipeline(CLS_ORT, 'deit_tiny_gpusq.py', deit_gpusq_ckpt,
                       cls_img, tmp_path).run()
    assert report['from_distiller'] and report['gpusq']['phase'] == 'Q'
    model = onnx.load(report['onnx'])
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version >= 17
    layers = {r['layer']: r for r in report['layers']}
    sparse = [n for n, r in layers.items() if r['sparse_24']]
    quantized = [n for n, r in layers.items() if r['weight_bits'] == 8]
    # every Linear of the 4 blocks is 2:4 and INT8; the head is INT8 only
    assert len(sparse) == 16 and len(quantized) == 17
    assert report['qdq_pairs'] == len(quantized)
    assert all(layers[n]['zeros'] >= 0.5 for n in sparse)
    parity = report['parity']
    assert parity['passed'] and parity['top1_equal']
    assert parity['logits_cosine'] >= 0.999
    assert report['engine']['built'] is False  # no TensorRT here
    assert report['sizes']['compression_vs_fp32'] > 5
    md = open(osp.join(tmp_path, 'report.md')).read()
    assert 'PASSED' in md and 'backbone.layers.0.attn.qkv' in md
    assert json.load(open(osp.join(tmp_path, 'report.json')))['layers']


def test_segformer_int8_onnx(segformer_gpusq_ckpt, seg_img, tmp_path):
    pipe = _pipeline(SEG_ORT, 'segformer_tiny_gpusq.py',
                     segformer_gpusq_ckpt, seg_img, tmp_path)
    report = pipe.run()
    onnx.checker.check_model(report['onnx'], full_check=True)
    # dynamic batch, height and width
    from gpusq_mm.deploy.exporter import run_ort, run_torch
    x = torch.nn.functional.interpolate(pipe.inputs, size=(48, 80),
                                        mode='bilinear').repeat(2, 1, 1, 1)
    got = run_ort(report['onnx'], x)
    assert got[0].shape == (2, 6, 48, 80) and got[1].shape == (2, 48, 80)
    # a 4-iteration model at another size: many near-tie pixels, whose
    # argmax float noise (thread count, ORT kernels) can flip; the logits
    # themselves must stay close, and only near-ties may flip
    ref = run_torch(pipe.reference, x)
    parity = pipe.exporter.compare(ref, got)
    assert parity['pixel_agreement'] >= 0.95
    assert parity['max_abs_logit_diff'] < 0.1
    top2 = np.sort(ref[0], axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    flipped = ref[1] != got[1]
    assert (margin[flipped] <= 2 * parity['max_abs_logit_diff']).all()
    rows = report['layers']
    assert report['qdq_pairs'] == sum(bool(r['weight_bits']) for r in rows)
    assert report['qdq_pairs'] >= 30
    # attention projections (nn.MultiheadAttention) are exported 2:4 too
    assert any(r['layer'].endswith('attn.attn.q_proj') and r['sparse_24']
               for r in rows)
    # the test image: every flipped pixel is a near-tie (measured with the
    # 'auto' critical-layer KD checkpoint: 71 of 4096 pixels, top-2 margin
    # and max logit difference below 0.1), so the deploy's parity passes
    parity = report['parity']
    assert parity['passed'] and parity['agreement_with_ties'] == 1.0
    assert parity['pixel_agreement'] >= 0.95
    assert parity['max_abs_logit_diff'] < 0.1
    assert report['input_shape'][-2:] == [64, 64]


def test_segformer_ort_lowering(segformer_gpusq_ckpt, seg_img, tmp_path):
    """The onnxruntime backend also writes end2end.ort.onnx (lowered for
    ONNX Runtime); end2end.onnx keeps the weight Q/DQ. The steps are run
    one by one so that this holds whatever the parity verdict."""
    pipe = _pipeline(SEG_ORT, 'segformer_tiny_gpusq.py',
                     segformer_gpusq_ckpt, seg_img, tmp_path)
    for step in pipe.steps():
        step()
    report = pipe.report
    low = report['ort_lowering']
    assert low['onnx'] == str(tmp_path / 'end2end.ort.onnx')
    assert osp.isfile(low['onnx']) and report['steps'] == {}
    # the convolutions, and the MiT attention's nn.MultiheadAttention
    # projections (q, k, v, out_proj: int8 MatMuls already)
    attention = [r for r in report['layers']
                 if '.attn.attn.' in r['layer'] and r['weight_bits']]
    assert len(attention) == 32
    assert low['conv_weights_folded'] + low['pointwise_to_matmul'] + \
        len(attention) == report['qdq_pairs']
    assert low['pointwise_to_matmul'] == 16
    assert low['integer_matmuls'] >= 16 + len(attention)
    # near-tie logits of a 4-iteration model: NCHWc float order moves some
    assert low['vs_qdq']['pixel_agreement'] >= 0.95
    assert low['vs_qdq']['max_abs_logit_diff'] < 0.1
    assert low['vs_torch']['pixel_agreement'] >= 0.95
    ops = {n.op_type for n in onnx.load(low['onnx']).graph.node}
    assert 'QuantizeLinear' in ops and 'DequantizeLinear' in ops
    # dynamic batch, height and width survive the lowering
    from gpusq_mm.deploy.exporter import run_ort
    x = torch.nn.functional.interpolate(pipe.inputs, size=(48, 80),
                                        mode='bilinear').repeat(2, 1, 1, 1)
    got, ref = run_ort(low['onnx'], x), run_ort(report['onnx'], x)
    assert got[1].shape == ref[1].shape == (2, 48, 80)
    assert got[0].shape == ref[0].shape and got[0].shape[2:] == (48, 80)
    assert (got[1] == ref[1]).mean() >= 0.95
    assert 'end2end.ort.onnx' in json.dumps(json.load(open(
        osp.join(tmp_path, 'report.json'))))


def test_fp16_tensorrt_flavour(deit_gpusq_ckpt, cls_img, tmp_path):
    cfg = Config.fromfile(osp.join(
        DEPLOY, 'classification',
        'classification_tensorrt-int8-sparse_static-224x224.py'))
    # an explicit profile that disagrees with the static export is an error
    static = [1, 3, 224, 224]
    cfg.merge_from_dict(dict(
        onnx_config=dict(input_shape=[32, 32]),
        backend_config=dict(model_inputs=[dict(input_shapes=dict(
            input=dict(min_shape=static, opt_shape=static,
                       max_shape=static)))])))
    with pytest.raises(ValueError, match=r'model_inputs .*\[1, 3, 224, 224\]'
                       r'.*\[1, 3, 32, 32\]'):
        DeployPipeline(cfg, Config.fromfile(demo_config(
            'deit_tiny_gpusq.py')), deit_gpusq_ckpt, cls_img,
                       str(tmp_path / 'mismatch')).run()
    # without model_inputs the static profile follows input_shape
    cfg.backend_config.pop('model_inputs')
    pipe = DeployPipeline(cfg, Config.fromfile(demo_config(
        'deit_tiny_gpusq.py')), deit_gpusq_ckpt, cls_img, str(tmp_path))
    report = pipe.run()
    model = onnx.load(report['onnx'])
    assert report['precision'] == 'fp16' and report['opset'] >= 19
    types = {i.data_type for i in model.graph.initializer}
    assert onnx.TensorProto.FLOAT16 in types and onnx.TensorProto.INT8 in \
        types
    assert model.graph.input[0].type.tensor_type.elem_type == \
        onnx.TensorProto.FLOAT
    assert report['parity']['logits_cosine'] >= 0.999
    script = open(osp.join(tmp_path, 'build_engine.sh')).read()
    assert '--stronglyTyped' in script and '--sparsity=enable' in script
    assert '--shapes=input:1x3x32x32' in script
    # TensorRT gets the Q/DQ graph only, no ONNX Runtime lowering
    assert 'ort_lowering' not in report
    assert not (tmp_path / 'end2end.ort.onnx').exists()


def test_dense_export_of_plain_checkpoint(data_cwd, cls_img, tmp_path):
    from gpusq_mm.deploy.loader import build_task_model
    model_cfg = Config.fromfile(demo_config('deit_tiny_dense.py'))
    ckpt = str(tmp_path / 'plain.pth')
    torch.save(dict(state_dict=build_task_model(model_cfg, 'mmpretrain')
                    .state_dict(), meta={}), ckpt)
    with pytest.raises(NotGPUSQCheckpointError, match=r'--dense'):
        DeployPipeline(Config.fromfile(CLS_ORT), model_cfg, ckpt, cls_img,
                       str(tmp_path / 'a')).run()
    report = DeployPipeline(Config.fromfile(CLS_ORT), model_cfg, ckpt,
                            cls_img, str(tmp_path / 'b'), dense=True).run()
    names = {n.op_type for n in onnx.load(report['onnx']).graph.node}
    assert 'QuantizeLinear' not in names and report['parity']['passed']


def test_cli_refuses_non_gpusq_checkpoint(data_cwd, cls_img, tmp_path):
    ckpt = str(tmp_path / 'plain.pth')
    torch.save(dict(state_dict={}, meta=dict(epoch=1)), ckpt)
    before = _sha(ckpt)
    proc = run_tool('deploy.py', [CLS_ORT, demo_config('deit_tiny_dense.py'),
                                  ckpt, cls_img, '--work-dir',
                                  str(tmp_path / 'out')],
                    cwd=data_cwd, check=False)
    assert proc.returncode == 2
    assert "no meta['gpusq']" in proc.stderr and '--dense' in proc.stderr
    assert _sha(ckpt) == before


def test_cli_deploys_deit(deit_gpusq_ckpt, cls_img, data_cwd, tmp_path):
    out = tmp_path / 'out'
    proc = run_tool('deploy.py', [CLS_ORT, demo_config('deit_tiny_gpusq.py'),
                                  deit_gpusq_ckpt, cls_img, '--work-dir',
                                  str(out), '--dump-info', '--show'],
                    cwd=data_cwd)
    assert '"passed": true' in proc.stdout
    for name in ('end2end.onnx', 'build_engine.sh', 'report.json',
                 'report.md', 'deploy.json', 'pipeline.json',
                 'outputs.npz'):
        assert (out / name).is_file(), name
    for step in ('load_checkpoint', 'export_onnx', 'verify_onnx',
                 'verify_outputs', 'build_trt'):
        assert f'step {step}' in proc.stderr
    outputs = np.load(out / 'outputs.npz')
    assert outputs['torch_0'].shape == outputs['onnxruntime_0'].shape


def test_unreadable_image(deit_gpusq_ckpt, tmp_path):
    bad = tmp_path / 'broken.jpg'
    bad.write_bytes(b'not an image')
    with pytest.raises(ValueError, match=r'cannot read image .*broken.jpg'):
        _pipeline(CLS_ORT, 'deit_tiny_gpusq.py', deit_gpusq_ckpt,
                  str(bad), tmp_path).run()
    with pytest.raises(FileNotFoundError, match='does not exist'):
        _pipeline(CLS_ORT, 'deit_tiny_gpusq.py', deit_gpusq_ckpt,
                  str(tmp_path / 'missing.png'), tmp_path).run()


def test_unsupported_head(deit_gpusq_ckpt, cls_img, tmp_path):
    from mmpretrain.models.heads import MultiLabelLinearClsHead
    pipe = _pipeline(CLS_ORT, 'deit_tiny_gpusq.py', deit_gpusq_ckpt,
                     cls_img, tmp_path)
    pipe.load_checkpoint()
    pipe.loaded.model.head = MultiLabelLinearClsHead(3, 64)
    with pytest.raises(UnsupportedModelError) as err:
        pipe.exporter.check_supported(pipe.loaded.model)
    assert 'head MultiLabelLinearClsHead is not supported' in str(err.value)
    assert 'VisionTransformerClsHead' in str(err.value)


def test_unsupported_seg_inference_mode(segformer_gpusq_ckpt, seg_img,
                                        tmp_path):
    model_cfg = Config.fromfile(demo_config('segformer_tiny_gpusq.py'))
    model_cfg.model.architecture.test_cfg = dict(
        mode='slide', crop_size=(32, 32), stride=(16, 16))
    pipe = DeployPipeline(Config.fromfile(SEG_ORT), model_cfg,
                          segformer_gpusq_ckpt, seg_img, str(tmp_path))
    with pytest.raises(UnsupportedModelError, match="'slide'.*'whole'"):
        pipe.run()


def test_tampered_onnx_fails_the_tool(deit_gpusq_ckpt, cls_img, tmp_path):
    from onnx import numpy_helper
    pipe = _pipeline(CLS_ORT, 'deit_tiny_gpusq.py', deit_gpusq_ckpt,
                     cls_img, tmp_path)
    for step in pipe.steps()[:4]:  # check_inputs .. export_onnx
        step()
    model = onnx.load(pipe.onnx_path)
    init = next(i for i in model.graph.initializer
                if i.name.endswith('layers.1.ffn.layers.1.deploy_weight_int8'))
    weight = numpy_helper.to_array(init).copy()
    weight[weight == 0] = 1  # every pruned entry filled in
    init.CopyFrom(numpy_helper.from_array(weight, init.name))
    onnx.save(model, pipe.onnx_path)
    with pytest.raises(DeployVerifyError,
                       match=r'layers\.1\.ffn\.layers\.1 .*not 2:4|groups'):
        pipe.verify_onnx()


def test_mmdet_exporter_import_error_is_clear(monkeypatch):
    from gpusq_mm.deploy import codebases
    monkeypatch.setitem(codebases.CODEBASES, 'mmdet',
                        'gpusq_mm.deploy.codebases.no_such:MMDetExporter')
    cfg = Config(dict(codebase_config=dict(type='mmdet')))
    with pytest.raises(ImportError, match='cannot import the mmdet exporter'):
        build_exporter(Config(), cfg)
    with pytest.raises(ValueError, match='not supported'):
        build_exporter(Config(), Config(dict(codebase_config=dict(
            type='mmocr'))))


def _one_shot_gpusq_checkpoint(model_cfg: Config, scope: str, img: str,
                               path: str, deploy_cfg: Config) -> None:
    """A checkpoint in the GPUSQ format (what the hooks write) from one-shot
    2:4 masks and calibration on ``img``."""
    from gpusq_mm.deploy.loader import build_task_model
    from gpusq_mm.oneshot import quick_gpusq
    torch.manual_seed(0)
    model = build_task_model(model_cfg, scope)
    inputs, _ = build_exporter(model_cfg, deploy_cfg).load_image(img)
    sparse, masks = quick_gpusq(model, [inputs])
    from gpusq_mm.quantization import quant_gemms
    layers = sorted(quant_gemms(model))
    torch.save(dict(
        state_dict=model.state_dict(),
        meta=dict(gpusq=dict(
            phase='Q', sparsity=dict(pattern='2:4', method='magnitude',
                                     complete=True, layers=sparse),
            quant=dict(scheme='int8', calibrator='max', layers=layers))),
        gpusq_sparse24=dict(method='magnitude', frozen=False, masks=masks,
                            started_at=0),
        gpusq_qat=dict(layers=layers, weight_bits=8, calibrator='max')),
        path)


def test_upernet_swin_static(seg_img, tmp_path):
    """UPerNet Swin: pyramid pooling exported with constant bins (static
    shapes); the auxiliary head is not deployed and not reported."""
    deploy_cfg = Config.fromfile(osp.join(
        DEPLOY, 'segmentation', 'segmentation_onnxruntime_int8_static.py'))
    model_cfg = Config.fromfile(demo_config('upernet_swin_tiny_dense.py'))
    ckpt = str(tmp_path / 'upernet.pth')
    _one_shot_gpusq_checkpoint(model_cfg, 'mmseg', seg_img, ckpt, deploy_cfg)
    pipe = DeployPipeline(deploy_cfg, model_cfg, ckpt, seg_img,
                          str(tmp_path / 'out'))
    for step in pipe.steps():
        step()
    report = pipe.report
    assert report['deploy']['not_deployed'] == [
        'auxiliary_head.convs.0.conv']
    assert report['deploy']['sparse'] == sum(r['sparse_24']
                                             for r in report['layers'])
    # one-shot random weights: an activation rounding flip at a boundary
    # spreads through the random network and costs a few % of pixels on
    # some of the 9 images (1 to 3 of them at 97.4-98.8 % in our runs, i.e.
    # below the 99 % rule, which the tool then reports as a failure); the
    # others agree exactly
    verdicts = report['parity']['graphs']['end2end.onnx']['images']
    assert len(verdicts) == 9
    assert all(v['pixel_agreement'] >= 0.97 for v in verdicts)
    assert sum(v['pixel_agreement'] == 1.0 for v in verdicts) >= 5
    rows = report['layers']
    assert report['qdq_pairs'] == sum(bool(r['weight_bits']) for r in rows)
    assert sum(r['sparse_24'] for r in rows) >= 30
    ops = {n.op_type for n in onnx.load(report['onnx']).graph.node}
    assert 'GlobalAveragePool' in ops or 'ReduceMean' in ops
    # dynamic H/W cannot carry the pooling bins: a clear error
    dynamic = Config.fromfile(SEG_ORT)
    with pytest.raises(UnsupportedModelError, match='UPerHead.*static'):
        DeployPipeline(dynamic, model_cfg, ckpt, seg_img,
                       str(tmp_path / 'dyn')).run()


def test_cli_deploys_mask_rcnn(data_cwd, tmp_path):
    """tools/deploy.py on a Mask R-CNN Swin checkpoint (FP32, ``--dense``):
    the detection configs set no static input shape, so the exporter takes
    the pre-processed image's (128x160 here)."""
    from gpusq_mm.deploy.loader import build_task_model
    cfg = Config.fromfile(demo_config('mask_rcnn_swin_tiny_dense.py'))
    torch.manual_seed(0)
    model = build_task_model(cfg, 'mmdet', init_weights=True)
    ckpt = str(tmp_path / 'mask_rcnn.pth')
    torch.save(dict(state_dict=model.state_dict(), meta={}), ckpt)
    img = osp.join(data_cwd, 'data/demo/coco/val/000000.jpg')
    out = tmp_path / 'out'
    run_tool('deploy.py', [
        osp.join(DEPLOY, 'detection', 'detection_onnxruntime_fp32-dense.py'),
        demo_config('mask_rcnn_swin_tiny_dense.py'), ckpt, img, '--dense',
        '--work-dir', str(out)], cwd=data_cwd)
    report = json.loads((out / 'report.json').read_text())
    assert report['input_shape'] == [1, 3, 128, 160]
    assert report['parity']['passed'] and report['parity']['num_checked']
    assert report['qdq_pairs'] == 0
    onnx.checker.check_model(str(out / 'end2end.onnx'), full_check=True)


def test_detection_parity_min_match():
    """INT8 detection configs accept 8 of the top 10 detections; FP32 ones
    need all 10."""
    from gpusq_mm.deploy.codebases.mmdet.compare import compare_detections
    boxes = np.array([[10. * i, 0, 10. * i + 8, 8, 1 - i / 20]
                      for i in range(10)], np.float32)
    labels = np.zeros(10, np.int64)
    moved = boxes.copy()
    moved[[3, 7], :4] += 4  # two of ten detections move (IoU < 0.9)
    strict = compare_detections([boxes, labels], [moved, labels], False)
    assert strict['num_matched'] == 8 and not strict['passed']
    assert compare_detections([boxes, labels], [moved, labels], False,
                              min_match=0.8)['passed']
    moved[5, :4] += 4
    assert not compare_detections([boxes, labels], [moved, labels], False,
                                  min_match=0.8)['passed']
    with pytest.raises(ValueError, match='min_match'):
        compare_detections([boxes, labels], [boxes, labels], False,
                           min_match=0)
    for name, want in (('detection_onnxruntime_int8.py', 0.8),
                       ('detection_onnxruntime_fp32-dense.py', 1.0)):
        exporter = build_exporter(
            Config.fromfile(demo_config('mask_rcnn_swin_tiny_dense.py')),
            Config.fromfile(osp.join(DEPLOY, 'detection', name)))
        assert exporter.min_match == want
