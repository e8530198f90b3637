"""A catalogue of user mistakes: configs, checkpoints, data, launch.

Every case asserts the error type and the key words of its message (what is
wrong and what to do), and that the checkpoints already in the work dir are
byte-for-byte untouched. Runner builds are in-process (toy model for hook
and checkpoint cases, the tiny demo configs for distiller and data cases);
only the CLI case starts a process.
"""
import hashlib
import json
import os
import os.path as osp
import shutil
import warnings
from contextlib import contextmanager

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope
from mmengine.runner import Runner
from torch import nn

import gpusq_mm  # noqa: F401
from gpusq_mm.utils import CheckpointLoadError, load_checkpoint_file
from gpusq_mm.utils.dist import prepare_cpu_distributed
from tests.test_engine.toy import ToyData, ToyNet, runner_cfg, train_toy
from tests.utils import DEMO_CONFIGS, run_tool

GPUSQ_HOOKS = [dict(type='Sparse24Hook'),
               dict(type='QATHook', start_iter=2, calib_batches=1),
               dict(type='RNGStateHook')]


# ------------------------------------------------------------- fixtures
@pytest.fixture(scope='module')
def gpusq_ckpt(tmp_path_factory) -> str:
    """A real toy GPUSQ checkpoint (2:4 masks + QAT ranges) at iter 4."""
    work = str(tmp_path_factory.mktemp('gpusq_toy'))
    train_toy(work, GPUSQ_HOOKS)
    return osp.join(work, 'iter_4.pth')


@pytest.fixture
def work(tmp_path, gpusq_ckpt) -> str:
    """A work dir that already holds a run's checkpoints."""
    work = str(tmp_path / 'work')
    os.makedirs(work)
    for name in ('iter_2.pth', 'iter_4.pth'):
        shutil.copy(osp.join(osp.dirname(gpusq_ckpt), name),
                    osp.join(work, name))
    with open(osp.join(work, 'last_checkpoint'), 'w') as f:
        f.write(osp.join(work, 'iter_4.pth'))
    return work


def _hashes(work: str) -> dict:
    out = {}
    for name in sorted(os.listdir(work)):
        path = osp.join(work, name)
        if osp.isfile(path) and (name.endswith('.pth')
                                 or name == 'last_checkpoint'):
            with open(path, 'rb') as f:
                out[name] = hashlib.sha256(f.read()).hexdigest()
    return out


@contextmanager
def fails(work: str, exc, *words: str):
    """Expect ``exc`` whose message holds every word (case-insensitive);
    the work dir's checkpoints must be unchanged and none added."""
    before = _hashes(work)
    with pytest.raises(exc) as info:
        yield info
    message = str(info.value).lower()
    for word in words:
        assert word.lower() in message, (word, str(info.value))
    assert _hashes(work) == before, 'checkpoints in the work dir changed'


def _toy_runner(work: str, hooks=None, max_iters: int = 4, **kw) -> Runner:
    return Runner(**runner_cfg(work, max_iters, hooks or [], **kw))


def _save(obj, work: str, name: str) -> str:
    path = osp.join(osp.dirname(work), name)
    torch.save(obj, path)
    return path


