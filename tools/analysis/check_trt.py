"""TensorRT check of the demo's deploy outputs, for the first GPU machine.

For every task the demo deployed (``<demo-dir>/<task>/deploy_fp32`` and
``deploy_int8``), builds two strongly typed engines with the project's
builder (:func:`gpusq_mm.deploy.tensorrt.build.build_engine`, sparse
weights on):

- dense FP16: the dense FP32 export with its float math cast to FP16
  (:func:`gpusq_mm.deploy.tensorrt.fp16.convert_to_fp16`);
- GPUSQ INT8 sparse: the Q/DQ export with 2:4 weights (FP16 outside the
  quantized regions, as the TensorRT deploy configs write it).

Then prints, per engine, the layers TensorRT reports as sparse-eligible and
those that picked sparse tactics, each layer's precision and tactic, and the
median GPU latency of both engines with their ratio; writes
``<out>/check_trt.json``. Needs TensorRT >= 10 and an Ampere-or-newer GPU;
exits with status 2 and a message naming what is missing otherwise::

    python tools/analysis/check_trt.py [--demo-dir work_dirs/demo]
        [--tasks cls seg det] [--out work_dirs/check_trt] [--iters 200]
"""
import argparse
import json
import os
import os.path as osp
import sys
from typing import Dict, List

MIN_TRT_MAJOR = 10
MIN_CAPABILITY = (8, 0)  # Ampere: sparse tensor cores


def unavailable_reason() -> str:
    """Why this machine cannot run the check ('' if it can)."""
    try:
        import tensorrt as trt
    except ImportError:
        return ('TensorRT is not installed (pip install tensorrt, version '
                f'>= {MIN_TRT_MAJOR}, on a machine with an NVIDIA GPU)')
    major = int(trt.__version__.split('.')[0])
    if major < MIN_TRT_MAJOR:
        return (f'TensorRT {trt.__version__} is too old: strongly typed '
                f'networks need >= {MIN_TRT_MAJOR}')
    import torch
    if not torch.cuda.is_available():
        return 'no CUDA GPU is visible (torch.cuda.is_available() is False)'
    capability = torch.cuda.get_device_capability()
    if capability < MIN_CAPABILITY:
        return (f'the GPU ({torch.cuda.get_device_name()}, sm_'
                f'{capability[0]}{capability[1]}) has no sparse tensor '
                'cores; 2:4 kernels need Ampere (sm_80) or newer')
    return ''


def _engine_config(shape: List[int]):
    from mmengine.config import Config
    spec = dict(min_shape=shape, opt_shape=shape, max_shape=shape)
    return Config(dict(onnx_config=dict(input_shape=None), backend_config=dict(
        model_inputs=[dict(input_shapes=dict(input=spec))])))


# substrings of the inspector's "Format/Datatype" and what they mean
_PRECISIONS = (('Int8', 'INT8'), ('FP16', 'FP16'), ('Half', 'FP16'),
               ('FP32', 'FP32'), ('Float', 'FP32'), ('Int32', 'INT32'),
               ('Int64', 'INT64'), ('Bool', 'BOOL'))


def layer_rows(info: dict) -> List[dict]:
    """Per-layer name, type, output precision, tactic and sparse flag from
    the engine inspector's JSON."""
    rows = []
    for layer in info.get('Layers', []):
        if not isinstance(layer, dict):
            continue
        outputs = json.dumps(layer.get('Outputs', ''))
        precision = next((name for key, name in _PRECISIONS
                          if key in outputs), '?')
        tactic = str(layer.get('TacticName', ''))
        rows.append(dict(name=layer.get('Name', ''),
                         type=layer.get('LayerType', ''),
                         precision=precision, tactic=tactic,
                         sparse='sparse' in tactic.lower()))
    return rows


