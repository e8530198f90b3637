"""A packed on-disk format for INT8 and INT4 2:4 weights (the
sparse-tensor-core layout): per group of 4 input channels, the 2 kept values
plus two 2-bit positions (one 4-bit nibble per group), and one float32
scale per output channel. INT8: 5 bits per weight plus the scales, 6.4x
smaller than FP32 before the scales. INT4 (W4A8, values in [-7, 7]): the
two kept values share one byte, 3 bits per weight, 10.67x before the
scales.

File layout (little endian)::

    b'GSQ24\\x00' | uint32 header length | JSON header | blobs

The header lists, per tensor, its name, shape and the byte offset/length of
its ``values`` (int8, ``(N, C/2)``; for ``bits: 4`` two's-complement
nibbles, ``(N, C/4)`` bytes, even value in the low nibble), ``meta``
(uint8, ``(N, C/8)``, even group in the low nibble, nibble =
``i0 | i1 << 2`` with ``i0 < i1``) and
``scales`` (float32, ``(K,)``) blobs, where ``(N, C)`` is the weight's 2:4
row view (:func:`~.pattern.to_groups_view`), and its ``bits`` (8 when
absent: files written before 4-bit packing).
"""
import json
import struct
from typing import Dict, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from .pattern import from_groups_view, to_groups_view

MAGIC = b'GSQ24\x00'
QMAX = 127


def quantize_weight(weight: Tensor, amax: Optional[Tensor] = None,
                    bits: int = 8) -> Tuple[Tensor, Tensor]:
    """Symmetric per-output-channel quantization, as the fake quantizer
    rounds.

    Args:
        weight (Tensor): Linear/Conv weight, ``(K, ...)``.
        amax (Tensor, optional): Per-channel range broadcastable to
            ``weight``; defaults to max ``|w|`` of each output channel.
        bits (int): 8 (values in [-127, 127]) or 4 ([-7, 7]). Defaults
            to 8.

    Returns:
        tuple: int8 tensor of ``weight.shape`` and float32 scales ``(K,)``.
    """
    qmax = _qmax(bits)
    w = weight.detach().float()
    if amax is None:
        amax = w.abs().amax(dim=tuple(range(1, w.dim())), keepdim=True)
    amax = amax.float().reshape(-1, *([1] * (w.dim() - 1)))
    scale = (amax / qmax).clamp_min(torch.finfo(torch.float32).tiny)
    q = torch.clamp(torch.round(w / scale), -qmax, qmax).to(torch.int8)
    return q, scale.reshape(-1)


def _qmax(bits: int) -> int:
    if bits not in (4, 8):
        raise ValueError(f'packed weights are 8 or 4 bits, got {bits!r}')
    return 2**(bits - 1) - 1


def pack_nibbles(values: np.ndarray) -> np.ndarray:
    """Two int4 values (in [-8, 7]) per byte, even index in the low
    nibble: ``(N, M)`` int8 -> ``(N, M/2)`` uint8."""
    if values.shape[-1] % 2:
        raise ValueError('4-bit packing needs an even number of values')
    if values.size and (values.min() < -8 or values.max() > 7):
        raise ValueError('values do not fit in 4 bits ([-8, 7]); quantize '
                         'with bits=4')
    nib = values.astype(np.uint8) & 0xF
    return (nib[..., 0::2] | (nib[..., 1::2] << 4)).astype(np.uint8)


def unpack_nibbles(packed: np.ndarray) -> np.ndarray:
    """Inverse of :func:`pack_nibbles` (sign-extended int8)."""
    low = (packed & 0xF).astype(np.int8)
    high = (packed >> 4).astype(np.int8)
    out = np.stack([low, high], -1).reshape(*packed.shape[:-1], -1)
    return ((out ^ 8) - 8).astype(np.int8)


def dequantize(q: Tensor, scales: Tensor) -> Tensor:
    """``q * scale`` per output channel, in float32."""
    return q.float() * scales.reshape(-1, *([1] * (q.dim() - 1)))