# ------------------------------------------------------ configs: hooks
HOOK_CASES = {
    'hook type misspelled': (dict(type='Sparse24hook'), KeyError,
                             ['Sparse24hook', 'registry']),
    'qat hook type misspelled': (dict(type='QATHoook'), KeyError,
                                 ['QATHoook', 'registry']),
    'sparse hook key misspelled': (dict(type='Sparse24Hook', methd='x'),
                                   TypeError, ['methd']),
    'qat hook key misspelled': (dict(type='QATHook', calibrater='max'),
                                TypeError, ['calibrater']),
    'unknown 2:4 method': (dict(type='Sparse24Hook', method='magnitud'),
                           ValueError, ['unknown method', 'magnitude']),
    'unknown calibrator': (dict(type='QATHook', calibrator='kl'),
                           ValueError, ['unknown calibrator', 'entropy']),
    'weight bits': (dict(type='QATHook', weight_bits=16), ValueError,
                    ['weight_bits', '8 or 4']),
    'calib batches': (dict(type='QATHook', calib_batches=0), ValueError,
                      ['calib_batches', 'positive']),
    'percentile': (dict(type='QATHook', calibrator='percentile',
                        percentile=0), ValueError, ['percentile', '(0, 100]']),
    'start iter and epoch': (dict(type='QATHook', start_iter=1,
                                  start_epoch=1), ValueError, ['not both']),
    'negative start': (dict(type='Sparse24Hook', start_iter=-1), ValueError,
                       ['start_iter', 'non-negative']),
}


@pytest.mark.parametrize('case', list(HOOK_CASES))
def test_bad_hook_config(work, case):
    hook, exc, words = HOOK_CASES[case]
    with fails(work, exc, *words):
        _toy_runner(work, [hook])


TRAIN_CASES = {
    'qat start past the schedule': (
        dict(type='QATHook', start_iter=10), ['start_iter=10',
                                              'past the schedule',
                                              'max_iters=4']),
    'sparse start past the schedule': (
        dict(type='Sparse24Hook', start_iter=4), ['start_iter=4',
                                                  'past the schedule']),
    '2:4 include matches nothing': (
        dict(type='Sparse24Hook', include=[r'^blocks\.']),
        ['blocks', 'match no', 'module names']),
    'qat include matches nothing': (
        dict(type='QATHook', include=['mlp.fc9']),
        ['mlp.fc9', 'match no', 'Linear, Conv2d or MultiheadAttention']),
}


@pytest.mark.parametrize('case', list(TRAIN_CASES))
def test_bad_hook_config_at_train_start(work, case):
    hook, words = TRAIN_CASES[case]
    runner = _toy_runner(work, [hook])
    with fails(work, ValueError, *words):
        runner.train()
    assert not osp.exists(osp.join(work, 'iter_1.pth'))


def test_qat_start_epoch_past_the_schedule(work):
    runner = _toy_runner(work, [dict(type='QATHook', start_epoch=3)],
                         train_cfg=dict(by_epoch=True, max_epochs=2))
    with fails(work, ValueError, 'start_epoch=3', 'max_epochs=2'):
        runner.train()


# --------------------------------------------------- configs: distiller
def _distiller(config: str = 'deit_tiny_gpusq.py', scope: str = 'mmpretrain',
               **overrides):
    cfg = Config.fromfile(osp.join(DEMO_CONFIGS, config))
    model_cfg = cfg.model.copy()
    model_cfg.update(overrides)
    if 'data_preprocessor' in cfg:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    with warnings.catch_warnings(), \
            DefaultScope.overwrite_default_scope(scope):
        warnings.simplefilter('ignore')  # teacher_ckpt=None smoke warning
        return MODELS.build(model_cfg)


DISTILLER_CASES = {
    'misspelled distiller key': (dict(teacher_ckpts='dense.pth'), TypeError,
                                 ['teacher_ckpts']),
    'misspelled distill key': (dict(distill=dict(soft_wieght=1.0)),
                               KeyError, ['soft_wieght', 'valid keys']),
    'missing teacher checkpoint': (dict(teacher_ckpt='work_dirs/nope.pth'),
                                   FileNotFoundError,
                                   ['teacher_ckpt', 'does not exist']),
    'missing teacher config': (dict(teacher='configs/nope.py'),
                               FileNotFoundError,
                               ['teacher config', 'does not exist']),
    'feature path misspelled': (dict(distill=dict(features=['backbone.lyrs'])),
                                KeyError, ['backbone.lyrs', 'close matches']),
    'connector without channels': (
        dict(distill=dict(features=[dict(student='backbone',
                                         connector=dict(type='linear'))])),
        ValueError, ['connector', 'in_channels', 'out_channels']),
    'unknown connector': (
        dict(distill=dict(features=[dict(
            student='backbone', connector=dict(type='mlp', in_channels=1,
                                               out_channels=1))])),
        ValueError, ['unknown connector', 'conv1x1']),
    'unknown phi mode': (dict(distill=dict(phi='cam')), ValueError,
                         ['phi', 'inverse']),
    'bad feature gating': (dict(distill=dict(feature_gating='yes')),
                           ValueError, ['feature_gating', "'auto'"]),
}


