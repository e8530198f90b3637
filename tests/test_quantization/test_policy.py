"""gpusq_mm.quantization.policy: which layers get Q/DQ (and why the others
do not), and their insertion."""
import pytest
from torch import nn

from gpusq_mm.quantization.policy import (insert_quantizers, select_attention,
                                          select_quant_layers)
from gpusq_mm.quantization.quant_layers import QuantLinear


class Block(nn.Module):

    def __init__(self) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(3, 32, 4, 4)
        self.attn = nn.MultiheadAttention(32, 4, batch_first=True)
        self.fc1 = nn.Linear(32, 64)
        self.fc2 = nn.Linear(64, 32)
        self.norm = nn.LayerNorm(32)


def test_default_selection_and_reasons():
    decisions = select_quant_layers(Block())
    assert decisions['fc1'] == decisions['fc2'] == ''
    assert decisions['attn'] == '' and decisions['attn.out_proj'] == ''
    assert 'patch' in decisions['patch_embed']  # kept float by default
    assert 'norm' not in decisions  # LayerNorm is never a candidate
    with_patch = select_quant_layers(Block(), quant_patch_embed=True)
    assert with_patch['patch_embed'] == ''


def test_include_exclude_and_tied_out_proj():
    decisions = select_quant_layers(Block(), exclude=[r'^attn$'])
    assert decisions['attn'] and decisions['fc1'] == ''
    # the output projection of a float attention is bypassed: stays float
    assert 'whose input projections stay float' in decisions['attn.out_proj']
    only = select_quant_layers(Block(), include=[r'^fc2$'])
    assert [n for n, r in only.items() if not r] == ['fc2']
    with pytest.raises(ValueError, match='match no'):
        select_quant_layers(Block(), include=['nope'])


def test_insert_quantizers_swaps_selected_only():
    model = Block()
    done = insert_quantizers(model, select_quant_layers(model))
    assert sorted(done) == ['attn', 'attn.out_proj', 'fc1', 'fc2']
    assert isinstance(model.fc1, QuantLinear)
    assert type(model.patch_embed) is nn.Conv2d
    with pytest.raises(ValueError, match='weight_bits must be 8 .* or 4'):
        insert_quantizers(Block(), {}, weight_bits=16)


def test_attention_selection_names_unsupported_classes():

    class MyAttention(nn.Module):
        pass

    model = nn.Module()
    model.attn = nn.MultiheadAttention(32, 4)
    model.mine = MyAttention()
    model.other = MyAttention()
    model.fc = nn.Linear(4, 4)
    decisions = select_attention(model)
    assert decisions['attn'] == ''
    for name in ('mine', 'other'):  # each unsupported one, with the reason
        assert decisions[name].startswith(
            'MyAttention is not a supported attention class (supported: ')
        assert 'torch.nn.modules.activation.MultiheadAttention' in \
            decisions[name]
    assert 'fc' not in decisions
    assert select_attention(model, exclude=['attn'])['attn']
