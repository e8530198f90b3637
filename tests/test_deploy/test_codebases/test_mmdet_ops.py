"""Standard-op detection primitives against the mmdet/mmcv originals, in
PyTorch and after export in ONNX Runtime."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from gpusq_mm.deploy.codebases.mmdet.compare import compare_detections
from gpusq_mm.deploy.codebases.mmdet.ops import (batched_nms,
                                                 delta_xywh_decode,
                                                 multilevel_roi_align,
                                                 paste_masks)


def random_boxes(n: int, size: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * size
    wh = torch.rand(n, 2, generator=g) * size / 2 + 1
    return torch.cat([xy, xy + wh], dim=1)


def run_onnx(module: nn.Module, inputs: tuple, tmp_path) -> list:
    path = str(tmp_path / 'op.onnx')
    names = [f'in{i}' for i in range(len(inputs))]
    torch.onnx.export(module, inputs, path, dynamo=False, opset_version=17,
                      input_names=names)
    graph = onnx.load(path)
    onnx.checker.check_model(graph)
    assert {n.domain for n in graph.graph.node} <= {''}
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    return session.run(None, {n: x.numpy() for n, x in zip(names, inputs)})


class _Fn(nn.Module):

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *args):
        return self.fn(*args)


def test_batched_nms_matches_mmcv(tmp_path):
    from mmcv.ops import batched_nms as mmcv_batched_nms
    boxes = random_boxes(300, 100, seed=0)
    scores = torch.rand(300, generator=torch.Generator().manual_seed(1))
    groups = torch.arange(300) % 3
    _, ref = mmcv_batched_nms(boxes, scores, groups,
                              dict(type='nms', iou_threshold=0.5))
    keep = batched_nms(boxes, scores, groups, 0.5)
    assert torch.equal(keep, ref)
    out = run_onnx(_Fn(lambda b, s, g: batched_nms(b, s, g, 0.5, 0.3, 50)),
                   (boxes, scores, groups), tmp_path)[0]
    expected = ref[scores[ref] > 0.3][:50]
    np.testing.assert_array_equal(out, expected.numpy())


def test_paste_masks_matches_mmdet(tmp_path):
    from mmdet.models.roi_heads.mask_heads.fcn_mask_head import _do_paste_mask
    boxes = random_boxes(6, 60, seed=2) - 10  # some cross the border
    probs = torch.rand(6, 28, 28, generator=torch.Generator().manual_seed(3))
    ref, _ = _do_paste_mask(probs[:, None], boxes, 48, 64, skip_empty=False)
    out = paste_masks(probs, boxes, 48, 64)
    assert out.shape == (6, 48, 64)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
    onnx_out = run_onnx(_Fn(lambda m, b: paste_masks(m, b, 48, 64)),
                        (probs, boxes), tmp_path)[0]
    np.testing.assert_allclose(onnx_out, ref.numpy(), atol=1e-5)


def test_multilevel_roi_align_matches_extractor(tmp_path):
    from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor
    strides = [4, 8, 16, 32]
    extractor = SingleRoIExtractor(
        roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0),
        out_channels=8, featmap_strides=strides)
    g = torch.Generator().manual_seed(4)
    feats = tuple(torch.randn(1, 8, 256 // s, 320 // s, generator=g)
                  for s in strides)
    sides = torch.tensor([20., 60, 130, 250, 420] * 6)[:, None]  # 4 levels
    xy = torch.rand(30, 2, generator=g) * 200
    boxes = torch.cat([xy, xy + sides * torch.tensor([1., 1.3])], dim=1)
    rois = torch.cat([torch.zeros(len(boxes), 1), boxes], dim=1)
    levels = extractor.map_roi_levels(rois, len(strides))
    assert len(levels.unique()) == len(strides)
    ref = extractor(feats, rois)
    out = multilevel_roi_align(feats, rois, extractor)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    onnx_out = run_onnx(
        _Fn(lambda r, *f: multilevel_roi_align(f, r, extractor)),
        (rois, ) + feats, tmp_path)[0]
    np.testing.assert_allclose(onnx_out, ref.numpy(), atol=1e-4)


@pytest.mark.parametrize('stds', [(1., 1., 1., 1.), (.1, .1, .2, .2)])
def test_delta_decode_matches_coder(stds):
    from mmdet.models.task_modules.coders import DeltaXYWHBBoxCoder
    coder = DeltaXYWHBBoxCoder(target_means=(0., 0., 0., 0.),
                               target_stds=stds)
    priors = random_boxes(50, 100, seed=7)
    deltas = torch.randn(50, 4, generator=torch.Generator().manual_seed(8))
    deltas[0, 2:] = 10  # exercises the wh_ratio clamp
    ref = coder.decode(priors, deltas, max_shape=(90, 110))
    out = delta_xywh_decode(priors, deltas, coder, (90, 110))
    torch.testing.assert_close(out, ref)


def _dets(rows):
    return np.array(rows, np.float32).reshape(-1, 5)


def test_compare_detections():
    ref = [_dets([[0, 0, 10, 10, .9], [20, 20, 40, 40, .8]]),
           np.array([1, 2])]
    assert compare_detections(ref, ref, with_mask=False)['passed']
    swapped = [ref[0][::-1].copy(), ref[1][::-1].copy()]
    assert compare_detections(ref, swapped, with_mask=False)['passed']
    wrong_label = [ref[0], np.array([1, 0])]
    result = compare_detections(ref, wrong_label, with_mask=False)
    assert not result['passed'] and result['num_matched'] == 1
    shifted = [ref[0] + np.array([2, 0, 2, 0, 0], np.float32), ref[1]]
    result = compare_detections(ref, shifted, with_mask=False)
    assert not result['passed']
    assert result['min_box_iou'] == pytest.approx(8 / 12)
    empty = [_dets([]), np.zeros(0, np.int64)]
    assert compare_detections(empty, empty, with_mask=False)['passed']
    assert not compare_detections(empty, ref, with_mask=False)['passed']
    assert not compare_detections(ref, empty, with_mask=False)['passed']


def test_compare_masks():
    masks = np.zeros((1, 10, 10), np.uint8)
    masks[0, :5, :5] = 1
    ref = [_dets([[0, 0, 5, 5, .9]]), np.array([0]), masks]
    assert compare_detections(ref, ref, with_mask=True)['min_mask_iou'] == 1
    other = masks.copy()
    other[0, :5, 4] = 0  # IoU 20/25
    result = compare_detections(ref, [ref[0], ref[1], other], with_mask=True)
    assert result['min_mask_iou'] == pytest.approx(0.8)
    assert not result['passed']
