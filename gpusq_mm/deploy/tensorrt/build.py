"""TensorRT: the ``trtexec`` script for any TensorRT host, and an optional
strongly typed, sparse-weights engine build here.

Precision comes only from the graph (Q/DQ and FP16 tensors): the script
never passes ``--int8``/``--fp16`` (removed with weak typing in TensorRT
11) and asks for ``--sparsity=enable`` (never ``force``, which rewrites
weights).
"""
import json
import os
import os.path as osp
import shlex
from typing import Dict, List, Optional

from mmengine.config import Config

INPUT_NAME = 'input'


def _shape(dims) -> str:
    return 'x'.join(str(int(d)) for d in dims)


def input_shapes(deploy_cfg: Config) -> Dict[str, Dict[str, list]]:
    """``{input: {min_shape, opt_shape, max_shape}}`` from
    ``backend_config.model_inputs`` (mmdeploy's layout), or the static
    ``onnx_config.input_shape`` ``[W, H]`` with batch 1."""
    backend = deploy_cfg.get('backend_config', {})
    inputs = backend.get('model_inputs') or []
    if inputs:
        return {name: dict(spec)
                for name, spec in inputs[0]['input_shapes'].items()}
    shape = deploy_cfg.onnx_config.get('input_shape')
    if shape is None:
        return {}
    static = [1, 3, int(shape[1]), int(shape[0])]
    return {INPUT_NAME: dict(min_shape=static, opt_shape=static,
                             max_shape=static)}


def trtexec_args(deploy_cfg: Config, onnx_file: str = 'end2end.onnx',
                 engine_file: str = 'end2end.engine') -> List[str]:
    """The trtexec command line (file names relative to the work dir)."""
    common = deploy_cfg.get('backend_config', {}).get('common_config', {})
    args = ['trtexec', f'--onnx={onnx_file}', f'--saveEngine={engine_file}',
            '--stronglyTyped']
    if common.get('sparse_weights', True):
        args.append('--sparsity=enable')
    workspace = common.get('max_workspace_size')
    if workspace:
        args.append(f'--memPoolSize=workspace:{int(workspace) >> 20}M')
    shapes = input_shapes(deploy_cfg)
    if any(s['min_shape'] != s['max_shape'] for s in shapes.values()):
        for flag in ('min', 'opt', 'max'):
            spec = ','.join(f'{n}:{_shape(s[flag + "_shape"])}'
                            for n, s in shapes.items())
            args.append(f'--{flag}Shapes={spec}')
    elif shapes:
        spec = ','.join(f'{n}:{_shape(s["opt_shape"])}'
                        for n, s in shapes.items())
        args.append(f'--shapes={spec}')
    args += ['--timingCacheFile=timing.cache',
             '--exportLayerInfo=layer_info.json',
             '--profilingVerbosity=detailed', '--verbose']
    return args


def write_build_script(deploy_cfg: Config, work_dir: str) -> str:
    """Write ``work_dir/build_engine.sh``; returns its path.

    The script runs from its own directory, keeps the full log
    (``build_engine.log``, where TensorRT names the layers that picked
    sparse implementations) and the per-layer JSON.
    """
    args = trtexec_args(deploy_cfg)
    cmd = ' \\\n    '.join(shlex.quote(a) for a in args)
    what = 'with 2:4 sparse weights' if '--sparsity=enable' in args \
        else 'with dense math'
    text = ('#!/usr/bin/env bash\n'
            f'# Strongly typed TensorRT build {what}.\n'
            '# Precision comes from the Q/DQ and FP16 tensors in the ONNX;\n'
            '# no --int8/--fp16 flags. Run on the target (e.g. Jetson Orin);\n'
            '# gpusq_mm.deploy.tensorrt.build.engine_facts_from_dir(DIR)\n'
            '# then lists the INT8 layers and those that picked sparse\n'
            '# kernels.\n'
            'set -euo pipefail\n'
            'cd "$(dirname "$0")"\n'
            f'{cmd} \\\n    2>&1 | tee build_engine.log\n')
    path = osp.join(work_dir, 'build_engine.sh')
    with open(path, 'w') as f:
        f.write(text)
    os.chmod(path, 0o755)
    return path


def engine_unavailable_reason() -> str:
    """Why no engine can be built here ('' if TensorRT and CUDA are
    present)."""
    import importlib.util
    if importlib.util.find_spec('tensorrt') is None:
        return 'tensorrt is not importable (not installed)'
    import torch
    if not torch.cuda.is_available():
        return 'no CUDA device'
    return ''


