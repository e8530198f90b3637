"""Every file under configs/ loads; every config is listed in a
``metafile.yml`` of the model index and every old name is an alias of the
same config; every demo model builds; every GPUSQ leaf config (the
``configs/gpusq/metafile.yml`` models, the real architectures) trains two
iterations in each phase on the tiny sets of ``tests/data`` and validates.

The leaves are trained with exactly what ``--cfg-options`` would apply
(:func:`tiny_options`): data at ``tests/data``, batch 1, small images, a
2-epoch (or 4-iteration) schedule, a random teacher (``teacher_ckpt=None``,
no download). The phase-Q start is a fraction of the schedule, so it moves
with the schedule length.
"""
import ast
import gc
import glob
import os
import os.path as osp
import time
from typing import Optional

import pytest
import torch
import yaml
from mmengine.config import Config

from tests.utils import run_tool

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DATA = osp.join(REPO, 'tests', 'data')


def alias_target(path: str) -> Optional[str]:
    """The config an alias file names (``_base_ = './x.py'`` is its only
    statement), or None for any other config."""
    with open(path) as f:
        body = ast.parse(f.read()).body
    if len(body) == 1 and isinstance(body[0], ast.Assign) and \
            [getattr(t, 'id', None) for t in body[0].targets] == ['_base_'] \
            and isinstance(getattr(body[0].value, 'value', None), str):
        return osp.normpath(osp.join(osp.dirname(path), body[0].value.value))
    return None


def index_configs(root: str) -> dict:
    """``{metafile: [Config path of each model]}`` of ``model-index.yml``
    in ``root``, paths relative to ``root``."""
    with open(osp.join(root, 'model-index.yml')) as f:
        index = yaml.safe_load(f)
    listed = {}
    for meta in index['Import']:
        models = []
        if osp.isfile(osp.join(root, meta)):
            with open(osp.join(root, meta)) as f:
                models = yaml.safe_load(f)['Models']
        listed[meta] = [m['Config'] for m in models]
    return listed


def index_problems(root: str) -> list:
    """What is wrong with the model index in ``root``: a metafile or a
    listed config that does not exist, a config listed twice, a config
    under ``configs/gpusq`` (not a fragment, not an alias) listed in no
    metafile."""
    problems, seen = [], set()
    for meta, configs in index_configs(root).items():
        if not osp.isfile(osp.join(root, meta)):
            problems.append(f'{meta}: no such metafile')
        for cfg in configs:
            if not osp.isfile(osp.join(root, cfg)):
                problems.append(f'{meta}: {cfg} does not exist')
            elif cfg in seen:
                problems.append(f'{meta}: {cfg} listed twice')
            seen.add(cfg)
    for path in glob.glob(osp.join(root, 'configs', 'gpusq', '**', '*.py'),
                          recursive=True):
        rel = osp.relpath(path, root)
        if '_base_' not in rel.split(osp.sep) and rel not in seen and \
                alias_target(path) is None:
            problems.append(f'{rel} is in no metafile')
    return problems


CONFIGS = sorted(
    osp.relpath(p, REPO)
    for p in glob.glob(osp.join(REPO, 'configs', '**', '*.py'),
                       recursive=True))
ALIASES = [p for p in CONFIGS if alias_target(osp.join(REPO, p))]
INDEX = index_configs(REPO)
# the full leaves; the demo's (models that build, not trained here)
LEAVES = sorted(INDEX['configs/gpusq/metafile.yml'])
DEMO = sorted(INDEX['configs/gpusq/demo/metafile.yml'])
HEADLINE = 'configs/gpusq/gpusq_mask-rcnn_swin-t-p4-w7_fpn_12e_coco.py'
METRIC = {'mmdet': 'coco/bbox_mAP', 'mmseg': 'mIoU',
          'mmpretrain': 'accuracy/top1'}
# leaves whose full smoke run exceeds this file's budget: by default they
# train with 2 blocks per backbone stage; GPUSQ_TEST_HEAVY=1 trains them
# whole (measured: DINO Swin-L, 218 M parameters in student and teacher,
# 72-105 s per iteration and up to 1 min per 2.6 GB checkpoint on 2 shared
# CPU cores, 406 s for the whole test)
HEAVY = ('configs/gpusq/gpusq_dino-5scale_swin-l_12e_coco.py', )
ZOO = ('https://download.openmmlab.com/mmdetection/',
       'https://download.openmmlab.com/mmsegmentation/',
       'https://download.openmmlab.com/mmclassification/')