@pytest.mark.parametrize('case', list(DISTILLER_CASES))
def test_bad_distiller_config(work, case):
    overrides, exc, words = DISTILLER_CASES[case]
    with fails(work, exc, *words):
        _distiller(**overrides)


def test_feature_gating_on_a_detector(work):
    with fails(work, ValueError, 'feature_gating', 'classifiers only',
               'two_stage'):
        _distiller('mask_rcnn_swin_tiny_gpusq.py', 'mmdet',
                   distill=dict(feature_gating=True))


def test_feature_shapes_differ_without_connector(work):
    pair = dict(student='backbone.layers.1.ln1',
                teacher='backbone.layers.0.ffn.layers.0')  # 64 vs 256
    model = _distiller(distill=dict(features=[pair], feature_gating=False))
    from mmpretrain.structures import DataSample
    data = model.data_preprocessor(dict(
        inputs=[torch.zeros(3, 32, 32, dtype=torch.uint8)] * 2,
        data_samples=[DataSample().set_gt_label(0)] * 2), True)
    with fails(work, ValueError, 'student shape', 'teacher shape',
               'add a connector'):
        model(**data, mode='loss')


def test_teacher_checkpoint_of_another_model(work):
    other = _save(dict(state_dict=dict(ToyNet().state_dict())), work,
                  'toy_dense.pth')
    with fails(work, ValueError, 'teacher_ckpt', 'does not fit',
               'missing key', 'another model'):
        _distiller(teacher_ckpt=other)


def test_load_from_checkpoint_of_another_model(work):
    other = _save(dict(state_dict=dict(ToyNet().state_dict())), work,
                  'toy_dense.pth')
    model = _distiller()
    from mmengine.runner.checkpoint import load_checkpoint
    with fails(work, ValueError, 'matches no key of the student',
               'another model'):
        load_checkpoint(model, other, map_location='cpu')


