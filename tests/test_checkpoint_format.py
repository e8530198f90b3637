"""gpusq_mm.checkpoint_format: keys, meta schema and version, the student
view of a distiller checkpoint, resume checks."""
import os.path as osp
import shutil

import pytest
import torch

from gpusq_mm import checkpoint_format as fmt


def test_meta_written_with_format_and_later_phase_wins():
    ckpt = {}
    fmt.update_gpusq_meta(ckpt, 'quant', dict(calibrator='max'), phase='Q')
    fmt.update_gpusq_meta(ckpt, 'sparsity', dict(method='magnitude'),
                          phase='S')  # written after, but an earlier phase
    meta = fmt.read_meta(ckpt)
    assert meta['phase'] == 'Q' and meta['format'] == fmt.FORMAT_VERSION
    assert meta['quant'] == dict(calibrator='max')
    assert meta['sparsity'] == dict(method='magnitude')
    assert {'torch', 'mmengine'} <= set(meta['versions'])


def test_read_meta_of_old_dense_and_newer_checkpoints():
    # written before the format number existed: reads as format 1
    old = dict(meta=dict(gpusq=dict(phase='S', sparsity={})))
    assert fmt.read_meta(old) == dict(phase='S', sparsity={})
    assert fmt.read_meta(dict(state_dict={})) == {}
    assert fmt.read_meta(dict(meta=None)) == {}
    newer = dict(meta=dict(gpusq=dict(format=fmt.FORMAT_VERSION + 1)))
    with pytest.raises(fmt.CheckpointFormatError,
                       match=f'format {fmt.FORMAT_VERSION + 1}.*upgrade'):
        fmt.read_meta(newer)
    with pytest.raises(fmt.CheckpointFormatError, match="format '1'"):
        fmt.read_meta(dict(meta=dict(gpusq=dict(format='1'))))


def test_distiller_to_student_keeps_gpusq_state_only():
    mask = torch.ones(4, 4, dtype=torch.bool)
    ckpt = {
        'state_dict': {'architecture.backbone.w': torch.zeros(1),
                       'teacher.backbone.w': torch.ones(1)},
        'meta': dict(gpusq=dict(phase='Q')),
        fmt.SPARSE_KEY: dict(masks={'backbone.w': mask}),
        fmt.QAT_KEY: dict(layers=[], weight_bits=8),
        fmt.RNG_KEY: dict(ranks=[]), 'optimizer': {}}
    plain = fmt.distiller_to_student(ckpt)
    assert list(plain) == ['state_dict', 'meta', fmt.SPARSE_KEY, fmt.QAT_KEY]
    assert list(plain['state_dict']) == ['backbone.w']
    assert fmt.sparse_masks(plain) == {'backbone.w': mask}
    assert fmt.sparse_masks({}) == {}
    with pytest.raises(ValueError, match='not a MixedKDDistiller'):
        fmt.distiller_to_student(plain)


def test_check_resume_names_both_values():
    fmt.check_resume('QATHook', 'calibrator', 'max', 'max')
    with pytest.raises(fmt.CheckpointFormatError,
                       match=r"QATHook: the checkpoint was written with "
                       r"calibrator='max' but the config says "
                       r"calibrator='mse'; set calibrator='max' to resume"):
        fmt.check_resume('QATHook', 'calibrator', 'max', 'mse')


FORMAT1 = osp.join(osp.dirname(__file__), 'data', 'checkpoints',
                   'toy_gpusq_format1_iter_4.pth')


def test_format_1_checkpoint_resumes_with_ranges_bit_identical(tmp_path):
    """A checkpoint written by format 1 (ranges as ``input_amax`` /
    ``weight_amax`` buffers) resumes training: the ranges land in the
    quantizer modules unchanged and the next checkpoint is format 2."""
    from gpusq_mm.utils import load_checkpoint_file
    from tests.bad_inputs import GPUSQ_HOOKS
    from tests.test_engine.toy import train_toy
    old = load_checkpoint_file(FORMAT1)
    assert fmt.read_meta(old)['format'] == 1
    old_ranges = {k: v for k, v in old['state_dict'].items() if 'amax' in k}
    assert sorted(old_ranges) == sorted(
        f'{layer}.{kind}_amax' for layer in ('fc1', 'fc2', 'head')
        for kind in ('input', 'weight'))
    work = str(tmp_path)
    start = osp.join(work, 'iter_4.pth')
    shutil.copy(FORMAT1, start)
    runner = train_toy(work, GPUSQ_HOOKS, max_iters=5, resume=True,
                       load_from=start)
    for key, value in old_ranges.items():
        layer, _, kind = key.rpartition('.')
        quantizer = getattr(runner.model.get_submodule(layer),
                            kind.replace('_amax', '_quantizer'))
        assert torch.equal(quantizer.amax, value), key
        assert quantizer.quant_state == 'quant', key
    new = load_checkpoint_file(osp.join(work, 'iter_5.pth'))
    assert fmt.read_meta(new)['format'] == fmt.FORMAT_VERSION == 2
    assert 'fc1.input_quantizer.amax' in new['state_dict']
    assert not any(k.endswith('_amax') for k in new['state_dict'])
    assert torch.equal(new['state_dict']['fc1.input_quantizer.amax'],
                       old_ranges['fc1.input_amax'])  # frozen, not redone