def test_configs_found():
    assert len(CONFIGS) >= 7
    assert HEADLINE in LEAVES and len(LEAVES) == 6 and len(DEMO) == 10
    # every old leaf name is kept as an alias
    assert {osp.basename(p) for p in ALIASES} >= {
        'mask_rcnn_swin.py', 'upernet_swin.py', 'deit_small.py',
        'swin_tiny.py', 'dino_swin_l.py', 'segformer_mit_b2.py',
        'deit_tiny_dense.py', 'deit_tiny_gpusq.py',
        'mask_rcnn_swin_tiny_dense.py', 'segformer_tiny_gpusq.py'}


def test_model_index():
    """model-index.yml lists a metafile per config folder; every config
    they list exists (and loads: test_config_loads), every config is
    listed."""
    assert index_problems(REPO) == []
    assert set(INDEX) == {'configs/gpusq/metafile.yml',
                          'configs/gpusq/demo/metafile.yml'}
    assert set(LEAVES + DEMO) <= set(CONFIGS) - set(ALIASES)
    for meta in INDEX:
        with open(osp.join(REPO, meta)) as f:
            data = yaml.safe_load(f)
        collections = {c['Name'] for c in data['Collections']}
        assert 'GPUSQ-ViT' in collections
        for model in data['Models']:
            assert model['In Collection'] in collections, model['Name']
            assert model['Name'] == osp.splitext(
                osp.basename(model['Config']))[0]
            assert alias_target(osp.join(REPO, model['Alias'])) == \
                osp.join(REPO, model['Config'])
            if meta == 'configs/gpusq/metafile.yml':  # nothing measured
                assert 'Results' not in model, model['Name']


@pytest.mark.parametrize('case', ['missing config', 'missing metafile',
                                  'unlisted leaf', 'listed twice'])
def test_model_index_problems_found(case, tmp_path):
    """The index check fails on a broken index (a copy of the index and
    of configs/gpusq, broken one way)."""
    import shutil
    shutil.copy(osp.join(REPO, 'model-index.yml'), tmp_path)
    shutil.copytree(osp.join(REPO, 'configs', 'gpusq'),
                    tmp_path / 'configs' / 'gpusq')
    assert index_problems(str(tmp_path)) == []
    meta = tmp_path / 'configs' / 'gpusq' / 'metafile.yml'
    data = yaml.safe_load(meta.read_text())
    if case == 'missing config':
        data['Models'].append(
            dict(data['Models'][0], Config='configs/gpusq/gpusq_nope.py'))
    elif case == 'listed twice':
        data['Models'].append(data['Models'][0])
    elif case == 'unlisted leaf':
        data['Models'].pop()
    else:
        with open(tmp_path / 'model-index.yml', 'a') as f:
            f.write('- configs/gpusq/nope/metafile.yml\n')
    meta.write_text(yaml.safe_dump(data))
    problems = index_problems(str(tmp_path))
    assert len(problems) == 1, problems
    assert {'missing config': 'gpusq_nope.py does not exist',
            'missing metafile': 'no such metafile',
            'listed twice': 'listed twice',
            'unlisted leaf': 'is in no metafile'}[case] in problems[0]


@pytest.mark.parametrize('path', ALIASES)
def test_alias_is_the_same_config(path):
    """An old leaf name is a one-line alias that gives exactly the config
    of its OpenMMLab name (which test_config_loads checks)."""
    target = alias_target(osp.join(REPO, path))
    assert osp.isfile(target) and alias_target(target) is None
    assert osp.dirname(target) == osp.dirname(osp.join(REPO, path))
    assert Config.fromfile(osp.join(REPO, path)).to_dict() == \
        Config.fromfile(target).to_dict()


@pytest.mark.parametrize('path', [p for p in CONFIGS if p not in ALIASES])
def test_config_loads(path):
    cfg = Config.fromfile(osp.join(REPO, path))
    if '_base_' in path.split(osp.sep):
        return  # fragments are checked through the leaves that use them
    if path.split(osp.sep)[1] == 'deploy':  # mmdeploy vocabulary
        assert {'onnx_config', 'codebase_config', 'backend_config'} <= set(
            cfg), path
        return
    assert 'model' in cfg, f'{path} defines no model'
    assert cfg.default_scope in ('mmdet', 'mmseg', 'mmpretrain')
    if cfg.model.get('type') == 'MixedKDDistiller':
        assert cfg.custom_imports.imports == ['gpusq_mm']
        hook_types = [h['type'] for h in cfg.custom_hooks]
        assert hook_types.index('Sparse24Hook') < hook_types.index('QATHook')
        assert 'RNGStateHook' in hook_types  # exact --resume


