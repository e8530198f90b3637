"""The deploy pipeline's OpenVINO step: IR conversion and its facts."""
import os.path as osp
from typing import Tuple

from mmengine.config import Config

from .convert import convert_to_ir
from .runtime import OVRunner, compile_ir, execution_precisions


def openvino_options(deploy_cfg: Config) -> dict:
    """``backend_config.common_config`` of an ``openvino`` deploy config:
    ``compress_to_fp16`` (default False), ``inference_precision`` (default
    'f32') and ``unsigned_activations`` (default False, see
    :mod:`.graph`)."""
    common = dict((deploy_cfg.get('backend_config') or {}).get(
        'common_config') or {})
    return dict(compress_to_fp16=bool(common.get('compress_to_fp16', False)),
                inference_precision=common.get('inference_precision', 'f32'),
                unsigned_activations=bool(common.get('unsigned_activations',
                                                     False)))


def convert_for_openvino(onnx_path: str, deploy_cfg: Config
                         ) -> Tuple[dict, OVRunner]:
    """Write ``end2end.xml``/``.bin`` beside ``onnx_path`` and compile it.

    Returns:
        tuple: The report entry (see :func:`.convert.convert_to_ir`, plus
        ``inference_precision`` and ``execution``, see
        :func:`.runtime.execution_precisions`) and a runner of the
        compiled IR for the parity check.
    """
    opts = openvino_options(deploy_cfg)
    xml = osp.splitext(onnx_path)[0] + '.xml'
    facts = convert_to_ir(onnx_path, xml, opts['compress_to_fp16'],
                          opts['unsigned_activations'])
    compiled = compile_ir(xml, precision=opts['inference_precision'])
    facts.update(inference_precision=opts['inference_precision'],
                 execution=execution_precisions(compiled))
    return facts, OVRunner(compiled)