# ------------------------------------------------------- checkpoints
def _corrupt(work: str, gpusq_ckpt: str, how: str) -> str:
    data = open(gpusq_ckpt, 'rb').read()
    path = osp.join(osp.dirname(work), f'{how}.pth')
    with open(path, 'wb') as f:
        if how == 'truncated':
            f.write(data[:len(data) // 3])
        elif how == 'garbage':
            f.write(os.urandom(4096))
        elif how == 'damaged':  # the zip directory at the end is damaged
            f.write(data[:-200] + bytes(b ^ 0xFF for b in data[-200:]))
    return path


@pytest.mark.parametrize('how', ['truncated', 'garbage', 'damaged', 'empty'])
def test_corrupted_checkpoint(work, gpusq_ckpt, how):
    path = _corrupt(work, gpusq_ckpt, how)
    runner = _toy_runner(work, GPUSQ_HOOKS, 6, load_from=path, resume=True)
    with fails(work, CheckpointLoadError, repr(path),
               'truncated or corrupted', 'another checkpoint'):
        runner.train()


def test_checkpoint_path_does_not_exist(work):
    path = osp.join(work, 'iter_6.pth')
    runner = _toy_runner(work, GPUSQ_HOOKS, load_from=path)
    with fails(work, FileNotFoundError, 'iter_6.pth', 'does not exist'):
        runner.train()


def test_checkpoint_that_is_not_a_dict(work):
    path = _save(torch.ones(3), work, 'tensor.pth')
    runner = _toy_runner(work, load_from=path)
    with fails(work, CheckpointLoadError, 'holds a Tensor',
               'not a checkpoint', 'torch.save(dict(state_dict='):
        runner.train()


def test_resume_from_weights_only_file(work):
    path = _save(dict(state_dict=dict(ToyNet().state_dict())), work,
                 'weights.pth')
    runner = _toy_runner(work, GPUSQ_HOOKS, load_from=path, resume=True)
    with fails(work, ValueError, 'cannot resume', 'weights-only',
               'load_from'):
        runner.train()


class _WiderToy(ToyNet):
    """Another model: same layer names, other widths."""

    def __init__(self, data_preprocessor=None) -> None:
        super().__init__(data_preprocessor)
        self.fc2 = nn.Linear(64, 128)
        self.head = nn.Linear(128, 4)


class _RenamedToy(ToyNet):
    """Another model: the 2:4 layers carry other names."""

    def __init__(self, data_preprocessor=None) -> None:
        super().__init__(data_preprocessor)
        self.mlp = nn.Sequential(self.fc1, nn.ReLU(), self.fc2)
        del self.fc1, self.fc2

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.head(torch.relu(self.mlp(
            self.patch_embed(inputs).flatten(1))))
        if mode == 'loss':
            return dict(loss=nn.functional.cross_entropy(out, data_samples))
        return out


@pytest.mark.parametrize('model,words', [
    (_WiderToy, ['fc2.weight', 'shape', 'another model']),
    (_RenamedToy, ['fc1.weight', 'another model']),
])
def test_gpusq_checkpoint_of_another_model(work, gpusq_ckpt, model, words):
    torch.manual_seed(0)
    runner = _toy_runner(work, GPUSQ_HOOKS, 6, model=model(),
                         load_from=gpusq_ckpt, resume=True)
    with fails(work, ValueError, *words):
        runner.train()


def test_qat_checkpoint_of_another_model(work, gpusq_ckpt):
    ckpt = load_checkpoint_file(gpusq_ckpt)
    ckpt['gpusq_qat']['layers'].append('blocks.3.mlp')
    path = _save(ckpt, work, 'other_qat.pth')
    runner = _toy_runner(work, [dict(type='QATHook', start_iter=2)], 6,
                         load_from=path, resume=True)
    with fails(work, ValueError, 'quantizes layers', 'blocks.3.mlp',
               'another model'):
        runner.train()


def test_checkpoint_weights_break_2to4(work, gpusq_ckpt):
    ckpt = load_checkpoint_file(gpusq_ckpt)
    mask = ckpt['gpusq_sparse24']['masks']['fc1.weight']
    weight = ckpt['state_dict']['fc1.weight']
    weight[~mask] = 0.5  # pruned entries come back: not 2:4 any more
    path = _save(ckpt, work, 'edited.pth')
    runner = _toy_runner(work, GPUSQ_HOOKS, 6, load_from=path, resume=True)
    with fails(work, ValueError, 'Sparse24Hook', 'breaks its own 2:4 masks',
               'fc1.weight', 'unmodified checkpoint'):
        runner.train()


def test_resume_with_another_2to4_method(work, gpusq_ckpt):
    hooks = [dict(type='Sparse24Hook', method='srste')] + GPUSQ_HOOKS[1:]
    runner = _toy_runner(work, hooks, 6, load_from=gpusq_ckpt, resume=True)
    with fails(work, ValueError, "'magnitude'", "'srste'", 'same method'):
        runner.train()


def test_malicious_checkpoint_is_refused(work, tmp_path):
    marker = tmp_path / 'pwned'

    class RunsCode:

        def __reduce__(self):
            return (os.system, (f'touch {marker}', ))

    path = _save(dict(state_dict={}, meta=dict(epoch=0, iter=0),
                      evil=RunsCode()), work, 'evil.pth')
    runner = _toy_runner(work, GPUSQ_HOOKS, load_from=path, resume=True)
    with fails(work, CheckpointLoadError, 'safe allowlist', 'system',
               'GPUSQ_TRUSTED_CHECKPOINTS'):
        runner.train()
    assert not marker.exists()


# ---------------------------------------------------------------- data
class _Empty(ToyData):

    def __len__(self) -> int:
        return 0


def test_empty_training_set(work):
    cfg = runner_cfg(work, 4, GPUSQ_HOOKS)
    cfg['train_dataloader']['dataset'] = _Empty()
    runner = Runner(**cfg)
    with fails(work, ValueError, 'data set is empty', '_Empty',
               'filter_cfg'):
        runner.train()


def test_nan_inputs_during_calibration(work):
    hooks = [dict(GPUSQ_HOOKS[0]), dict(type='QATHook', calib_batches=1)]
    cfg = runner_cfg(work, 4, hooks)
    cfg['train_dataloader']['dataset'].x[:] = float('nan')
    runner = Runner(**cfg)
    with fails(work, ValueError, 'non-finite', 'calibration inputs',
               'data pipeline'):
        runner.train()


@pytest.fixture
def coco(tmp_path) -> str:
    from gpusq_mm.datasets import make_coco
    return make_coco(str(tmp_path / 'coco'), num_train=2, num_val=1) \
        or str(tmp_path / 'coco')


def _demo_runner(work: str, coco: str) -> Runner:
    cfg = Config.fromfile(osp.join(DEMO_CONFIGS,
                                   'mask_rcnn_swin_tiny_gpusq.py'))
    cfg.work_dir = work
    ds = cfg.train_dataloader.dataset
    ds.data_root = coco + '/'
    cfg.train_cfg.max_epochs = 1
    cfg.custom_hooks = [cfg.custom_hooks[0], dict(type='RNGStateHook')]
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.test_cfg = cfg.test_dataloader = cfg.test_evaluator = None
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return Runner.from_cfg(cfg)


def test_coco_set_without_annotations(work, coco):
    ann = osp.join(coco, 'annotations', 'instances_train.json')
    data = json.load(open(ann))
    data['annotations'] = []  # filter_empty_gt drops every image
    json.dump(data, open(ann, 'w'))
    runner = _demo_runner(work, coco)
    with fails(work, ValueError, 'data set is empty', 'CocoDataset',
               'instances_train.json', 'filter_empty_gt'):
        runner.train()


def test_unreadable_image(work, coco):
    with open(osp.join(coco, 'train', '000000.jpg'), 'wb') as f:
        f.write(b'\xff\xd8 this is not a jpeg')
    runner = _demo_runner(work, coco)
    with fails(work, Exception, 'failed to load image', '000000.jpg'):
        runner.train()


def test_missing_image(work, coco):
    os.remove(osp.join(coco, 'train', '000001.jpg'))
    runner = _demo_runner(work, coco)
    with fails(work, FileNotFoundError, '000001.jpg'):
        runner.train()


def test_missing_annotation_file(work, coco):
    os.remove(osp.join(coco, 'annotations', 'instances_train.json'))
    runner = _demo_runner(work, coco)
    with fails(work, FileNotFoundError, 'instances_train.json'):
        runner.train()


# -------------------------------------------------------------- launch
def test_slurm_launcher_without_gpu(work):
    if torch.cuda.is_available():
        pytest.skip('the slurm error is for machines without a CUDA GPU')
    with fails(work, RuntimeError, "'slurm'", 'without a GPU',
               'dist_train.sh'):
        prepare_cpu_distributed(Config(dict(launcher='slurm')))


def test_cli_resume_from_missing_file(work, data_cwd):
    before = _hashes(work)
    proc = run_tool('train.py', [
        osp.join(DEMO_CONFIGS, 'deit_tiny_gpusq.py'), '--work-dir', work,
        '--resume', osp.join(work, 'iter_9.pth')], cwd=data_cwd,
        check=False, timeout=300)
    assert proc.returncode != 0
    assert 'FileNotFoundError' in proc.stderr
    assert 'iter_9.pth' in proc.stderr and 'does not exist' in proc.stderr
    assert _hashes(work) == before


# ---------------------------------------------------------- deployment
DEPLOY_CFG = osp.join(osp.dirname(DEMO_CONFIGS), '..', 'deploy',
                      'classification', 'classification_onnxruntime_int8.py')


@pytest.fixture
def deploy(work, tmp_path):
    """``run(checkpoint, img=..., **kw)``: tools/deploy.py's pipeline
    in-process on the tiny DeiT GPUSQ config."""
    from gpusq_mm.datasets import make_cls
    from gpusq_mm.deploy import pipeline
    make_cls(str(tmp_path / 'cls'), num_train=1, num_val=1)
    img = sorted(glob_images(str(tmp_path / 'cls')))[0]
    model_cfg = Config.fromfile(osp.join(DEMO_CONFIGS, 'deit_tiny_gpusq.py'))
    out = osp.join(work, 'deploy')

    def run(checkpoint: str, img: str = img, deploy_cfg: str = DEPLOY_CFG,
            **kw):
        return pipeline.DeployPipeline(
            Config.fromfile(deploy_cfg), model_cfg, checkpoint, img, out,
            **kw).run()

    return run


def glob_images(root: str) -> list:
    return [osp.join(d, f) for d, _, files in os.walk(root) for f in files
            if f.endswith(('.jpg', '.png'))]


def _deit_checkpoint(work: str, gpusq: bool = True, nan: bool = False) -> str:
    state = dict(_distiller().architecture.state_dict())
    if nan:
        state['backbone.layers.0.ffn.layers.1.weight'][0, 0] = float('nan')
    meta = dict(gpusq=dict(phase='S', sparsity=dict(
        pattern='2:4', method='magnitude', layers=[]))) if gpusq else {}
    return _save(dict(state_dict=state, meta=meta), work,
                 f'deit_{gpusq}_{nan}.pth')


def test_deploy_dense_checkpoint(work, deploy):
    path = _deit_checkpoint(work, gpusq=False)
    with fails(work, ValueError, "has no meta['gpusq']", '--dense'):
        deploy(path)


def test_deploy_checkpoint_of_another_model(work, deploy, gpusq_ckpt):
    with fails(work, ValueError, 'quantizes layers', 'another model'):
        deploy(gpusq_ckpt)


def test_deploy_nan_weights(work, deploy):
    path = _deit_checkpoint(work, nan=True)
    with fails(work, ValueError, 'NaN/inf', 'deit_True_True.pth'):
        deploy(path)


def test_deploy_missing_image(work, deploy):
    path = _deit_checkpoint(work)
    with fails(work, FileNotFoundError, 'nope.jpg', 'does not exist'):
        deploy(path, img=osp.join(work, 'nope.jpg'))


def test_deploy_unreadable_image(work, deploy):
    path = _deit_checkpoint(work)
    img = osp.join(work, 'broken.jpg')
    with open(img, 'wb') as f:
        f.write(b'\xff\xd8 not a jpeg')
    with fails(work, ValueError, 'cannot read image', 'broken.jpg'):
        deploy(path, img=img)


def test_deploy_unknown_precision(work, deploy):
    path = _deit_checkpoint(work)
    with fails(work, ValueError, 'precision', "'fp16'", 'int4'):
        deploy(path, precision='int4')


def test_deploy_unknown_codebase(work, deploy, tmp_path):
    cfg = tmp_path / 'deploy_other.py'
    cfg.write_text(f'_base_ = [{DEPLOY_CFG!r}]\n'
                   "codebase_config = dict(type='mmdet3d')\n")
    path = _deit_checkpoint(work)
    with fails(work, ValueError, "type='mmdet3d'", 'not supported',
               'mmpretrain'):
        deploy(path, deploy_cfg=str(cfg))