@pytest.mark.parametrize('path', LEAVES)
def test_leaf_contract(path):
    """Teacher = model-zoo checkpoint of the same (unchanged) task model;
    the LR policy switches where phase Q starts."""
    cfg = Config.fromfile(osp.join(REPO, path))
    model = cfg.model
    assert model.type == 'MixedKDDistiller'
    assert model.teacher == model.architecture
    assert model.teacher_ckpt.startswith(ZOO), model.teacher_ckpt
    qat = cfg.custom_hooks[1]
    loop_iters = cfg.train_cfg.get('type') == 'IterBasedTrainLoop'
    start = qat.get('start_iter' if loop_iters else 'start_epoch')
    assert start == cfg.gpusq_phase_q == 0.5
    total = cfg.train_cfg['max_iters' if loop_iters else 'max_epochs']
    phase_s, phase_q = cfg.param_scheduler[1:]
    assert phase_s.end == phase_q.begin == int(start * total)
    assert phase_q.end == total


@pytest.mark.parametrize('path', [
    HEADLINE, 'configs/gpusq/gpusq_upernet_swin-t_40k_ade20k-512x512.py',
    'configs/gpusq/gpusq_deit-small_30e_in1k.py'
])
def test_lr_policy_per_phase(path):
    """Phase S: warm-up, then cosine to 1 % of the LR; phase Q: from 1 %
    down to 0.01 %. Stepped with MMEngine's own schedulers."""
    from mmengine.optim.scheduler import CosineAnnealingLR, LinearLR
    cfg = Config.fromfile(osp.join(REPO, path))
    by_epoch = cfg.train_cfg.get('type') != 'IterBasedTrainLoop'
    epoch_len = 1000 if by_epoch else 1
    total = (cfg.train_cfg.max_epochs if by_epoch else
             cfg.train_cfg.max_iters) * epoch_len
    lr = cfg.optim_wrapper.optimizer.lr
    optim = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    types = dict(LinearLR=LinearLR, CosineAnnealingLR=CosineAnnealingLR)
    schedulers = []
    for sched in cfg.param_scheduler:
        kw = {k: v for k, v in sched.items() if k != 'type'}
        if kw.pop('convert_to_iter_based', False):
            schedulers.append(types[sched.type].build_iter_from_epoch(
                optim, epoch_length=epoch_len, **kw))
        else:
            kw.pop('by_epoch')
            schedulers.append(types[sched.type](optim, **kw))
    seen = []
    for _ in range(total):
        seen.append(optim.param_groups[0]['lr'])
        optim.step()
        for s in schedulers:
            s.step()
    boundary = total // 2
    assert max(seen[:boundary]) == pytest.approx(lr, rel=0.05)
    assert seen[boundary] == pytest.approx(0.01 * lr, rel=0.05)
    assert seen[-1] < 0.001 * lr
    assert all(b <= a * (1 + 1e-6) for a, b in zip(seen[boundary:],
                                                    seen[boundary + 1:]))


@pytest.mark.parametrize('path', DEMO)
def test_demo_model_builds(path):
    from mmengine.registry import MODELS, DefaultScope

    import gpusq_mm  # noqa: F401
    cfg = Config.fromfile(osp.join(REPO, path))
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model_cfg = cfg.model.copy()
        if 'data_preprocessor' in cfg:
            model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
        model = MODELS.build(model_cfg)
    assert sum(p.numel() for p in model.parameters()) > 0


# ---------------------------------------------------------------- training
def _loaders(data_root: str, train_len: int) -> dict:
    opts = {}
    for split in ('train', 'val', 'test'):
        for key, value in (('batch_size', 1), ('num_workers', 0),
                           ('persistent_workers', False),
                           ('dataset.data_root', data_root)):
            opts[f'{split}_dataloader.{key}'] = value
    opts['train_dataloader.dataset.indices'] = train_len
    opts['val_dataloader.dataset.indices'] = 1
    return opts


