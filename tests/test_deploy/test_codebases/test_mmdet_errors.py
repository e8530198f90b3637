"""Bad input to MMDetExporter: clear errors that name the problem."""
import copy

import pytest
import torch

from gpusq_mm.datasets import make_coco
from gpusq_mm.deploy.codebases.mmdet import (MMDetExporter,
                                             UnsupportedModelError)
from tests.test_deploy.test_codebases.test_mmdet_export import (build,
                                                                make_exporter)


@pytest.fixture(scope='module')
def coco(tmp_path_factory) -> str:
    return make_coco(str(tmp_path_factory.mktemp('coco')), num_train=1,
                     num_val=1)


def test_unsupported_head_names_module_and_lists_supported():
    """A real FCOS (anchor-free head) is refused before any tracing."""
    exporter = make_exporter('retinanet_swin_tiny_dense.py',
                             'ObjectDetection')
    cfg = exporter.model_cfg
    cfg.model.type = 'FCOS'
    cfg.model.bbox_head = dict(type='FCOSHead', num_classes=3,
                               in_channels=64, feat_channels=64,
                               stacked_convs=1,
                               strides=[8, 16, 32, 64, 128])
    cfg.model.train_cfg = None
    model = build(exporter)
    with pytest.raises(UnsupportedModelError,
                       match=r'bbox_head \(FCOSHead\) is not supported.*'
                       r'RetinaHead'):
        exporter.check_supported(model)
    with pytest.raises(UnsupportedModelError, match='FCOSHead'):
        exporter.export_module(model)


def test_unsupported_roi_head_in_two_stage():
    exporter = make_exporter('mask_rcnn_swin_tiny_dense.py',
                             'InstanceSegmentation')
    model = build(exporter)
    from mmdet.models.roi_heads.mask_heads import FusedSemanticHead
    from mmengine.registry import DefaultScope

    # its loss comes from the registry: build it in mmdet's scope whatever
    # scope an earlier test left as the default
    with DefaultScope.overwrite_default_scope('mmdet'):
        model.roi_head.mask_head = FusedSemanticHead(
            num_ins=1, fusion_level=0, num_classes=3)
    with pytest.raises(UnsupportedModelError,
                       match=r'roi_head\.mask_head \(FusedSemanticHead\).*'
                       r'FCNMaskHead'):
        exporter.check_supported(model)


def test_instance_segmentation_needs_mask_head():
    exporter = make_exporter('retinanet_swin_tiny_dense.py',
                             'InstanceSegmentation')
    with pytest.raises(UnsupportedModelError, match='no mask head'):
        exporter.check_supported(build(exporter))


def test_fake_quantized_model_is_still_supported():
    """Class-swapped QuantLinear/QuantConv2d keep the head types."""
    from gpusq_mm.quantization import insert_quantizers, select_quant_layers
    exporter = make_exporter('mask_rcnn_swin_tiny_dense.py',
                             'InstanceSegmentation')
    model = build(exporter)
    insert_quantizers(model, select_quant_layers(model))
    exporter.check_supported(model)


def test_unknown_task():
    exporter = make_exporter('retinanet_swin_tiny_dense.py',
                             'ObjectDetection')
    deploy_cfg = copy.deepcopy(exporter.deploy_cfg)
    deploy_cfg.codebase_config.task = 'Segmentation'
    with pytest.raises(ValueError, match="task='Segmentation'.*"
                       'InstanceSegmentation'):
        MMDetExporter(exporter.model_cfg, deploy_cfg)


def test_missing_and_unreadable_image(tmp_path):
    exporter = make_exporter('retinanet_swin_tiny_dense.py',
                             'ObjectDetection')
    with pytest.raises(FileNotFoundError, match='nope.jpg'):
        exporter.load_image(str(tmp_path / 'nope.jpg'))
    bad = tmp_path / 'bad.jpg'
    bad.write_text('not an image')
    with pytest.raises(ValueError, match='cannot read image .*bad.jpg'):
        exporter.load_image(str(bad))


def test_image_larger_than_input_shape(coco):
    exporter = make_exporter('retinanet_swin_tiny_dense.py',
                             'ObjectDetection')
    exporter.input_hw = (64, 64)
    with pytest.raises(ValueError, match=r'160x128 .*larger than '
                       r'onnx_config.input_shape \[64, 64\]'):
        exporter.load_image(f'{coco}/val/000000.jpg')


def test_load_image_pads_to_static_shape(coco):
    exporter = make_exporter('retinanet_swin_tiny_dense.py',
                             'ObjectDetection')
    exporter.input_hw = (160, 192)
    inputs, meta = exporter.load_image(f'{coco}/val/000000.jpg')
    assert inputs.shape == (1, 3, 160, 192)
    assert meta['img_shape'] == (128, 160)
    assert meta['input_shape'] == (160, 192)
    assert torch.all(inputs[..., 128:, :] == 0)
    assert torch.all(inputs[..., 160:] == 0)
    assert meta['data_samples'][0].batch_input_shape == (160, 192)