def pack_rows(q: Tensor) -> Tuple[np.ndarray, np.ndarray]:
    """Pack int8 2:4 rows ``(N, C)`` into values ``(N, C/2)`` and metadata
    ``(N, C/8)``.

    Raises:
        ValueError: ``C`` is not a multiple of 8 or a group of 4 holds more
            than 2 non-zeros.
    """
    n, c = q.shape
    if c % 8:
        raise ValueError(f'packing needs the input-channel dimension to be '
                         f'a multiple of 8 (two groups per metadata byte), '
                         f'got {c}')
    groups = q.reshape(-1, 4)
    nonzero = groups != 0
    if int(nonzero.sum(1).max()) > 2:
        raise ValueError('the weight is not 2:4 sparse: prune it first '
                         '(gpusq_mm.sparsity.magnitude_mask)')
    # non-zeros first, then zeros, each by position: the first two are kept
    order = torch.argsort((~nonzero).to(torch.int8) * 4
                          + torch.arange(4, dtype=torch.int8), dim=1)
    idx = order[:, :2].sort(dim=1).values
    values = groups.gather(1, idx).reshape(n, c // 2)
    nibble = (idx[:, 0] | (idx[:, 1] << 2)).to(torch.uint8).reshape(-1, 2)
    meta = nibble[:, 0] | (nibble[:, 1] << 4)
    return values.numpy(), meta.reshape(n, c // 8).numpy()


def unpack_rows(values: np.ndarray, meta: np.ndarray) -> Tensor:
    """Inverse of :func:`pack_rows`: dense int8 rows ``(N, C)``."""
    n = values.shape[0]
    meta = torch.from_numpy(meta.reshape(-1).astype(np.int64))
    nibble = torch.stack([meta & 0xF, meta >> 4], 1).reshape(-1)
    idx = torch.stack([nibble & 0x3, nibble >> 2], 1)
    dense = torch.zeros(idx.shape[0], 4, dtype=torch.int8)
    dense.scatter_(1, idx, torch.from_numpy(values).reshape(-1, 2))
    return dense.reshape(n, -1)


def save_packed(path: str, tensors: Dict[str, Tuple[Tensor, Tensor]],
                bits: int = 8) -> int:
    """Write ``{name: (int8 2:4 weight, float32 scales)}``; return bytes.

    Args:
        path (str): Output file.
        tensors (dict): Quantized weights (:func:`quantize_weight` with the
            same ``bits``) and their scales.
        bits (int): 8, or 4 to store two values per byte. Defaults to 8.

    Raises:
        ValueError: A weight is not 2:4 or does not fit in ``bits``.
    """
    qmax = _qmax(bits)
    header, blobs, offset = [], [], 0
    for name, (q, scales) in tensors.items():
        if q.numel() and int(q.abs().max()) > qmax:
            raise ValueError(f'{name}: values exceed the {bits}-bit range '
                             f'[-{qmax}, {qmax}]; quantize with bits={bits}')
        values, meta = pack_rows(to_groups_view(q))
        if bits == 4:
            values = pack_nibbles(values)
        entry = dict(name=name, shape=list(q.shape), bits=bits)
        for key, arr in (('values', values), ('meta', meta),
                         ('scales', scales.float().numpy())):
            raw = np.ascontiguousarray(arr).tobytes()
            entry[key] = [offset, len(raw), list(arr.shape)]
            blobs.append(raw)
            offset += len(raw)
        header.append(entry)
    head = json.dumps(header).encode()
    with open(path, 'wb') as f:
        f.write(MAGIC + struct.pack('<I', len(head)) + head)
        for raw in blobs:
            f.write(raw)
    return len(MAGIC) + 4 + len(head) + offset


def load_packed(path: str) -> Dict[str, Tuple[Tensor, Tensor]]:
    """Read a file of :func:`save_packed`: ``{name: (int8, scales)}``."""
    with open(path, 'rb') as f:
        data = f.read()
    if not data.startswith(MAGIC):
        raise ValueError(f'{path} is not a packed 2:4 file (bad magic)')
    (size, ) = struct.unpack_from('<I', data, len(MAGIC))
    start = len(MAGIC) + 4
    header = json.loads(data[start:start + size])
    base = start + size

    def blob(spec, dtype):
        off, length, shape = spec
        return np.frombuffer(data, dtype, length // np.dtype(dtype).itemsize,
                             base + off).reshape(shape)

    out = {}
    for e in header:
        values = blob(e['values'], np.int8)
        if e.get('bits', 8) == 4:
            values = unpack_nibbles(blob(e['values'], np.uint8))
        rows = unpack_rows(values, blob(e['meta'], np.uint8))
        q = from_groups_view(rows, tuple(e['shape']))
        out[e['name']] = (q, torch.from_numpy(blob(e['scales'],
                                                   np.float32).copy()))
    return out
