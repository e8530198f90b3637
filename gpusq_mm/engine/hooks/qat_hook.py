"""QATHook: INT8 quantization-aware training of the student."""
from typing import Dict, Optional, Sequence, Union

import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import Hook
from mmengine.logging import print_log
from torch import nn

from gpusq_mm.checkpoint_format import (QAT_KEY, check_resume,
                                        restore_quant_structure,
                                        update_distill_meta, update_gpusq_meta)
from gpusq_mm.engine.calib_data import (calibration_loop,
                                        check_calibration_size,
                                        default_calib_samples, describe,
                                        loader_batch_size, plan_calibration)
from gpusq_mm.engine.qat_report import plan_table, summary_table
from gpusq_mm.engine.scale_params import add_scale_group, sync_scale_grads
from gpusq_mm.quantization import (build_calibrator, calibrate, enable_quant,
                                   insert_attention_quantizers,
                                   insert_quantizers, make_scales_learnable,
                                   quant_attention_layers, quant_gemms,
                                   select_attention, select_quant_layers,
                                   uncalibrated)
from gpusq_mm.registry import register_hook
from gpusq_mm.utils import get_student, unwrap_model
from gpusq_mm.utils.rng import isolated_rng
from gpusq_mm.utils.scope import check_scope, resolve_scope

from .phase_start import PhaseStart
from .sparse24_hook import Sparse24Hook


