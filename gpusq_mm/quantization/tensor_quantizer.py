"""A standalone per-tensor fake quantizer for activations that are not the
input of a Linear/Conv (the operands of the attention matmuls)."""
from typing import Iterable

import torch
from torch import Tensor, nn

from .calibrators import record_range
from .fake_quant import fake_quantize


class TensorQuantizer(nn.Module):
    """Fake-quantizes a tensor with one calibrated range ``amax``.

    States as in :mod:`.quant_layers`: ``'off'`` (identity), ``'calib'``
    (identity, records the running max of |x| and, for the sample-based
    calibrators, a histogram of every value) and ``'quant'``.

    Args:
        num_bits (int): Bit width. Defaults to 8.
    """

    def __init__(self, num_bits: int = 8) -> None:
        super().__init__()
        self.register_buffer('amax', torch.zeros(()))
        self.num_bits = num_bits
        self.quant_state = 'off'
        self.calib_hist = None
        self.calib_calls = 0

    def forward(self, x: Tensor) -> Tensor:
        if self.quant_state == 'calib':
            self.calib_calls += 1
            record_range(self.amax, self.calib_hist, x)
            return x
        if self.quant_state == 'quant':
            return fake_quantize(x, self.amax, self.num_bits)
        return x

    def extra_repr(self) -> str:
        return f'num_bits={self.num_bits}, state={self.quant_state}'


def all_off(quantizers: Iterable[nn.Module]) -> bool:
    """Whether every quantizer is off (modules without a state, such as
    the deploy step's Q/DQ replacements, count as on)."""
    return all(getattr(q, 'quant_state', 'quant') == 'off'
               for q in quantizers)