def tiny_options(cfg: Config, work_dir: str) -> dict:
    """The ``--cfg-options`` that turn a GPUSQ leaf into a smoke run: two
    training iterations per phase, then validation at the end."""
    scope = cfg.default_scope
    opts = {'work_dir': work_dir, 'model.teacher_ckpt': None,
            'custom_hooks.1.calib_batches': 1}
    if scope == 'mmdet':
        ann = osp.join(DATA, 'coco', 'annotations', 'instances_val2017.json')
        opts.update(_loaders(osp.join(DATA, 'coco', ''), 2))
        opts.update({
            'model.architecture.backbone.init_cfg': None,
            'model.teacher.backbone.init_cfg': None,
            'val_evaluator.ann_file': ann, 'test_evaluator.ann_file': ann,
            'train_cfg.max_epochs': 2, 'train_cfg.val_interval': 2,
            'default_hooks.checkpoint.interval': 1})
    elif scope == 'mmseg':
        opts.update(_loaders(osp.join(DATA, 'ade', ''), 2))
        # UPerNet's pyramid pooling has BatchNorm on 1x1 maps: batch >= 2
        opts['train_dataloader.batch_size'] = 2
        for model in ('architecture', 'teacher'):
            opts[f'model.{model}.backbone.init_cfg'] = None
            opts[f'model.{model}.data_preprocessor.size'] = (128, 128)
        opts.update({
            'train_dataloader.dataset.pipeline.2.scale': (256, 128),
            'train_dataloader.dataset.pipeline.3.crop_size': (128, 128),
            'val_dataloader.dataset.pipeline.1.scale': (256, 128),
            'train_cfg.max_iters': 4, 'train_cfg.val_interval': 4,
            'default_hooks.checkpoint.interval': 2})
    else:
        # Swin-T's 7x7 windows need its 224 input (7x7 in stage 4)
        size = 224 if 'Swin' in cfg.model.architecture.backbone.type \
            else 112
        opts.update(_loaders(osp.join(DATA, 'imagenet', ''), 2))
        opts.update({
            'train_dataloader.dataset.pipeline.1.scale': size,
            'val_dataloader.dataset.pipeline.1.scale': size * 8 // 7,
            'val_dataloader.dataset.pipeline.2.crop_size': size,
            'train_cfg.max_epochs': 2, 'train_cfg.val_interval': 2,
            'default_hooks.checkpoint.interval': 1})
    return opts


def _det_pipelines(cfg: Config) -> dict:
    """Single-scale 160x128 pipelines (DINO's multi-scale crop choice is
    replaced; Mask R-CNN only has its Resize scales changed)."""
    if 'RandomChoice' not in str(cfg.train_dataloader.dataset.pipeline):
        return {'train_dataloader.dataset.pipeline.2.scale': (160, 128),
                'val_dataloader.dataset.pipeline.1.scale': (160, 128)}
    train = [dict(type='LoadImageFromFile'),
             dict(type='LoadAnnotations', with_bbox=True),
             dict(type='Resize', scale=(160, 128), keep_ratio=True),
             dict(type='PackDetInputs')]
    val = [dict(type='LoadImageFromFile'),
           dict(type='Resize', scale=(160, 128), keep_ratio=True),
           dict(type='LoadAnnotations', with_bbox=True),
           dict(type='PackDetInputs', meta_keys=(
               'img_id', 'img_path', 'ori_shape', 'img_shape',
               'scale_factor'))]
    return {'train_dataloader.dataset.pipeline': train,
            'val_dataloader.dataset.pipeline': val}


def _cli(opts: dict) -> list:
    """``--cfg-options`` words for ``opts`` (tuples as ``(a,b)``)."""
    words = []
    for key, value in opts.items():
        if isinstance(value, tuple):
            value = '(' + ','.join(str(v) for v in value) + ')'
        words.append(f'{key}={value}')
    return words


def _phases(work_dir: str, names: list) -> list:
    from gpusq_mm.utils import load_checkpoint_file
    return [load_checkpoint_file(osp.join(work_dir, n))['meta']['gpusq']
            for n in names]


def _check_student(student: torch.nn.Module, gpusq: dict) -> None:
    """Every weight the checkpoint calls sparse is exactly 2:4 (backbone
    included); the checkpoint lists exactly the fake-quantized layers."""
    from gpusq_mm.quantization import quant_gemms
    from gpusq_mm.sparsity import count_violations
    params = dict(student.named_parameters())
    assert any(n.startswith('backbone.') for n in gpusq['sparsity']['layers'])
    for name in gpusq['sparsity']['layers']:
        assert count_violations(params[name]) == 0, name
    assert sorted(quant_gemms(student)) == gpusq['quant']['layers']