@register_hook
class QATHook(Hook):
    """Insert INT8 fake quantization, calibrate, then train (QAT).

    At ``start_iter``/``start_epoch`` the hook swaps the selected
    Linear/Conv2d layers of the student in ``scope`` to fake-quantized ones
    (symmetric int8, per-output-channel weight ranges, per-tensor activation
    ranges, zero point 0), runs ``calib_samples`` training samples (a
    seeded random subset, through the test pipeline; see
    :mod:`gpusq_mm.engine.calib_data`) through the student in eval mode,
    merges the statistics across DDP ranks (max; histograms summed),
    freezes the ranges and lets training continue with straight-through
    gradients. Quantizers that calibration never reached (a forward
    bypassed by a functional call, a training-only head) stay in float and
    are listed with the reason in the log and in ``meta['gpusq']['quant']
    ['float']``. The ranges are buffers of the quantizers
    (:class:`~gpusq_mm.quantization.TensorQuantizer`), saved in the state dict;
    on ``--resume`` the layers are re-created in ``after_load_checkpoint``
    (before the state dict loads) so the saved ranges are restored exactly
    and calibration is not repeated.

    Note:
        By default the ranges are fixed at calibration (frozen scales).
        With ``learnable_scales=True`` every range becomes a parameter
        trained with the LSQ gradient, in an optimizer group of its own
        (``scale_lr``, no weight decay) whose gradients are averaged across
        DDP ranks. Pruned 2:4 weights are exactly zero and stay zero when
        fake-quantized, whatever the scale.

    Args:
        start_iter (int | float, optional): Iteration at which QAT starts.
            A float in [0, 1) is a fraction of ``max_iters``.
            Defaults to None (start of training unless ``start_epoch``).
        start_epoch (int | float, optional): Epoch at which QAT starts.
            Defaults to None.
        calib_samples (int, optional): Training samples used for
            calibration. Defaults to None (512 for classifiers, 64 for
            detectors and segmentors).
        calib_batches (int, optional): Deprecated: calibrate on this many
            training batches' worth of samples. Defaults to None.
        calibrator (str): Activation range statistic: 'max',
            'percentile', 'mse' or 'entropy'. Defaults to 'max'.
        percentile (float): For 'percentile'. Defaults to 99.99.
        weight_bits (int): 8 (W8A8) or 4 (W4A8). Defaults to 8.
        scope (str): 'backbone' (the paper's choice), 'backbone+neck' or
            'all'; a model without ``backbone`` uses 'all' (logged).
            Defaults to 'backbone'.
        include (Sequence[str], optional): Regexes of layers to quantize
            (within ``scope``). Defaults to None (all Linear/Conv2d).
        exclude (Sequence[str], optional): Regexes of layers kept in high
            precision. Defaults to None.
        quant_patch_embed (bool): Quantize the patch embeddings and patch
            merging layers. Defaults to False.
        quant_attention (bool | dict): Also quantize the two attention
            matmuls (q·kᵀ and attn·v) of Swin window attention and
            multi-head attention; a dict gives ``include``/``exclude``
            regexes of attention modules. Defaults to False.
        learnable_scales (bool): Train the ranges after calibration.
            Defaults to False.
        scale_lr (float, optional): Learning rate of the ranges. Defaults to
            None (that of the optimizer's first parameter group).

    Examples:
        >>> custom_hooks = [dict(type='Sparse24Hook'),
        ...                 dict(type='QATHook', start_iter=1000)]
    """

    priority = 'NORMAL'

    def __init__(self,
                 start_iter: Optional[Union[int, float]] = None,
                 start_epoch: Optional[Union[int, float]] = None,
                 calib_samples: Optional[int] = None,
                 calib_batches: Optional[int] = None,
                 calibrator: str = 'max',
                 percentile: float = 99.99,
                 weight_bits: int = 8,
                 scope: str = 'backbone',
                 include: Optional[Sequence[str]] = None,
                 exclude: Optional[Sequence[str]] = None,
                 quant_patch_embed: bool = False,
                 quant_attention: Union[bool, dict] = False,
                 learnable_scales: bool = False,
                 scale_lr: Optional[float] = None) -> None:
        try:
            self._calibrator = build_calibrator(calibrator,
                                                percentile=percentile)
        except ValueError as err:
            raise ValueError(f'QATHook: {err}') from None
        if weight_bits not in (4, 8):
            raise ValueError(f'QATHook: weight_bits must be 8 or 4, got '
                             f'{weight_bits!r}')
        check_calibration_size(calib_samples, calib_batches)
        check_scope(scope, 'QATHook')
        if isinstance(quant_attention, dict):
            unknown = set(quant_attention) - {'include', 'exclude'}
            if unknown:
                raise ValueError(f'QATHook: quant_attention takes the keys '
                                 f"'include' and 'exclude', got {unknown}")
        elif not isinstance(quant_attention, bool):
            raise ValueError(f'QATHook: quant_attention must be a bool or a '
                             f'dict(include=..., exclude=...), got '
                             f'{quant_attention!r}')
        if scale_lr is not None and not scale_lr > 0:
            raise ValueError(f'QATHook: scale_lr must be positive, got '
                             f'{scale_lr!r}')
        self.start = PhaseStart('QATHook', start_iter, start_epoch)
        self.calib_samples = calib_samples
        self.calib_batches = calib_batches
        self.scope = scope
        self.weight_bits = weight_bits
        self.include = list(include) if include else None
        self.exclude = list(exclude) if exclude else None
        self.quant_patch_embed = quant_patch_embed
        self.quant_attention = quant_attention
        self.learnable_scales = learnable_scales
        self.scale_lr = scale_lr
        self.started = False

    @property
    def calibrator(self) -> str:
        """The calibrator's name (as configured and recorded)."""
        return self._calibrator.name

    # ----------------------------------------------------------- stages
    def before_train(self, runner) -> None:
        self.start.check_within(runner)
        self._log_plan(runner)
        if self.started:  # restored by after_load_checkpoint
            enable_quant(get_student(runner.model))
        elif self.start.due(runner):
            self._start(runner)

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        if not self.started and self.start.due(runner):
            self._start(runner)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if not self.started:
            return
        student = get_student(runner.model)
        layers = sorted(quant_gemms(student))
        attention = sorted(quant_attention_layers(student))
        checkpoint[QAT_KEY] = dict(layers=layers, attention=attention,
                                    weight_bits=self.weight_bits,
                                    calibrator=self.calibrator,
                                    learnable_scales=self.learnable_scales)
        scheme = f'int{self.weight_bits}w-int8a-symmetric-per-channel'
        update_gpusq_meta(
            checkpoint, 'quant',
            dict(scheme=scheme, calibrator=self.calibrator, layers=layers,
                 attention=attention, scope=self.scope,
                 float=uncalibrated(student),
                 scales='learnable' if self.learnable_scales else 'frozen'),
            phase='Q')
        update_distill_meta(checkpoint, runner.model)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        student = get_student(runner.model)
        if not restore_quant_structure(student, checkpoint):
            return
        self.started = True
        saved = checkpoint[QAT_KEY]
        check_resume('QATHook', 'learnable_scales',
                     saved.get('learnable_scales', False),
                     self.learnable_scales)
        check_resume('QATHook', 'weight_bits', saved['weight_bits'],
                     self.weight_bits)
        # calibration is not repeated on resume: another calibrator in the
        # config would silently not apply
        check_resume('QATHook', 'calibrator',
                     saved.get('calibrator', self.calibrator),
                     self.calibrator,
                     hint=' (or start from a checkpoint before calibration '
                     'to calibrate again)')
        if self.learnable_scales and _training(runner):
            self._train_scales(runner, make_scales_learnable(student))

    # ----------------------------------------------------------- helpers
    def _start(self, runner) -> None:
        student = get_student(runner.model)
        decisions = self._select(student)
        insert_quantizers(student, decisions, self.weight_bits)
        attention = {}
        if self.quant_attention:
            patterns = self.quant_attention if isinstance(
                self.quant_attention, dict) else {}
            attention = select_attention(student, **patterns)
            insert_attention_quantizers(student, attention)
        model = unwrap_model(runner.model)
        # seeded, isolated generators: the same calibration wherever a
        # (resumed) run starts it, and the training stream is untouched
        calib = plan_calibration(runner, self._num_samples(runner, student),
                                 runner.seed or 0)
        with isolated_rng(runner.seed or 0):
            amax = calibrate(student, calibration_loop(runner, model, calib),
                             self._calibrator, reduce_fn=_all_reduce_max,
                             sum_fn=_all_reduce_sum)
        self.started = True
        if self.learnable_scales:
            self._train_scales(runner, make_scales_learnable(student))
        print_log(f'QATHook: calibrated on {describe(calib)}',
                  logger='current')
        self._log_summary(runner, decisions, attention, amax,
                          uncalibrated(student))
        # phase Q begins: let the model react (the distiller freezes φ and
        # takes the masked student as its stage-2 teacher)
        if hasattr(model, 'on_phase_change'):
            model.on_phase_change('Q', masks=_sparse_masks(runner))

    def _select(self, student: nn.Module) -> Dict[str, str]:
        """Layer decisions (``scope`` resolved in ``before_train``)."""
        return select_quant_layers(student, self.include, self.exclude,
                                   self.quant_patch_embed, self.scope)

    def _log_plan(self, runner) -> None:
        """Before training: the scope, and which layers phase Q will
        quantize."""
        student = get_student(runner.model)
        self.scope, note = resolve_scope(student, self.scope)
        if note:
            print_log(f'QATHook: {note}', logger='current')
        if self.started:
            return
        print_log(plan_table(self._select(student), self.scope),
                  logger='current')

    def _num_samples(self, runner, student: nn.Module) -> int:
        if self.calib_samples is not None:
            return self.calib_samples
        if self.calib_batches is not None:
            return self.calib_batches * loader_batch_size(
                runner.train_dataloader)
        return default_calib_samples(student)

    def _train_scales(self, runner, params) -> None:
        group = add_scale_group(runner, params, self.scale_lr)
        sync_scale_grads(params)
        print_log(f'QATHook: {len(params)} quantization ranges are learnable '
                  f"(lr {group['lr']:.3g}, no weight decay)", logger='current')

    def _log_summary(self, runner, decisions: Dict[str, str],
                     attention: Dict[str, str], amax: Dict[str, float],
                     unseen: Dict[str, str]) -> None:
        header = (f'int8 activations, int{self.weight_bits} weights, '
                  f'{self.calibrator} calibration, at iter {runner.iter}')
        print_log(summary_table(header, decisions, attention, amax, unseen),
                  logger='current')


def _training(runner) -> bool:
    """Whether the runner is training (has a built optimizer)."""
    from mmengine.optim import OptimWrapper
    return isinstance(runner.optim_wrapper, OptimWrapper)


def _all_reduce_max(tensor: torch.Tensor) -> None:
    if get_world_size() > 1:
        all_reduce(tensor, op='max')


def _all_reduce_sum(tensor: torch.Tensor) -> None:
    if get_world_size() > 1:
        all_reduce(tensor, op='sum')


def _sparse_masks(runner) -> Optional[Dict[str, torch.Tensor]]:
    """The 2:4 masks of the run's ``Sparse24Hook`` (None without one, or
    before its masks exist)."""
    for hook in runner.hooks:
        if isinstance(hook, Sparse24Hook) and hook.started_at is not None:
            return dict(hook.masks)
    return None
