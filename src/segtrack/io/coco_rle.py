"""COCO run-length encoding (RLE) of binary masks, pure numpy, byte-identical to pycocotools.

Matches the official COCO API (``pycocotools.mask`` / ``maskApi.c``: ``rleEncode``,
``rleToString``, ``rleFrString``, ``rleDecode``): the mask is read in column-major (Fortran)
order, ``counts`` alternate runs of 0s and 1s starting with a (possibly empty) run of 0s, and
the compressed string stores each count - from the fourth on as the difference to the count two
before - as a little-endian base-32 varint with a sign bit, six bits per character offset by 48
(``'0'``..``'o'``). ``encode`` returns ``{"size": [h, w], "counts": str}`` (pycocotools returns
``bytes``; ``decode`` accepts either, and also the uncompressed ``counts`` list form).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from segtrack.errors import InputError

__all__ = [
    "encode",
    "decode",
    "area",
    "to_bbox",
    "mask_to_counts",
    "counts_to_mask",
    "counts_to_string",
    "string_to_counts",
]


def mask_to_counts(mask: np.ndarray) -> list[int]:
    """Uncompressed COCO counts of a 2-D mask (column-major runs, first run = zeros)."""
    m = np.asarray(mask)
    if m.ndim != 2:
        raise InputError(f"RLE mask must be 2-D, got shape {m.shape}")
    flat = (m != 0).T.ravel()  # column-major order
    n = flat.size
    if n == 0:
        return [0]
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], change, [n]))
    runs = np.diff(bounds).tolist()
    if flat[0]:
        runs.insert(0, 0)
    return [int(r) for r in runs]


def counts_to_mask(counts: Sequence[int], size: Sequence[int]) -> np.ndarray:
    """Bool ``(h, w)`` mask from uncompressed counts (InputError if they do not sum to h*w)."""
    h, w = int(size[0]), int(size[1])
    c = np.asarray(counts, dtype=np.int64)
    if c.ndim != 1 or (c < 0).any():
        raise InputError("RLE counts must be a flat list of non-negative integers")
    if int(c.sum()) != h * w:
        raise InputError(f"RLE counts sum to {int(c.sum())}, expected h*w = {h * w}")
    values = np.zeros(c.size, dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, c)
    return flat.reshape(w, h).T.copy()


def counts_to_string(counts: Sequence[int]) -> str:
    """Compressed COCO string of uncompressed counts (``rleToString``)."""
    out: list[str] = []
    cnts = [int(v) for v in counts]
    for i, v in enumerate(cnts):
        x = v - cnts[i - 2] if i > 2 else v
        more = True
        while more:
            c = x & 0x1F
            x >>= 5  # arithmetic shift, as on the C long
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def string_to_counts(s: str | bytes) -> list[int]:
    """Uncompressed counts of a compressed COCO string (``rleFrString``)."""
    if isinstance(s, (bytes, bytearray)):
        s = s.decode("ascii", errors="replace")
    counts: list[int] = []
    p, n = 0, len(s)
    while p < n:
        x, k, more = 0, 0, True
        while more:
            if p >= n:
                raise InputError("RLE string is truncated (last count never ends)")
            c = ord(s[p]) - 48
            if not 0 <= c < 64:
                raise InputError(f"RLE string has invalid character {s[p]!r} at {p}")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def encode(mask: np.ndarray) -> dict[str, Any]:
    """``{"size": [h, w], "counts": str}`` of a 2-D mask (non-zero = foreground)."""
    m = np.asarray(mask)
    if m.ndim != 2:
        raise InputError(f"RLE mask must be 2-D, got shape {m.shape}")
    return {"size": [int(m.shape[0]), int(m.shape[1])], "counts": counts_to_string(
        mask_to_counts(m))}


def _size_of(rle: Mapping[str, Any]) -> tuple[int, int]:
    if not isinstance(rle, Mapping) or "size" not in rle or "counts" not in rle:
        raise InputError("RLE must be a mapping with 'size' and 'counts'")
    size = rle["size"]
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise InputError(f"RLE size must be [height, width], got {size!r}") from None
    if h < 0 or w < 0:
        raise InputError(f"RLE size must be non-negative, got {size!r}")
    return h, w


def _counts_of(rle: Mapping[str, Any]) -> list[int]:
    counts = rle["counts"]
    if isinstance(counts, (str, bytes, bytearray)):
        return string_to_counts(counts)
    try:
        return [int(v) for v in counts]
    except (TypeError, ValueError):
        raise InputError("RLE counts must be a string or a list of integers") from None


def decode(rle: Mapping[str, Any]) -> np.ndarray:
    """Bool ``(h, w)`` mask of a compressed (str/bytes) or uncompressed (list) COCO RLE."""
    return counts_to_mask(_counts_of(rle), _size_of(rle))


def area(rle: Mapping[str, Any]) -> int:
    """Number of foreground pixels (sum of the odd runs)."""
    _size_of(rle)
    return int(sum(_counts_of(rle)[1::2]))


def to_bbox(rle: Mapping[str, Any]) -> tuple[float, float, float, float]:
    """Min-max ``(x, y, w, h)`` box of the mask, ``(0, 0, 0, 0)`` when empty (as ``toBbox``)."""
    m = decode(rle)
    rows = np.flatnonzero(m.any(axis=1))
    cols = np.flatnonzero(m.any(axis=0))
    if rows.size == 0:
        return 0.0, 0.0, 0.0, 0.0
    return (float(cols[0]), float(rows[0]), float(cols[-1] - cols[0] + 1),
            float(rows[-1] - rows[0] + 1))
