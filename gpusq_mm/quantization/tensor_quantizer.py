"""The quantizer: one module that owns a range and the off/calib/quant
switch.

Every place the model is fake-quantized holds a :class:`TensorQuantizer`:
a Linear/Conv2d's input and weight (``input_quantizer``,
``weight_quantizer``, :mod:`.quant_layers`), the operands of the attention
matmuls (``matmul_quantizers``, :mod:`.attention`) and the input projections
of ``nn.MultiheadAttention`` (:mod:`.attention_mha`). Calibration, deploy
and the hooks drive quantizers only through their public methods:

- :meth:`~TensorQuantizer.enable_calibration`: record the range of what
  passes (the running max of |x| and, for the histogram calibrators, a
  :class:`~.histogram.RunningHistogram`), identity output;
- :meth:`~TensorQuantizer.load_calib_amax`: set the range (from a
  calibrator, or from the weights for a weight quantizer) and drop the
  statistics;
- :meth:`~TensorQuantizer.enable_quant`: fake-quantize with that range
  (a quantizer never calibrated, range 0, stays off);
- :meth:`~TensorQuantizer.disable`: identity.
"""
from typing import Iterable, Optional

import torch
from torch import Tensor, nn

from .fake_quant import fake_quantize, per_channel_amax
from .histogram import RunningHistogram

STATES = ('off', 'calib', 'quant')


class TensorQuantizer(nn.Module):
    """Symmetric fake quantizer with one calibrated range ``amax``.

    Args:
        num_bits (int): Bit width. Defaults to 8.
        channels (int, optional): Per-output-channel ranges of a weight
            with this many output channels (the range broadcasts along
            dimension 0); None for one range per tensor. Defaults to None.
        channel_dims (int): Dimensions of the weight (for the shape of a
            per-channel range). Defaults to 2.

    Attributes:
        amax (Tensor): The range (a persistent buffer, or a parameter once
            the scales are learnable); the value mapped to the largest
            integer.
        quant_state (str): One of ``STATES`` (read-only; use the methods).
        calib_calls (int): Forward calls seen in the last calibration.
        calib_hist (RunningHistogram | None): The histogram of the running
            calibration.
    """

    def __init__(self, num_bits: int = 8, channels: Optional[int] = None,
                 channel_dims: int = 2) -> None:
        super().__init__()
        shape = () if channels is None else \
            (channels, ) + (1, ) * (channel_dims - 1)
        self.register_buffer('amax', torch.zeros(shape))
        self.num_bits = num_bits
        self._state = 'off'
        self.calib_hist: Optional[RunningHistogram] = None
        self.calib_calls = 0

    @property
    def quant_state(self) -> str:
        """``'off'``, ``'calib'`` or ``'quant'``."""
        return self._state

    @property
    def per_channel(self) -> bool:
        """Whether the range is per output channel (a weight quantizer)."""
        return self.amax.dim() > 0

    @property
    def is_calibrated(self) -> bool:
        """Whether the range is set (every channel > 0 counts as set when
        any is: a channel of zeros keeps range 0)."""
        return bool((self.amax.detach() > 0).any())

    def enable_calibration(self, bins: Optional[int] = None) -> None:
        """Reset the range and record what passes from now on.

        Args:
            bins (int, optional): Keep a histogram of |x| with this many
                bins (the histogram calibrators); None keeps only the
                running max. Per-tensor quantizers only. Defaults to None.
        """
        if bins is not None and self.per_channel:
            raise ValueError('a per-channel quantizer keeps no histogram')
        with torch.no_grad():
            self.amax.zero_()
        self.calib_calls = 0
        self.calib_hist = None if bins is None else RunningHistogram(bins)
        self._state = 'calib'

    @torch.no_grad()
    def load_calib_amax(self, amax: Optional[Tensor] = None) -> None:
        """Set the range, drop the calibration statistics and turn the
        quantizer off (:meth:`enable_quant` switches it on).

        Args:
            amax (Tensor, optional): The range (broadcast to the range's
                shape); None keeps the recorded running max.
        """
        if amax is not None:
            self.amax.copy_(torch.as_tensor(amax).to(self.amax).expand_as(
                self.amax))
        self.calib_hist = None
        self._state = 'off'

    def enable_quant(self) -> bool:
        """Fake-quantize from now on if the range is set; a quantizer that
        calibration never reached stays off.

        Returns:
            bool: Whether the quantizer is on.
        """
        self._state = 'quant' if self.is_calibrated else 'off'
        return self._state == 'quant'

    def disable(self) -> None:
        """Pass inputs through unchanged (statistics are kept)."""
        self._state = 'off'

    def forward(self, x: Tensor) -> Tensor:
        if self._state == 'calib':
            self._record(x)
            return x
        if self._state == 'quant':
            return fake_quantize(x, self.amax, self.num_bits)
        return x

    @torch.no_grad()
    def _record(self, x: Tensor) -> None:
        self.calib_calls += 1
        seen = per_channel_amax(x) if self.per_channel else \
            x.detach().abs().amax()
        self.amax.copy_(torch.maximum(self.amax, seen.float()))
        if self.calib_hist is not None:
            self.calib_hist.update(x)

    def extra_repr(self) -> str:
        axis = ', per_channel' if self.per_channel else ''
        return f'num_bits={self.num_bits}{axis}, state={self._state}'


def all_off(quantizers: Iterable[nn.Module]) -> bool:
    """Whether every quantizer is off (modules without a state, such as
    the deploy step's Q/DQ replacements, count as on)."""
    return all(getattr(q, 'quant_state', 'quant') == 'off'
               for q in quantizers)
