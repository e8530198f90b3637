"""QATHook's tables: layers calibration never reached are float with the
reason, never listed with ``amax=0``."""
from gpusq_mm.engine.qat_report import plan_table, summary_table
from gpusq_mm.quantization.calibrate import NEVER_CALLED


def test_summary_never_shows_uncalibrated_layers_as_quantized():
    text = summary_table(
        'int8', {'fc': '', 'qkv': '', 'head': "outside scope 'backbone'",
                 'mha': ''},
        {'attn': ''},
        {'fc': 1.5, 'qkv': 0.0, 'mha.in_proj_quantizers.q': 2.0,
         **{f'attn.matmul_quantizers.{op}': 0.0 for op in 'qkpv'}},
        {'qkv': NEVER_CALLED,
         **{f'attn.matmul_quantizers.{op}': NEVER_CALLED for op in 'qkpv'}})
    lines = {line.split()[0]: line for line in text.splitlines()[1:]}
    assert text.splitlines()[0].startswith('QATHook: 2 layers and 0 '
                                           'attention modules')
    assert 'input amax=1.5' in lines['fc']
    assert f'float: {NEVER_CALLED}' in lines['qkv']
    assert "float: outside scope 'backbone'" in lines['head']
    assert 'in_proj_quantizers.q=2' in lines['mha']
    assert f'matmuls float: {NEVER_CALLED}' in lines['attn']
    assert 'amax=0' not in text


def test_plan_lists_every_decision():
    text = plan_table({'a': '', 'b': 'matched by exclude'}, 'backbone')
    assert "scope 'backbone'): 1 of 2" in text
    assert 'float: matched by exclude' in text
