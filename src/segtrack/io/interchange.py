"""Result interchange: COCO-RLE mask files, YouTube-VOS result folders, VOT trajectory files.

* **COCO RLE** (``pycocotools.mask`` format, see :mod:`segtrack.io.coco_rle`):
  :class:`RleWriter` / :func:`read_rle_masks` store a video's label maps as
  ``{"frames": [{"index", "name", "objects": {"1": {"size": [h, w], "counts": str}}}]}``.
* **YouTube-VOS** (the CodaLab submission layout read by the YouTube-VOS evaluation server):
  ``<root>/Annotations/<video>/<frame>.png``, palette PNGs with object ids as indices, frames
  named as the JPEGs. :func:`export_ytvos` copies segtrack outputs into it (optionally only the
  frames ``meta.json`` lists), :func:`read_ytvos_results` reads it back.
* **VOT** trajectory files as written by the VOT toolkit (``vot-toolkit-python``,
  ``vot/region/io.py`` ``write_trajectory`` and ``vot/region/shapes.py``): one region per line,
  a special code (``0`` / ``1`` / ``2``), a rectangle ``x,y,w,h``, a polygon ``x1,y1,...`` or a
  mask ``m<x0>,<y0>,<w>,<h>,<runs>`` (the mask cropped to its bounding box, row-major runs
  starting with zeros; an empty mask is ``m0,0,0,0,0``), and the toolkit's result layout
  ``<results>/<tracker>/<experiment>/<sequence>/<sequence>_<rep:03d>.txt`` with
  ``..._time.value`` (seconds per frame).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from segtrack.errors import InputError
from segtrack.io import coco_rle
from segtrack.io.writers import _open_exclusive, _remove_quietly, _temp_name, atomic_write_bytes

__all__ = [
    "RleWriter",
    "read_rle_masks",
    "export_ytvos",
    "read_ytvos_results",
    "encode_vot_region",
    "decode_vot_region",
    "write_vot_trajectory",
    "read_vot_trajectory",
    "vot_result_path",
    "write_vot_result",
]


# ------------------------------------------------------------------------------ COCO RLE


class RleWriter:
    """Streams per-frame COCO RLE masks of every object to one JSON file (atomic on close)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if self.path.is_dir():
            raise InputError(f"RLE output '{path}' is a folder, expected a .json file name")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = _temp_name(self.path)
        self._f: IO[Any] | None = _open_exclusive(self._tmp, binary=False)
        self._f.write('{"format": "coco-rle", "frames": [')
        self.count = 0

    def add(self, frame_index: int, frame_name: str, labels: np.ndarray) -> None:
        """Append one frame's label map (0 = background, k = object k)."""
        if self._f is None:
            raise RuntimeError("RleWriter is closed")
        lab = np.asarray(labels)
        if lab.ndim != 2:
            raise InputError(f"label map must be 2-D, got shape {lab.shape}")
        objects = {str(int(k)): coco_rle.encode(lab == k) for k in np.unique(lab) if k != 0}
        rec = {"index": int(frame_index), "name": str(frame_name),
               "size": [int(lab.shape[0]), int(lab.shape[1])], "objects": objects}
        self._f.write(("\n  " if self.count == 0 else ",\n  ") + json.dumps(rec))
        self.count += 1

    def close(self) -> Path:
        if self._f is not None:
            f, self._f = self._f, None
            f.write("\n]}\n")
            f.close()
            os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None
            _remove_quietly(self._tmp)

    def __enter__(self) -> RleWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def read_rle_masks(path: str | os.PathLike) -> list[tuple[str, np.ndarray]]:
    """``[(frame name, uint8 label map)]`` of a file written by :class:`RleWriter`."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
        frames = data["frames"]
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError(f"'{p}' is not a segtrack COCO-RLE mask file") from None
    out = []
    for i, fr in enumerate(frames):
        try:
            h, w = (int(v) for v in fr["size"])
            labels = np.zeros((h, w), np.uint8)
            for k, rle in fr["objects"].items():
                m = coco_rle.decode(rle)
                if m.shape != (h, w):
                    raise InputError(f"'{p}' frame {i}: object {k} is not {w}x{h}")
                labels[m] = int(k)
            out.append((str(fr["name"]), labels))
        except (KeyError, TypeError, ValueError) as e:
            if isinstance(e, InputError):
                raise
            raise InputError(f"'{p}' frame {i}: malformed record") from None
    return out


# --------------------------------------------------------------------------- YouTube-VOS


def _ytvos_frames(meta: Mapping[str, Any], video: str) -> set[str] | None:
    vids = meta.get("videos", {})
    if video not in vids:
        return None
    names: set[str] = set()
    for obj in (vids[video].get("objects") or {}).values():
        names.update(str(f) for f in obj.get("frames", []))
    return names


def export_ytvos(
    results: Mapping[str, str | os.PathLike],
    dest: str | os.PathLike,
    meta: str | os.PathLike | Mapping | None = None,
) -> Path:
    """Copy per-video PNG folders (``{video: folder}``, e.g. batch outputs) to
    ``dest/Annotations/<video>/<frame>.png``; returns ``dest``.

    With ``meta`` (a YouTube-VOS ``meta.json`` path or its parsed dict) only the frames it lists
    for the video are written, and a listed frame without a result PNG is an InputError.
    """
    from segtrack.io.writers import guard_output

    dest_p = Path(dest)
    guard_output(dest_p, [Path(f) for f in results.values()], is_dir=True)
    meta_d: Mapping | None
    if meta is None or isinstance(meta, Mapping):
        meta_d = meta
    else:
        try:
            meta_d = json.loads(Path(meta).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise InputError(f"YouTube-VOS meta file '{meta}' is not readable JSON") from None
    for video, folder in results.items():
        src = Path(folder)
        if not src.is_dir():
            raise InputError(f"result folder '{src}' of video '{video}' does not exist")
        pngs = {p.stem: p for p in src.glob("*.png")}
        wanted = _ytvos_frames(meta_d, video) if meta_d is not None else None
        if meta_d is not None and wanted is None:
            raise InputError(f"video '{video}' is not in the YouTube-VOS meta file")
        names = sorted(pngs) if wanted is None else sorted(wanted)
        out_dir = dest_p / "Annotations" / video
        out_dir.mkdir(parents=True, exist_ok=True)
        for n in names:
            if n not in pngs:
                raise InputError(f"video '{video}': no result PNG for frame '{n}' in '{src}'")
            atomic_write_bytes(out_dir / f"{n}.png", pngs[n].read_bytes())
    return dest_p


def read_ytvos_results(root: str | os.PathLike) -> dict[str, dict[str, np.ndarray]]:
    """``{video: {frame: label map}}`` of a YouTube-VOS result folder (``root`` or its
    ``Annotations`` sub-folder)."""
    from segtrack.io.palette import read_label_png

    r = Path(root)
    ann = r / "Annotations" if (r / "Annotations").is_dir() else r
    if not ann.is_dir():
        raise InputError(f"YouTube-VOS result folder '{root}' does not exist")
    out: dict[str, dict[str, np.ndarray]] = {}
    for vdir in sorted(p for p in ann.iterdir() if p.is_dir()):
        out[vdir.name] = {p.stem: read_label_png(p) for p in sorted(vdir.glob("*.png"))}
    return out


# ----------------------------------------------------------------------------------- VOT


def _num(v: float) -> str:
    return repr(float(v)) if math.isfinite(float(v)) else "nan"


def _vot_runs(patch: np.ndarray) -> list[int]:
    flat = np.asarray(patch, dtype=bool).ravel()  # row-major, as the toolkit
    if flat.size == 0:
        return [0]
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate(([0], change, [flat.size]))).tolist()
    if flat[0]:
        runs.insert(0, 0)
    return [int(r) for r in runs]


def encode_vot_region(region: Any) -> str:
    """One trajectory line: an int code, ``(x, y, w, h)``, a ``(K, 2)``/flat polygon, or a 2-D
    bool mask (image coordinates; written cropped to its bounds)."""
    if isinstance(region, (int, np.integer)) and not isinstance(region, bool):
        return str(int(region))
    arr = np.asarray(region)
    if arr.ndim == 2 and (arr.dtype == bool or arr.shape[1] != 2):
        m = arr.astype(bool)
        rows = np.flatnonzero(m.any(axis=1))
        cols = np.flatnonzero(m.any(axis=0))
        if rows.size == 0:
            return "m0,0,0,0,0"
        y0, y1, x0, x1 = rows[0], rows[-1], cols[0], cols[-1]
        runs = _vot_runs(m[y0:y1 + 1, x0:x1 + 1])
        return f"m{x0},{y0},{x1 - x0 + 1},{y1 - y0 + 1}," + ",".join(map(str, runs))
    vals = arr.astype(np.float64).ravel()
    if vals.size == 4 or (vals.size >= 6 and vals.size % 2 == 0):
        return ",".join(_num(v) for v in vals)
    raise InputError(f"cannot encode a VOT region from shape {arr.shape}")


def decode_vot_region(line: str, image_size: tuple[int, int] | None = None) -> Any:
    """Inverse of :func:`encode_vot_region`: int code, ``(4,)`` rectangle, ``(2K,)`` polygon or
    a bool mask (``(height, width)`` = ``image_size`` when given, else just covering the
    patch)."""
    from segtrack.eval.datasets import parse_vot_region

    s = line.strip()
    if s and s[0] != "m":
        vals = [t for t in s.replace(" ", ",").split(",") if t]
        if len(vals) == 1:
            try:
                return int(float(vals[0]))
            except ValueError:
                raise InputError(f"VOT region {line!r}: not a number") from None
    try:
        kind, val = parse_vot_region(s)
    except ValueError as e:
        raise InputError(f"VOT region {line[:40]!r}: {e}") from None
    if kind == "none":
        return 0
    if kind == "polygon":
        flat = np.asarray(val, np.float64).ravel()
        parts = [t for t in s.split(",") if t]
        if len(parts) == 4:  # keep rectangles as rectangles
            return np.array([float(t) for t in parts])
        return flat
    x0, y0, patch = val
    ph, pw = patch.shape
    h, w = image_size if image_size is not None else (y0 + ph, x0 + pw)
    full = np.zeros((int(h), int(w)), bool)
    ys, xs, ye, xe = max(0, y0), max(0, x0), min(h, y0 + ph), min(w, x0 + pw)
    if ye > ys and xe > xs:
        full[ys:ye, xs:xe] = patch[ys - y0:ye - y0, xs - x0:xe - x0]
    return full


def write_vot_trajectory(path: str | os.PathLike, regions: Iterable[Any]) -> Path:
    """Write one region per line (atomic); see :func:`encode_vot_region`."""
    text = "".join(encode_vot_region(r) + "\n" for r in regions)
    return atomic_write_bytes(path, text.encode())


def read_vot_trajectory(
    path: str | os.PathLike, image_size: tuple[int, int] | None = None
) -> list[Any]:
    """Read a VOT trajectory text file (see :func:`decode_vot_region`)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"VOT trajectory '{p}' does not exist")
    out = []
    for ln, line in enumerate(p.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(decode_vot_region(line, image_size))
        except InputError as e:
            raise InputError(f"'{p}' line {ln}: {e}") from None
    return out


def vot_result_path(
    root: str | os.PathLike, tracker: str, experiment: str, sequence: str, repetition: int = 1
) -> Path:
    """``<root>/<tracker>/<experiment>/<sequence>/<sequence>_<rep:03d>.txt`` (toolkit layout)."""
    for what, v in (("tracker", tracker), ("experiment", experiment), ("sequence", sequence)):
        if not v or "/" in v or "\\" in v or v in (".", ".."):
            raise InputError(f"invalid VOT {what} name {v!r}")
    return Path(root) / tracker / experiment / sequence / f"{sequence}_{repetition:03d}.txt"


def write_vot_result(
    root: str | os.PathLike,
    tracker: str,
    experiment: str,
    sequence: str,
    regions: Sequence[Any],
    times: Sequence[float] | None = None,
    repetition: int = 1,
) -> Path:
    """Write a trajectory (and ``_time.value``, seconds per frame) in the toolkit's layout."""
    p = vot_result_path(root, tracker, experiment, sequence, repetition)
    write_vot_trajectory(p, regions)
    if times is not None:
        if len(times) != len(regions):
            raise InputError(f"{len(times)} times for {len(regions)} regions")
        tp = p.with_name(f"{sequence}_{repetition:03d}_time.value")
        atomic_write_bytes(tp, "".join(f"{float(t):.6f}\n" for t in times).encode())
    return p
