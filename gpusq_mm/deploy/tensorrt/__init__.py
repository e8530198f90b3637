"""TensorRT backend: the ``trtexec`` build script and the optional engine
build (:mod:`.build`), and the FP16 graph for strongly typed networks
(:mod:`.fp16`)."""
from .build import build_engine, write_build_script
from .fp16 import convert_to_fp16

__all__ = ['build_engine', 'convert_to_fp16', 'write_build_script']
