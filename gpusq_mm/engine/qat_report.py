"""The tables QATHook logs: the plan before training, the summary after
calibration."""
from typing import Dict

OPERANDS = ('q', 'k', 'p', 'v')


def plan_table(decisions: Dict[str, str], scope: str) -> str:
    """Which layers phase Q will quantize, and why the others not."""
    quantized = sum(1 for r in decisions.values() if not r)
    lines = [f"QATHook plan (scope '{scope}'): {quantized} of "
             f'{len(decisions)} Linear/Conv2d layers to int8 when phase Q '
             'starts']
    lines += [f'  {n:<60} {"int8" if not r else "float: " + r}'
              for n, r in decisions.items()]
    return '\n'.join(lines)


def summary_table(header: str, decisions: Dict[str, str],
                  attention: Dict[str, str], amax: Dict[str, float],
                  unseen: Dict[str, str]) -> str:
    """Every layer after calibration: its input range, or why it is float
    (``unseen``: ranges calibration never reached, never shown as
    quantized)."""
    decisions = {n: r or unseen.get(n, '') for n, r in decisions.items()}
    attention = {n: r or next((unseen[o] for o in _operands(n)
                               if o in unseen), '')
                 for n, r in attention.items()}
    lines = [f'QATHook: {sum(1 for r in decisions.values() if not r)} '
             f'layers and {sum(1 for r in attention.values() if not r)} '
             f'attention modules fake-quantized ({header})']
    for name, reason in decisions.items():
        lines.append(f'  {name:<60} {_status(name, reason, amax)}')
    for name, reason in attention.items():
        ops = _operands(name)
        if reason:
            lines.append(f'  {name:<60} matmuls float: {reason}')
            continue
        ranges = ' '.join(f'{op}={amax[o]:.4g}' for op, o in zip(OPERANDS,
                                                                  ops))
        lines.append(f'  {name:<60} matmul amax {ranges}')
    return '\n'.join(lines)


def _operands(name: str) -> list:
    return [f'{name}.matmul_quantizers.{op}' for op in OPERANDS]


def _status(name: str, reason: str, amax: Dict[str, float]) -> str:
    """One layer's line: why it is float, its input range, or the ranges
    of the quantizers it holds (e.g. the input projections of an
    ``nn.MultiheadAttention``)."""
    if reason:
        return f'float: {reason}'
    if name in amax:
        return f'input amax={amax[name]:.4g}'
    inner = ' '.join(f'{k[len(name) + 1:]}={v:.4g}'
                     for k, v in amax.items() if k.startswith(f'{name}.'))
    return f'amax {inner}'
