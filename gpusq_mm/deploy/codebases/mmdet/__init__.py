"""mmdet codebase of the deploy tool (:class:`MMDetExporter`): end-to-end
detector graphs (:mod:`.models`) from standard ONNX operators
(:mod:`.ops`), what is supported (:mod:`.support`) and detection parity
(:mod:`.compare`)."""
from ..base import UnsupportedModelError
from .exporter import SUPPORTED, TASKS, MMDetExporter

__all__ = ['MMDetExporter', 'SUPPORTED', 'TASKS', 'UnsupportedModelError']