def sparse_layers_from_log(lines: List[str]) -> Dict[str, List[str]]:
    """Parse TensorRT's ``(Sparsity)`` log lines.

    Returns:
        dict: ``eligible`` and ``picked`` layer names.
    """
    out: Dict[str, List[str]] = dict(eligible=[], picked=[])
    for line in lines:
        if '(Sparsity)' not in line or ':' not in line:
            continue
        names = [n.strip() for n in line.rsplit(':', 1)[1].split(',')
                 if n.strip()]
        if 'eligible' in line:
            out['eligible'] += names
        elif 'picked sparse' in line:
            out['picked'] += names
    return out


def build_engine(onnx_path: str, engine_path: str,
                 deploy_cfg: Config,
                 layer_info_path: Optional[str] = None) -> Optional[dict]:
    """Build a strongly typed engine with sparse weights (TensorRT >= 10).

    Args:
        onnx_path (str): The Q/DQ ONNX file.
        engine_path (str): Where to write the serialized engine.
        deploy_cfg (Config): Deploy config (input shapes).
        layer_info_path (str, optional): Also write the engine inspector's
            per-layer JSON there (what ``trtexec --exportLayerInfo``
            writes). Defaults to None.

    Returns:
        dict: Engine facts (size, sparse layers eligible/picked, INT8
        layers from the engine inspector), or None if skipped.
    """
    if engine_unavailable_reason():
        return None
    import tensorrt as trt

    class _Log(trt.ILogger):

        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.lines: List[str] = []

        def log(self, severity, msg) -> None:  # noqa: D102
            self.lines.append(msg)

    logger = _Log()
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(onnx_path):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise RuntimeError(f'TensorRT could not parse {onnx_path}: {errors}')
    config = builder.create_builder_config()
    config.set_flag(trt.BuilderFlag.SPARSE_WEIGHTS)
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    shapes = input_shapes(deploy_cfg)
    if any(s['min_shape'] != s['max_shape'] for s in shapes.values()):
        profile = builder.create_optimization_profile()
        for name, s in shapes.items():
            profile.set_shape(name, s['min_shape'], s['opt_shape'],
                              s['max_shape'])
        config.add_optimization_profile(profile)
    blob = builder.build_serialized_network(network, config)
    if blob is None:
        raise RuntimeError('TensorRT failed to build the engine: '
                           + ' | '.join(logger.lines[-5:]))
    with open(engine_path, 'wb') as f:
        f.write(bytes(blob))
    engine = trt.Runtime(logger).deserialize_cuda_engine(blob)
    info = json.loads(engine.create_engine_inspector().get_engine_information(
        trt.LayerInformationFormat.JSON))
    if layer_info_path:
        with open(layer_info_path, 'w') as f:
            json.dump(info, f, indent=1)
    facts = engine_facts(info, logger.lines)
    return dict(size_bytes=osp.getsize(engine_path),
                tensorrt=trt.__version__, **facts)


def engine_facts(layer_info: dict, log_lines: List[str]) -> dict:
    """Summarise TensorRT's per-layer JSON and build log.

    Args:
        layer_info (dict): The engine inspector's JSON (what
            ``trtexec --exportLayerInfo`` writes with detailed profiling).
        log_lines (list[str]): The (verbose) build log.

    Returns:
        dict: ``num_layers``, ``int8_layers`` (layers with an Int8 input or
        output), ``sparse_tactic_layers`` (tactic name mentions sparse) and
        ``sparsity`` (the ``(Sparsity)`` log lines: eligible / picked).
    """
    layers = [lay for lay in layer_info.get('Layers', [])
              if isinstance(lay, dict)]
    int8 = [lay.get('Name', '') for lay in layers
            if 'Int8' in json.dumps([lay.get('Inputs', ''),
                                     lay.get('Outputs', '')])]
    sparse = [lay.get('Name', '') for lay in layers
              if 'sparse' in str(lay.get('TacticName', '')).lower()]
    return dict(num_layers=len(layers), int8_layers=int8,
                sparse_tactic_layers=sparse,
                sparsity=sparse_layers_from_log(log_lines))


def engine_facts_from_dir(work_dir: str) -> dict:
    """:func:`engine_facts` of the files ``build_engine.sh`` leaves in
    ``work_dir`` (``layer_info.json``, ``build_engine.log``), e.g. after
    running it on a Jetson Orin."""
    with open(osp.join(work_dir, 'layer_info.json')) as f:
        info = json.load(f)
    with open(osp.join(work_dir, 'build_engine.log')) as f:
        lines = f.read().splitlines()
    return engine_facts(info, lines)