def time_engine(path: str, shape: List[int], iters: int) -> float:
    """Median GPU milliseconds of one inference of the engine at
    ``path`` (CUDA events, after 20 warm-up runs)."""
    import tensorrt as trt
    import torch

    class _Alloc(trt.IOutputAllocator):  # data-dependent output shapes

        def __init__(self) -> None:
            trt.IOutputAllocator.__init__(self)
            self.buffers: Dict[str, torch.Tensor] = {}

        def reallocate_output(self, name, memory, size, alignment):
            self.buffers[name] = torch.empty(max(size, 1), dtype=torch.uint8,
                                             device='cuda')
            return self.buffers[name].data_ptr()

        def notify_shape(self, name, shape) -> None:
            pass

    logger = trt.Logger(trt.Logger.ERROR)
    with open(path, 'rb') as f:
        engine = trt.Runtime(logger).deserialize_cuda_engine(f.read())
    ctx = engine.create_execution_context()
    alloc, keep = _Alloc(), []
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    for name in names:
        if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
            ctx.set_input_shape(name, shape)
            x = torch.randn(shape, device='cuda')
            keep.append(x)
            ctx.set_tensor_address(name, x.data_ptr())
    for name in names:
        if engine.get_tensor_mode(name) != trt.TensorIOMode.OUTPUT:
            continue
        dims = list(ctx.get_tensor_shape(name))
        if min(dims, default=1) < 0:
            ctx.set_output_allocator(name, alloc)
            continue
        numel = 1
        for d in dims:
            numel *= d
        out = torch.empty(max(numel, 1) * 8, dtype=torch.uint8,
                          device='cuda')
        keep.append(out)
        ctx.set_tensor_address(name, out.data_ptr())
    stream = torch.cuda.Stream()
    times = []
    for i in range(iters + 20):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record(stream)
        ctx.execute_async_v3(stream.cuda_stream)
        end.record(stream)
        end.synchronize()
        if i >= 20:
            times.append(start.elapsed_time(end))
    return sorted(times)[len(times) // 2]


def check_task(task_dir: str, out_dir: str, iters: int) -> dict:
    """Build and time the two engines of one demo task."""
    import onnx
    from onnx import version_converter

    from gpusq_mm.deploy.tensorrt.build import build_engine
    from gpusq_mm.deploy.tensorrt.fp16 import FP16_MIN_OPSET, convert_to_fp16
    with open(osp.join(task_dir, 'deploy_int8', 'report.json')) as f:
        shape = json.load(f)['input_shape']
    cfg = _engine_config(shape)
    os.makedirs(out_dir, exist_ok=True)
    result = dict(input_shape=shape)
    for label, src in (('dense_fp16', 'deploy_fp32'),
                       ('gpusq_int8_sparse', 'deploy_int8')):
        model = onnx.load(osp.join(task_dir, src, 'end2end.onnx'))
        if max(o.version for o in model.opset_import
               if o.domain in ('', 'ai.onnx')) < FP16_MIN_OPSET:
            # FP16 scales of the Q/DQ pairs need opset 19
            model = version_converter.convert_version(model, FP16_MIN_OPSET)
        model = convert_to_fp16(model)  # FP16 outside the int8 regions
        graph = osp.join(out_dir, f'{label}.onnx')
        onnx.save(model, graph)
        engine = osp.join(out_dir, f'{label}.engine')
        info_path = osp.join(out_dir, f'{label}.layers.json')
        facts = build_engine(graph, engine, cfg, layer_info_path=info_path)
        with open(info_path) as f:
            info = json.load(f)
        result[label] = dict(facts, layers=layer_rows(info),
                             median_ms=time_engine(engine, shape, iters))
    result['speedup'] = (result['dense_fp16']['median_ms'] /
                         result['gpusq_int8_sparse']['median_ms'])
    return result


def print_task(task: str, result: dict) -> None:
    for label in ('dense_fp16', 'gpusq_int8_sparse'):
        r = result[label]
        sparsity = r.get('sparsity', {})
        print(f'\n[{task}] {label}: {r["median_ms"]:.3f} ms, '
              f'{len(r["int8_layers"])} INT8 layers, sparse-eligible '
              f'{len(sparsity.get("eligible", []))}, picked sparse '
              f'{len(sparsity.get("picked", []))}, sparse tactics '
              f'{len(r["sparse_tactic_layers"])}')
        for name in sparsity.get('eligible', []):
            picked = name in sparsity.get('picked', [])
            mark = '  -> sparse kernel' if picked else ''
            print(f'  eligible: {name}{mark}')
        print('  | layer | type | precision | sparse | tactic |')
        print('  |---|---|---|---|---|')
        for row in r['layers']:
            print(f'  | {row["name"][:60]} | {row["type"]} | '
                  f'{row["precision"]} | {"yes" if row["sparse"] else ""} | '
                  f'{row["tactic"][:50]} |')
    print(f'[{task}] dense FP16 / GPUSQ INT8 sparse latency: '
          f'{result["speedup"]:.2f}x')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--demo-dir', default='work_dirs/demo')
    parser.add_argument('--tasks', nargs='*', default=['cls', 'seg', 'det'])
    parser.add_argument('--out', default='work_dirs/check_trt')
    parser.add_argument('--iters', type=int, default=200)
    args = parser.parse_args()
    reason = unavailable_reason()
    if reason:
        print(f'check_trt: cannot run here: {reason}', file=sys.stderr)
        return 2
    missing = [t for t in args.tasks if not osp.isfile(
        osp.join(args.demo_dir, t, 'deploy_int8', 'end2end.onnx'))]
    if missing:
        print(f'check_trt: no deploy outputs for {missing} under '
              f'{args.demo_dir}; run `make demo` (or DEMO_TASKS=...) first',
              file=sys.stderr)
        return 2
    results = {}
    for task in args.tasks:
        results[task] = check_task(osp.join(args.demo_dir, task),
                                   osp.join(args.out, task), args.iters)
        print_task(task, results[task])
    with open(osp.join(args.out, 'check_trt.json'), 'w') as f:
        json.dump(results, f, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
