codebase_config = dict(type='mmseg', task='Segmentation', with_argmax=True)
# whole-image inference at any H and W: a dynamic-shape leaf sets
#   onnx_config = dict(dynamic_axes=_base_.mmseg_dynamic_axes)
mmseg_dynamic_axes = dict(
    input={0: 'batch', 2: 'height', 3: 'width'},
    seg_logits={0: 'batch', 2: 'height', 3: 'width'},
    seg_labels={0: 'batch', 1: 'height', 2: 'width'})
