"""MixedKDDistiller: a frozen teacher distils into the student (the dense
model in phase S, by default the sparse float model M_SF in phase Q)."""
import copy
import os.path as osp
import warnings
from contextlib import ExitStack
from typing import Dict, List, Optional, Union

import torch
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.model import BaseModel
from mmengine.registry import MODELS
from mmengine.runner.checkpoint import (_load_checkpoint,
                                        _load_checkpoint_to_model)
from torch import Tensor, nn

from gpusq_mm.checkpoint_format import STUDENT_PREFIX
from gpusq_mm.models.losses import feature_mse
from gpusq_mm.models.recorder import check_paths, record_outputs
from gpusq_mm.registry import register_model
from gpusq_mm.utils.state_checks import check_state_dict_fits

from .critical_layers import critical_features
from .feature_pairs import PhiWeights, build_pairs
from .logit_taps import LogitTaps
from .pseudo_labels import pseudo_label
from .stage2_teacher import check_same_architecture, copy_sparse_student

# the paper's weights: L = α·L_hard + β·L_soft + γ·L_feat, α=1, β=10, γ=5;
# the temperature is not given in the paper (1 keeps KL on the raw scale)
DEFAULT_DISTILL = dict(hard_weight=1.0, soft_weight=10.0, feature_weight=5.0,
                       tau=1.0, features='auto', logits=True,
                       phi='inverse', feature_gating='auto',
                       stage2_teacher='sparse', unsupervised=False,
                       pseudo_score_thr=0.5)
STAGE2_TEACHERS = ('sparse', 'dense')


