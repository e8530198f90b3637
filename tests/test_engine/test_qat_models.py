"""QATHook on real OpenMMLab transformers (tiny sizes), composed with
Sparse24Hook: finite non-zero scales on every targeted layer, finite loss,
2:4 effective weights, scales restored bit-identically on resume."""
import math
import os.path as osp

import pytest
import torch

import gpusq_mm  # noqa: F401
from gpusq_mm.quantization import (fake_quantize, quant_attention_layers,
                                   quant_layers)
from gpusq_mm.sparsity import count_violations
from gpusq_mm.utils import load_checkpoint_file
from tests.utils import train_demo

CASES = {
    'mask_rcnn_swin': ('mask_rcnn_swin_tiny_dense.py',
                       'backbone.stages.2.blocks.1.ffn.layers.1',
                       'backbone.stages.2.blocks.1.attn.w_msa'),
    'segformer': ('segformer_tiny_dense.py',
                  'backbone.layers.1.1.0.ffn.layers.4',
                  'backbone.layers.1.1.0.attn.attn'),
    'deit': ('deit_tiny_dense.py', 'backbone.layers.1.ffn.layers.0.0',
             'backbone.layers.0.attn'),
}


def _run(config, work, units, resume_from=None):
    hooks = [dict(type='Sparse24Hook'),
             dict(type='QATHook', start_iter=2, calib_batches=1,
                  quant_attention=True),
             dict(type='RNGStateHook')]
    return train_demo(config, work, hooks, units, resume_from)


@pytest.mark.slow
@pytest.mark.parametrize('case', list(CASES))
def test_qat_on_model(case, data_cwd, tmp_path, monkeypatch):
    monkeypatch.chdir(data_cwd)
    config, ffn_layer, attention = CASES[case]
    work = str(tmp_path / 'work')
    runner = _run(config, work, units=2)  # 4 iterations, QAT from iter 2
    layers = quant_layers(runner.model)
    assert ffn_layer in layers
    for name, layer in layers.items():
        assert layer.quant_state == 'quant', name
        assert math.isfinite(float(layer.input_quantizer.amax)) and \
            float(layer.input_quantizer.amax) > 0, name
        assert torch.isfinite(layer.weight_quantizer.amax).all() and \
            (layer.weight_quantizer.amax > 0).all(), name
    attn_layers = quant_attention_layers(runner.model)
    assert attention in attn_layers
    for name, module in attn_layers.items():
        for op, quantizer in module.matmul_quantizers.items():
            assert quantizer.quant_state == 'quant', (name, op)
            assert 0 < float(quantizer.amax) < math.inf, (name, op)
    loss = runner.message_hub.get_scalar('train/loss').current()
    assert math.isfinite(loss)
    # composition: the effective (fake-quantized) weight is still 2:4
    sparse = runner.hooks[[type(h).__name__ for h in runner.hooks].index(
        'Sparse24Hook')].masks
    for name in sparse:
        module = runner.model.get_submodule(name.rpartition('.')[0])
        if name.endswith('.weight') and hasattr(module, 'weight_quantizer'):
            effective = fake_quantize(module.weight,
                                      module.weight_quantizer.amax)
            assert count_violations(effective) == 0, name

    with open(osp.join(work, 'last_checkpoint')) as f:
        last = f.read().strip()
    ckpt = load_checkpoint_file(last)
    scales = {k: v for k, v in ckpt['state_dict'].items() if 'amax' in k}
    assert any('matmul_quantizers.p.amax' in k for k in scales)
    resumed = _run(config, work, units=3, resume_from=last)
    state = resumed.model.state_dict()
    for key, value in scales.items():
        assert torch.equal(state[key], value), key
    # the iterations after the resume equal those of an uninterrupted run
    full = _run(config, str(tmp_path / 'full'), units=3)
    losses = [r.message_hub.get_scalar('train/loss').data[0][-2:].tolist()
              for r in (resumed, full)]
    assert losses[0] == losses[1]
    assert set(quant_layers(resumed.model)) == set(layers)
    assert set(quant_attention_layers(resumed.model)) == set(attn_layers)


def test_mismatched_quantizer_state_is_refused(tmp_path):
    from gpusq_mm.checkpoint_format import restore_quant_structure
    from tests.test_engine.toy import ToyNet
    with pytest.raises(ValueError, match="'backbone.fc9'.*another model"):
        restore_quant_structure(
            ToyNet(), dict(gpusq_qat=dict(layers=['backbone.fc9'],
                                          weight_bits=8)))