@pytest.mark.slow
@pytest.mark.parametrize('path', [p for p in LEAVES if p != HEADLINE])
def test_leaf_trains_both_phases(path, tmp_path):
    """2 iterations of phase S, 2 of phase Q, then one validation pass, on
    the real architecture with a random teacher (the headline config:
    test_train_cli_mask_rcnn_swin)."""
    from mmengine.runner import Runner

    import gpusq_mm  # noqa: F401
    torch.set_num_threads(2)
    cfg = Config.fromfile(osp.join(REPO, path))
    opts = tiny_options(cfg, str(tmp_path))
    if path in HEAVY and not os.environ.get('GPUSQ_TEST_HEAVY'):
        # the same config with 2 blocks per stage (GPUSQ_TEST_HEAVY=1: all)
        for model in ('architecture', 'teacher'):
            opts[f'model.{model}.backbone.depths'] = (2, 2, 2, 2)
    if cfg.default_scope == 'mmdet':
        opts.update(_det_pipelines(cfg))
    opts['train_cfg.val_interval'] = 100  # validated once, below
    cfg.merge_from_dict(opts)
    tic = time.perf_counter()
    runner = Runner.from_cfg(cfg)
    runner.train()
    iter_based = cfg.train_cfg.get('type') == 'IterBasedTrainLoop'
    assert runner.iter == 4
    names = ['iter_2.pth', 'iter_4.pth'] if iter_based else \
        ['epoch_1.pth', 'epoch_2.pth']
    first, last = _phases(str(tmp_path), names)
    assert first['phase'] == 'S' and 'quant' not in first
    assert last['phase'] == 'Q' and last['sparsity']['layers']
    _check_student(runner.model.architecture, last)
    metrics = runner.val()
    assert METRIC[cfg.default_scope] in metrics, metrics
    print(f'{path}: {time.perf_counter() - tic:.1f} s')
    del runner
    gc.collect()


@pytest.mark.slow
def test_train_cli_mask_rcnn_swin(tmp_path):
    """``tools/train.py configs/gpusq/mask_rcnn_swin.py --cfg-options ...``
    (the documented command, through the alias of :data:`HEADLINE`) end to
    end: real Mask R-CNN Swin-T, 2 iterations per phase, validation, and a
    checkpoint whose meta['gpusq'] records both phases."""
    config = osp.join(REPO, 'configs', 'gpusq', 'mask_rcnn_swin.py')
    cfg = Config.fromfile(config)
    work = str(tmp_path)
    opts = tiny_options(cfg, work)
    opts.update(_det_pipelines(cfg))
    out = run_tool('train.py', [config, '--cfg-options', *_cli(opts)],
                   cwd=REPO)
    # validation ran at the end (a random model may detect nothing, so
    # COCO AP lines are not guaranteed)
    assert 'Epoch(val) [2][1/1]' in out.stdout + out.stderr
    first, last = _phases(work, ['epoch_1.pth', 'epoch_2.pth'])
    assert first['phase'] == 'S' and first['sparsity']['complete']
    assert 'quant' not in first
    assert last['phase'] == 'Q'
    assert last['sparsity']['layers'] == first['sparsity']['layers']
    assert any(n.startswith('backbone.stages.3') for n in
               last['quant']['layers'])


def test_readme_example(tmp_path):
    """The "any other OpenMMLab ViT config in 10 lines" example of
    configs/gpusq/README.md loads where the README puts it and builds."""
    import re

    from mmengine.registry import MODELS, DefaultScope

    import gpusq_mm  # noqa: F401
    with open(osp.join(REPO, 'configs', 'gpusq', 'README.md')) as f:
        text = f.read()
    section = text[text.index('## Any other OpenMMLab ViT config'):]
    code = re.search(r'```python\n(.*?)```', section, re.S).group(1)
    assert len(code.strip().splitlines()) <= 10
    os.makedirs(tmp_path / 'configs' / 'gpusq')
    os.symlink(osp.join(REPO, 'configs', '_base_'),
               tmp_path / 'configs' / '_base_')
    path = (tmp_path / 'configs' / 'gpusq' /
            'gpusq_segmenter_vit-s_40k_ade20k-512x512.py')
    path.write_text(code)
    cfg = Config.fromfile(str(path))
    assert cfg.train_cfg.max_iters == 40000
    assert cfg.custom_hooks[1].start_iter == 0.5
    cfg.model.teacher_ckpt = None
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model)
    assert type(model.architecture).__name__ == 'EncoderDecoder'


def test_tiny_data_is_reproducible(tmp_path):
    """The committed tests/data sets are what make_tiny_data.py writes."""
    import filecmp

    from tests.data.make_tiny_data import make_tiny_data
    make_tiny_data(str(tmp_path))
    for name in ('coco', 'ade', 'imagenet'):
        ours = sorted(glob.glob(osp.join(tmp_path, name, '**', '*.*'),
                                recursive=True))
        assert ours, name
        for path in ours:
            committed = osp.join(DATA, osp.relpath(path, tmp_path))
            assert filecmp.cmp(path, committed, shallow=False), committed