@register_model
class MixedKDDistiller(BaseModel):
    """Distil a frozen teacher into a (sparse, quantized) student.

    ``mode='loss'`` returns the student's task losses (prefix ``student.``)
    and the distillation losses (prefix ``distill.``); ``'predict'`` and
    ``'tensor'`` run the student alone, so validation, testing and
    deployment see the student.

    Args:
        architecture (dict | nn.Module): The student (any mmdet, mmseg or
            mmpretrain model).
        teacher (dict | str | nn.Module): The dense teacher: a model dict,
            a config path (its ``model`` is used) or a module.
        teacher_ckpt (str, optional): Dense checkpoint (path or URL) loaded
            into the teacher through the project's safe loader. None keeps
            the teacher's own initialisation (smoke tests only; a warning
            says so). Defaults to None.
        init_student_from_teacher (bool): Also load ``teacher_ckpt`` into
            the student, which starts from the dense weights.
            Defaults to True.
        distill (dict, optional): ``hard_weight`` (α, weight of the
            student's task losses), ``soft_weight`` (β, KL of the task's
            classification logits at temperature ``tau``; see
            :mod:`.logit_taps`; ``logits=False`` turns it off),
            ``feature_weight`` (γ) with ``features`` ('auto': the critical
            later-stage layers of the backbone family, one term each, see
            :mod:`.critical_layers`; or a list of module paths, ``path[i]``
            for one element of a returned tuple, ``'auto'`` among them, or
            ``dict(student=, teacher=, connector=)`` pairs, see
            :mod:`.feature_pairs`), ``phi`` (per-pair weights, frozen when
            phase Q starts: 'inverse', 'proportional' or 'uniform'),
            ``feature_gating`` (classifiers: features are imitated only for
            samples where teacher and student predict the same class;
            'auto' = on for classifiers), ``stage2_teacher`` ('sparse': at
            phase Q the teacher becomes a frozen copy of the student's
            masked 2:4 float weights, the paper's M_SF; 'dense': the dense
            teacher stays), ``unsupervised`` (the teacher's predictions
            replace all ground truth; detections above
            ``pseudo_score_thr``). Defaults to ``DEFAULT_DISTILL``.
        save_teacher (bool): Keep the teacher's weights in checkpoints.
            Off by default: they come from ``teacher_ckpt``, and a
            checkpoint then holds the student only, except in phase Q with
            the sparse stage-2 teacher, which no later student can rebuild
            and which checkpoints therefore always carry. Defaults to
            False.
        data_preprocessor (dict, optional): Injected by the Runner from a
            config's top-level ``data_preprocessor``; given to the student,
            whose preprocessor the distiller uses. Defaults to None.
        init_cfg (dict, optional): Defaults to None.
    """

    def __init__(self,
                 architecture: Union[dict, nn.Module],
                 teacher: Union[dict, str, nn.Module],
                 teacher_ckpt: Optional[str] = None,
                 init_student_from_teacher: bool = True,
                 distill: Optional[dict] = None,
                 save_teacher: bool = False,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.architecture = self._build(architecture, data_preprocessor)
        self.teacher = self._build(self._teacher_cfg(teacher),
                                   data_preprocessor)
        self.data_preprocessor = self.architecture.data_preprocessor
        self.distill_cfg = self._parse_distill(distill)
        features, self.feature_family = self._resolve_features(
            self.distill_cfg['features'])
        self.pairs = build_pairs(features)
        check_paths(self.architecture, [p.student_path for p in self.pairs])
        check_paths(self.teacher, [p.teacher_path for p in self.pairs])
        self.phi = PhiWeights(len(self.pairs), self.distill_cfg['phi'])
        if self.distill_cfg['stage2_teacher'] == 'sparse':
            check_same_architecture(self.architecture.state_dict(),
                                    self.teacher.state_dict())
        # True once the teacher is the sparse stage-2 copy (a buffer: saved
        # in checkpoints, so a resumed run knows what its teacher is)
        self.register_buffer('teacher_sparse',
                             torch.zeros((), dtype=torch.bool))
        self._load_teacher(teacher_ckpt, init_student_from_teacher)
        self.teacher.requires_grad_(False)
        self.teacher.eval()
        self.save_teacher = save_teacher
        self.taps = LogitTaps(self.architecture)
        if self.distill_cfg['feature_gating'] is True and \
                self.taps.kind != 'classifier':
            raise ValueError('MixedKDDistiller: feature_gating=True needs '
                             'class logits and applies to classifiers only; '
                             f'this is a {self.taps.kind} model')
        self._register_state_dict_hook(_drop_teacher)
        self._register_load_state_dict_pre_hook(_map_task_keys,
                                                with_module=True)
        self._log_pairs()

    @property
    def student(self) -> nn.Module:
        """The model being compressed (what hooks act on)."""
        return self.architecture

    # ----------------------------------------------------------- building
    @staticmethod
    def _teacher_cfg(teacher: Union[dict, str, nn.Module]):
        if isinstance(teacher, str):
            if not osp.isfile(teacher):
                raise FileNotFoundError(
                    f'MixedKDDistiller: teacher config {teacher!r} does not '
                    'exist; give a model dict or an existing config path')
            return Config.fromfile(teacher).model
        return teacher

    @staticmethod
    def _build(model: Union[dict, nn.Module],
               data_preprocessor: Optional[dict]) -> nn.Module:
        if isinstance(model, nn.Module):
            return model
        model = copy.deepcopy(dict(model))
        if data_preprocessor is not None:
            model.setdefault('data_preprocessor', data_preprocessor)
        return MODELS.build(model)

    @staticmethod
    def _parse_distill(distill: Optional[dict]) -> dict:
        cfg = dict(DEFAULT_DISTILL)
        unknown = set(distill or {}) - set(cfg)
        if unknown:
            raise KeyError(f'MixedKDDistiller: unknown distill key(s) '
                           f'{sorted(unknown)}; valid keys: {sorted(cfg)}')
        cfg.update(distill or {})
        features = cfg['features']
        cfg['features'] = [features] if isinstance(features, str) else \
            list(features)
        if cfg['feature_gating'] not in (True, False, 'auto'):
            raise ValueError("MixedKDDistiller: feature_gating must be True, "
                             f"False or 'auto', got {cfg['feature_gating']!r}")
        if cfg['stage2_teacher'] not in STAGE2_TEACHERS:
            raise ValueError(
                'MixedKDDistiller: stage2_teacher must be one of '
                f"{STAGE2_TEACHERS} ('sparse': the paper's frozen sparse "
                "float model M_SF in phase Q; 'dense': keep the dense "
                f"teacher), got {cfg['stage2_teacher']!r}")
        return cfg

    def _resolve_features(self, specs: list) -> tuple:
        """Expand ``'auto'`` entries into the model's critical layers."""
        out, family = [], None
        for spec in specs:
            if spec != 'auto':
                out.append(spec)
                continue
            auto, family, note = critical_features(self.architecture)
            if note:
                print_log(f'MixedKDDistiller: {note}', logger='current')
            out.extend(a for a in auto if a not in out)
        return out, family

    def _log_pairs(self) -> None:
        auto = 'auto' in self.distill_cfg['features']
        head = (f"features='auto' resolved for backbone family "
                f'{self.feature_family}' if auto else 'features as listed')
        lines = [f'MixedKDDistiller: {len(self.pairs)} feature pair(s), '
                 f'{head}; phi={self.distill_cfg["phi"]!r}, stage-2 '
                 f'teacher {self.distill_cfg["stage2_teacher"]!r}']
        for pair in self.pairs:
            conn = type(pair.connector).__name__ if pair.connector else '-'
            lines.append(f'  {pair.name:<28} student {pair.student:<34} '
                         f'teacher {pair.teacher:<34} connector {conn}')
        print_log('\n'.join(lines), logger='current')

    def _load_teacher(self, ckpt: Optional[str], init_student: bool) -> None:
        if ckpt is None:
            warnings.warn('MixedKDDistiller: teacher_ckpt is None, the '
                          'teacher keeps its own (random or pretrained) '
                          'initialisation; use this for smoke tests only')
            return
        if '://' not in ckpt and not osp.isfile(ckpt):
            raise FileNotFoundError(
                f'MixedKDDistiller: teacher_ckpt {ckpt!r} does not exist; '
                'train the dense model first or fix the path')
        # an unreachable URL raises CheckpointUnreachableError (the safe
        # loader's http scheme), whose message names model.teacher_ckpt
        checkpoint = _load_checkpoint(ckpt, map_location='cpu')
        weights = checkpoint.get('state_dict', checkpoint)
        check_state_dict_fits(
            self.teacher, {k[7:] if k.startswith('module.') else k: v
                           for k, v in weights.items()},
            f'MixedKDDistiller: teacher_ckpt {ckpt!r}')
        targets: List[nn.Module] = [self.teacher]
        if init_student:
            targets.append(self.architecture)
        for model in targets:
            _load_checkpoint_to_model(model, checkpoint, strict=True)
            model._is_init = True  # keep init_weights() from overwriting

    # ----------------------------------------------------------- forward
    def forward(self, inputs: Tensor, data_samples=None,
                mode: str = 'tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        return self.architecture(inputs, data_samples, mode=mode)

    def loss(self, inputs: Tensor, data_samples) -> Dict[str, Tensor]:
        """Student task losses plus distillation losses."""
        cfg = self.distill_cfg
        use_logits = cfg['logits'] and self.taps.kind != 'none'
        t_paths = sorted({p.teacher_path for p in self.pairs})
        if use_logits and self.taps.kind == 'two_stage':
            t_paths = sorted(set(t_paths) | {'neck'})
        if cfg['unsupervised']:
            pseudo_label(self.taps.kind, self.teacher, inputs, data_samples,
                         cfg['pseudo_score_thr'])
        with torch.no_grad(), ExitStack() as stack:
            t_feats = stack.enter_context(record_outputs(self.teacher,
                                                         t_paths))
            t_logits = stack.enter_context(
                self.taps.record(self.teacher, roi=False))
            self.taps.run_teacher(self.teacher, inputs, data_samples)
        with ExitStack() as stack:
            s_feats = stack.enter_context(record_outputs(
                self.architecture,
                sorted({p.student_path for p in self.pairs})))
            s_logits = stack.enter_context(
                self.taps.record(self.architecture, roi=True))
            student_losses = self.architecture.loss(inputs, data_samples)
        losses = {}
        for key, value in student_losses.items():
            if 'loss' in key:
                value = _scale(value, cfg['hard_weight'])
            losses[f'student.{key}'] = value
        if use_logits:
            kl = self.taps.losses(s_logits, t_logits, self.teacher,
                                  t_feats.get('neck'), cfg['tau'])
            for name, value in kl.items():
                losses[f'distill.loss_logits_{name}'] = \
                    cfg['soft_weight'] * value
        losses.update(self._feature_losses(s_feats, t_feats, s_logits,
                                           t_logits))
        return losses

    def _feature_losses(self, s_feats: dict, t_feats: dict, s_logits: dict,
                        t_logits: dict) -> Dict[str, Tensor]:
        weights = None
        gating = self.distill_cfg['feature_gating']
        if gating is True or (gating == 'auto'
                              and self.taps.kind == 'classifier'):
            path = self.taps.paths[0]
            weights = (s_logits[path].argmax(1) ==
                       t_logits[path].argmax(1)).float()
        raw = [feature_mse(pair.adapt(pair.student_feature(s_feats)),
                           pair.teacher_feature(t_feats), pair.student,
                           weights)
               for pair in self.pairs]
        if self.training:
            self.phi.observe(raw)
        gamma = self.distill_cfg['feature_weight']
        return {f'distill.loss_feat_{pair.name}': gamma * phi * value
                for pair, phi, value in zip(self.pairs, self.phi.phi, raw)}

    def on_phase_change(self, phase: str,
                        masks: Optional[Dict[str, Tensor]] = None) -> None:
        """Called by the GPUSQ hooks. At phase Q, φ is computed and frozen
        and, with ``stage2_teacher='sparse'``, the teacher becomes a frozen
        copy of the student's masked float weights.

        Args:
            phase (str): The phase that starts (``'Q'`` acts).
            masks (dict, optional): The student's 2:4 masks ``{parameter
                path: bool mask}`` (``Sparse24Hook.masks``); None when no
                2:4 phase ran. Defaults to None.
        """
        if phase != 'Q':
            return
        info = self.phi.freeze()
        if info:
            names = [p.name for p in self.pairs]
            print_log(f'MixedKDDistiller: phase Q, per-layer feature '
                      f'weights ({self.phi.mode}) frozen: '
                      f'{dict(zip(names, info["phi"]))} from mean phase-S '
                      f'losses {dict(zip(names, info["mean_loss"]))}',
                      logger='current')
        if self.distill_cfg['stage2_teacher'] == 'sparse' and \
                not bool(self.teacher_sparse):
            count = copy_sparse_student(self.architecture, self.teacher,
                                        masks or {})
            self.teacher_sparse.fill_(True)
            dense = '' if masks else ' (no 2:4 masks: the student is dense)'
            print_log(f'MixedKDDistiller: phase Q teacher = frozen copy of '
                      f'the student (M_SF): {count} of its weights masked '
                      f'2:4{dense}', logger='current')

    def gpusq_meta(self) -> dict:
        """What checkpoints record in ``meta['gpusq']['distill']``."""
        names = [p.name for p in self.pairs]
        mean = (self.phi.loss_sum / self.phi.count.clamp_min(1)).tolist()
        return dict(features=[p.student for p in self.pairs],
                    family=self.feature_family, phi_mode=self.phi.mode,
                    phi_frozen=bool(self.phi.frozen),
                    phi=dict(zip(names, self.phi.phi.tolist())),
                    phase_s_mean_loss=dict(zip(names, mean)),
                    stage2_teacher=self.distill_cfg['stage2_teacher'],
                    teacher='sparse' if bool(self.teacher_sparse) else
                    'dense')

    def train(self, mode: bool = True) -> 'MixedKDDistiller':
        """Switch the student's mode; the teacher always stays in eval."""
        super().train(mode)
        self.teacher.eval()
        return self


def _scale(value: Union[Tensor, List[Tensor]], weight: float):
    if weight == 1.0:
        return value
    if isinstance(value, (list, tuple)):
        return [v * weight for v in value]
    return value * weight


def _drop_teacher(module: 'MixedKDDistiller', state_dict: dict, prefix: str,
                  local_metadata: dict) -> dict:
    """State-dict hook: checkpoints hold the student unless
    ``save_teacher`` or the teacher is the sparse stage-2 copy."""
    if not (module.save_teacher or bool(module.teacher_sparse)):
        teacher = prefix + 'teacher.'
        for key in [k for k in state_dict if k.startswith(teacher)]:
            del state_dict[key]
    return state_dict


def _map_task_keys(module: 'MixedKDDistiller', state_dict: dict, prefix: str,
                   *args) -> None:
    """Load-time pre-hook: a plain task checkpoint (keys ``backbone.*``)
    initialises the student; a load matching no student key is an error,
    and so is a sparse stage-2 flag without the teacher it names."""
    own = prefix + STUDENT_PREFIX
    if any(k.startswith(own) for k in state_dict):
        flag = state_dict.get(prefix + 'teacher_sparse')
        if flag is not None and bool(flag) and not any(
                k.startswith(prefix + 'teacher.') for k in state_dict):
            raise ValueError(
                'MixedKDDistiller: the checkpoint was saved in phase Q with '
                'the sparse stage-2 teacher but holds no teacher.* weights; '
                'it was stripped (tools/model_converters) or damaged: resume '
                'from an unstripped phase-Q checkpoint')
        return  # a distiller checkpoint
    student_keys = set(module.architecture.state_dict())
    plain = [k for k in list(state_dict) if k.startswith(prefix)
             and not k.startswith(prefix + 'teacher.')]
    matched = [k for k in plain if k[len(prefix):] in student_keys]
    if plain and not matched:
        raise ValueError(
            'MixedKDDistiller: the checkpoint matches no key of the student '
            f'(e.g. {plain[0][len(prefix):]!r}); it belongs to another model')
    for key in matched:
        state_dict[own + key[len(prefix):]] = state_dict.pop(key)
