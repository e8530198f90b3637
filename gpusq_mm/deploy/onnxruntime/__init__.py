"""ONNX Runtime backend: the lowering of the Q/DQ export for its CPU
provider (:mod:`.lowering` with the :mod:`.int8`, :mod:`.layout` and
:mod:`.pointwise` passes over :mod:`.graph` helpers) and ONNX Runtime's
own ``quantize_static`` as the peer the benchmarks compare with
(:mod:`.peers`)."""
from .lowering import (LOWERED_MAX_REL_DIFF, LOWERED_TAG, lower_file,
                       lower_for_ort, lowering_counts, max_rel_diff)

__all__ = ['LOWERED_MAX_REL_DIFF', 'LOWERED_TAG', 'lower_file',
           'lower_for_ort', 'lowering_counts', 'max_rel_diff']
