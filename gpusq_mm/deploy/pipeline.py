"""The named steps of ``tools/deploy.py``; each adds its facts to
``self.report``."""
import logging
import os
import os.path as osp
import time
from functools import partial
from typing import Callable, List, Optional

import numpy as np
from mmengine.config import Config
from torch import Tensor

from gpusq_mm.quantization import disable_quant

from .codebases import build_exporter
from .exporter import export_onnx, ort_session, run_session, run_torch
from .int4 import write_int4_onnx
from .loader import load_deploy_model
from .onnxruntime.lowering import lower_file, lowering_counts, max_rel_diff
from .parity import check_graphs, dataset_images, image_variants, parity_rule
from .qdq import build_deploy_model, keep_used_layers
from .report import layer_table, sizes, write_report
from .tensorrt.build import (build_engine, engine_unavailable_reason,
                             input_shapes, write_build_script)
from .verify import (gemm_weights, verify_qdq, verify_sparse, weight_facts,
                     weight_initializers)

logger = logging.getLogger('gpusq_mm.deploy')


class ParityError(RuntimeError):
    """A deployed graph's outputs (ONNX Runtime or OpenVINO) do not match
    the PyTorch model's."""


class DeployPipeline:
    """Checkpoint -> ``end2end.onnx`` -> checks -> engine script/engine.

    Args:
        deploy_cfg (Config): Deploy config (``onnx_config``,
            ``codebase_config``, ``backend_config``, ``gpusq_config``).
        model_cfg (Config): Task or GPUSQ model config.
        checkpoint (str): Checkpoint to deploy (never modified).
        img (str): Image used for tracing and the parity check.
        work_dir (str): Output directory.
        test_img (str, optional): Image for the parity check instead of
            ``img``. Defaults to None.
        dense (bool): Accept a plain checkpoint and export without Q/DQ.
            Defaults to False.
        precision (str, optional): 'fp32' or 'fp16'; overrides
            ``gpusq_config.precision``. Defaults to None.
        device (str): Device of the PyTorch reference. Defaults to 'cpu'.
    """

    def __init__(self, deploy_cfg: Config, model_cfg: Config,
                 checkpoint: str, img: str, work_dir: str,
                 test_img: Optional[str] = None, dense: bool = False,
                 precision: Optional[str] = None,
                 device: str = 'cpu') -> None:
        self.deploy_cfg, self.model_cfg = deploy_cfg, model_cfg
        self.checkpoint, self.img, self.test_img = checkpoint, img, test_img
        self.work_dir, self.device = work_dir, device
        gpusq_cfg = deploy_cfg.get('gpusq_config', {})
        self.dense = dense or not gpusq_cfg.get('quantize', True)
        self.accept_plain = dense
        self.precision = precision or gpusq_cfg.get('precision', 'fp32')
        if self.precision not in ('fp32', 'fp16'):
            raise ValueError(f"precision must be 'fp32' or 'fp16', got "
                             f'{self.precision!r}')
        self.onnx_path = osp.join(work_dir, deploy_cfg.onnx_config.get(
            'save_file', 'end2end.onnx'))
        self.report: dict = dict(checkpoint=checkpoint, onnx=self.onnx_path,
                                 precision=self.precision, steps={})
        self.inputs: Optional[Tensor] = None
        self.meta: dict = {}
        os.makedirs(work_dir, exist_ok=True)

    def steps(self) -> List[Callable[[], None]]:
        return [self.check_inputs, self.load_checkpoint,
                self.build_deploy_model,
                self.export_onnx, self.verify_onnx, self.write_int4,
                self.lower_for_ort, self.convert_openvino,
                self.verify_outputs, self.build_trt, self.write_report]

    def run(self) -> dict:
        """Run every step in order; returns the report."""
        for step in self.steps():
            start = time.perf_counter()
            logger.info('step %s ...', step.__name__)
            step()
            took = round(time.perf_counter() - start, 2)
            self.report['steps'][step.__name__] = took
            logger.info('step %s done in %.2fs', step.__name__, took)
        parity = self.report['parity']
        if not parity['passed']:
            failed = {name: f"{r['passed_images']} of {r['num_images']} "
                      f"images passed, {r['needed']} needed"
                      for name, r in parity['graphs'].items()
                      if not r['passed']}
            raise ParityError(f'parity failed against PyTorch: '
                              f'{failed}; per-image verdicts in '
                              f'{self.work_dir}/report.md')
        return self.report

    # ----------------------------------------------------------- steps
    def check_inputs(self) -> None:
        """Every input file, before any heavy step: the checkpoint exists,
        the images are readable, the model config has a test pipeline."""
        from .codebases.base import read_image_checked, resolve_test_pipeline
        if not osp.isfile(self.checkpoint):
            raise FileNotFoundError(f'checkpoint {self.checkpoint!r} does '
                                    'not exist; give the path of a .pth file')
        for path in filter(None, (self.img, self.test_img)):
            read_image_checked(path)
        resolve_test_pipeline(self.model_cfg)

    def load_checkpoint(self) -> None:
        self.exporter = build_exporter(self.model_cfg, self.deploy_cfg)
        self.loaded = load_deploy_model(
            self.model_cfg, self.checkpoint, self.exporter.scope,
            dense=self.accept_plain)
        self.exporter.check_supported(self.loaded.model)
        self.report.update(gpusq=self.loaded.gpusq,
                           from_distiller=self.loaded.from_distiller)

    def build_deploy_model(self) -> None:
        loaded = self.loaded
        model = loaded.model
        if self.dense:
            disable_quant(model)
        deploy, self.info = build_deploy_model(model, loaded.sparse_params,
                                               loaded.masks)
        # the image first: an exporter without a configured static shape
        # (mmdet) takes the pre-processed image's; a caller that traces
        # its own batch (the CPU benchmark) sets ``inputs`` beforehand
        if self.inputs is None:
            self.inputs, self.meta = self.exporter.load_image(self.img)
        self.deploy_module = self.exporter.export_module(deploy)
        self.reference = self.exporter.export_module(model)
        self.report['deploy'] = dict(
            quantized=len(self.info.quantized), sparse=len(self.info.sparse),
            float_fake_quant_layers=self.info.float_layers,
            tensor_quantizers=self.info.tensor_quantizers,
            masks_baked=self.info.baked)

    def export_onnx(self) -> None:
        import onnx
        onnx_cfg = self.deploy_cfg.onnx_config
        self.report['deploy'].update(
            not_deployed=keep_used_layers(self.deploy_module, self.inputs,
                                          self.info),
            quantized=len(self.info.quantized), sparse=len(self.info.sparse))
        self._check_static_shape(list(self.inputs.shape))
        opset = int(onnx_cfg.get('opset_version', 17))
        if self.precision == 'fp16' and self.info.quantized:
            opset = max(opset, 19)
        export_onnx(self.deploy_module, self.inputs, self.onnx_path,
                    self.exporter.output_names, opset=opset,
                    input_name=(onnx_cfg.get('input_names') or ['input'])[0],
                    dynamic_axes=onnx_cfg.get('dynamic_axes'))
        if self.precision == 'fp16':
            from .tensorrt.fp16 import convert_to_fp16
            onnx.save(convert_to_fp16(onnx.load(self.onnx_path)),
                      self.onnx_path)
        self.report.update(opset=opset, input_shape=list(self.inputs.shape))

    def verify_onnx(self) -> None:
        import onnx
        onnx.checker.check_model(self.onnx_path, full_check=True)
        model = onnx.load(self.onnx_path)
        verify_sparse(model, self.info.sparse)
        qdq = verify_qdq(model, sorted(self.info.quantized))
        facts = weight_facts(model, [n for n in self._export_layers()])
        self.report['layers'] = layer_table(self.deploy_module, self.info,
                                            facts)
        self.report['qdq_pairs'] = len(qdq)
        gemms = gemm_weights(model)  # read from the graph, not the report
        self.report['graph_gemms'] = dict(
            total=len(gemms), int8=sum(w['int8'] for w in gemms),
            pruned=sum(w['pruned'] for w in gemms),
            pruned_not_int8=[w['weight'] for w in gemms
                             if w['pruned'] and not w['int8']])
        self.report['sizes'] = sizes(self.report['layers'], self.onnx_path)

    def write_int4(self) -> None:
        """W4A8 (``weight_bits=4``): also write ``end2end.int4.onnx`` with
        the 4-bit weights as INT4 initializers (opset 21, see
        :mod:`.int4`); the int8-container file stays the one backends run.
        Other checkpoints: nothing."""
        import onnx
        layers = sorted(n for n, b in self.info.quantized.items() if b == 4)
        if not layers:
            return
        where = weight_initializers(onnx.load(self.onnx_path), layers)
        dst = osp.splitext(self.onnx_path)[0] + '.int4.onnx'
        self.report['int4'] = write_int4_onnx(self.onnx_path, dst,
                                              sorted(where.values()))
        self.report['int4']['runs_int8_file'] = (
            'ONNX Runtime fuses only int8 Q/DQ and TensorRT INT4 is '
            'weight-only: backends run end2end.onnx (4-bit values in int8)')

    def lower_for_ort(self) -> None:
        """``backend_config.type='onnxruntime'``: write ``*.ort.onnx``, the
        Q/DQ graph lowered for ONNX Runtime's CPU provider (see
        :mod:`gpusq_mm.deploy.onnxruntime.lowering`), the file to run with ONNX
        Runtime; ``end2end.onnx`` stays the explicit Q/DQ contract file.
        Other backends: nothing."""
        self.ort_path = self.onnx_path
        if self.deploy_cfg.backend_config.type != 'onnxruntime':
            return
        self.ort_path = osp.splitext(self.onnx_path)[0] + '.ort.onnx'
        facts = lower_file(self.onnx_path, self.ort_path)
        self.report['ort_lowering'] = dict(onnx=self.ort_path,
                                           **lowering_counts(facts))

    def convert_openvino(self) -> None:
        """``backend_config.type='openvino'``: convert the verified Q/DQ
        graph to OpenVINO IR ``end2end.xml``/``.bin`` (see
        :mod:`gpusq_mm.deploy.openvino`); the report states its int8
        weight bytes and the layers OpenVINO runs in int8. Other backends:
        nothing."""
        self.ov_runner = None
        if self.deploy_cfg.backend_config.type != 'openvino':
            return
        from .openvino.step import convert_for_openvino
        self.report['openvino'], self.ov_runner = convert_for_openvino(
            self.onnx_path, self.deploy_cfg)

    def verify_outputs(self) -> None:
        """Parity against PyTorch of every graph written for the backend
        (``end2end.onnx`` with ONNX Runtime; for onnxruntime also the
        lowered ``end2end.ort.onnx`` that users run, for openvino the IR
        ``end2end.xml`` run by OpenVINO) on the test image plus up to
        ``codebase_config.parity.num_images`` images of the config's
        val/test set (see :mod:`.parity`); the report keeps per-image
        verdicts, and the top-level numbers are those of ``end2end.onnx``
        on the first image."""
        rule = parity_rule(self.deploy_cfg, self.exporter.scope)
        images = self._parity_images(rule['num_images'])
        reference = self.reference.to(self.device)
        qdq_name, ort_name = (osp.basename(p) for p in (self.onnx_path,
                                                         self.ort_path))
        # one session per graph for all images; the first image's outputs
        # are kept for the report and --show
        runners = {osp.basename(p): partial(run_session, ort_session(p))
                   for p in {self.onnx_path, self.ort_path}}
        if getattr(self, 'ov_runner', None) is not None:
            runners[osp.basename(self.report['openvino']['xml'])] = \
                self.ov_runner
        first: dict = {}

        def keep_first(name: str, run: Callable) -> Callable:
            def wrapped(inputs):
                outputs = run(inputs)
                first.setdefault(name, outputs)
                return outputs
            return wrapped

        results = check_graphs(
            images, lambda path: self.exporter.load_image(path)[0],
            keep_first('torch', lambda x: run_torch(reference,
                                                    x.to(self.device))),
            {name: keep_first(name, run)
             for name, run in sorted(runners.items())},
            self.exporter.compare, rule['min_pass_fraction'])
        top = dict(results[qdq_name]['images'][0])
        top.pop('image')
        self.report['parity'] = dict(
            top, passed=all(r['passed'] for r in results.values()),
            rule=rule, graphs=results)
        ref, got = first['torch'], first[qdq_name]
        self.outputs = dict(torch=ref, onnxruntime=got)
        if 'openvino' in self.report:
            self.outputs['openvino'] = first[osp.basename(
                self.report['openvino']['xml'])]
        if ort_name != qdq_name:
            lowered = first[ort_name]
            self.report['ort_lowering'].update(
                vs_qdq=self.exporter.compare(got, lowered),
                vs_torch=self.exporter.compare(ref, lowered),
                max_rel_diff_vs_qdq=max(
                    (max_rel_diff(a, b) for a, b in zip(got, lowered)
                     if a.dtype.kind == 'f'), default=0.0))

    def _parity_images(self, num: int) -> List[str]:
        first = self.test_img or self.img
        extra = dataset_images(self.model_cfg, self.exporter.scope, num)
        source = 'dataset'
        if not extra and num:
            extra = image_variants(first, osp.join(self.work_dir,
                                                   'parity_images'), num)
            source = 'variants of the test image'
        extra = [p for p in extra if osp.abspath(p) != osp.abspath(first)]
        self.report['parity_images'] = dict(source=source,
                                            count=1 + len(extra[:num]))
        return [first] + extra[:num]

    def build_trt(self) -> None:
        script = write_build_script(self.deploy_cfg, self.work_dir)
        self.report['build_script'] = script
        reason = engine_unavailable_reason()
        if reason or self.deploy_cfg.backend_config.type != 'tensorrt':
            reason = reason or 'backend_config.type is not tensorrt'
            self.report['engine'] = dict(built=False, skipped=reason)
            logger.info('engine build skipped: %s', reason)
            return
        facts = build_engine(self.onnx_path,
                             osp.join(self.work_dir, 'end2end.engine'),
                             self.deploy_cfg)
        self.report['engine'] = dict(built=True, **facts)

    def write_report(self) -> None:
        write_report(self.work_dir, self.report)

    # ----------------------------------------------------------- extras
    def _check_static_shape(self, shape: List[int]) -> None:
        """A static export must have the shape the engine is built for."""
        dynamic = (self.deploy_cfg.onnx_config.get('dynamic_axes')
                   or {}).get('input')
        for name, spec in input_shapes(self.deploy_cfg).items():
            if not dynamic and list(spec['opt_shape']) != shape:
                raise ValueError(
                    f'backend_config.model_inputs gives {name} the shape '
                    f"{list(spec['opt_shape'])} but the static ONNX input is "
                    f'{shape}; make onnx_config.input_shape ([W, H]) and '
                    'model_inputs agree, or add dynamic_axes')

    def _export_layers(self) -> List[str]:
        from .layers import ExportConv2d, ExportLinear
        unused = set(self.report['deploy']['not_deployed'])
        names = [n.split('.', 1)[1] for n, m in
                 self.deploy_module.named_modules()
                 if isinstance(m, (ExportLinear, ExportConv2d))]
        return [n for n in names if n not in unused]

    def save_outputs(self) -> str:
        """``--show``: save both outputs to ``outputs.npz``."""
        path = osp.join(self.work_dir, 'outputs.npz')
        arrays = {f'{k}_{i}': v for k, outs in self.outputs.items()
                  for i, v in enumerate(outs)}
        np.savez(path, **arrays)
        return path
