"""Output writers: atomic files, per-frame label PNGs, overlay videos and box JSON.

Every output is first written under a temporary name in the destination folder and renamed
with :func:`os.replace` once complete, so an interrupted run never leaves a half-written file
and never clobbers a previous complete one. :func:`guard_output` refuses output paths that
would overwrite the user's inputs. The per-frame mask PNGs follow the DAVIS result format
(seed 002, "datasets"; the ``davis2017-evaluation`` toolkit reads ``<frame>.png`` per
sequence); the overlay draws the three output representations of SiamMask (seed 004: mask,
axis-aligned box, rotated box).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import uuid
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from segtrack.errors import InputError
from segtrack.types import Prediction

__all__ = [
    "atomic_write_bytes",
    "atomic_writer",
    "guard_output",
    "MaskWriter",
    "OverlayWriter",
    "BoxesWriter",
]


def _temp_name(path: Path, suffix: str = ".tmp") -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}{suffix}")


def _open_exclusive(tmp: Path, binary: bool = True, encoding: str | None = None) -> IO[Any]:
    # os.open honours the umask, unlike tempfile (always 0600)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    if binary:
        return os.fdopen(fd, "wb")
    return os.fdopen(fd, "w", encoding=encoding or "utf-8", newline="\n")


def _remove_quietly(p: Path) -> None:
    with contextlib.suppress(FileNotFoundError, OSError):
        os.remove(p)


@contextlib.contextmanager
def atomic_writer(
    path: str | os.PathLike, mode: str = "wb", encoding: str | None = None
) -> Iterator[IO[Any]]:
    """Context manager yielding a file object; the data lands at ``path`` only on success.

    Writes to a hidden temporary file in the same folder and ``os.replace``\\ s it onto
    ``path`` when the block exits normally; on an exception the temporary file is removed and
    ``path`` is left untouched. ``mode`` is ``"wb"`` or ``"w"`` (text, UTF-8 by default).
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_writer mode must be 'wb' or 'w', got {mode!r}")
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(final)
    f = _open_exclusive(tmp, binary=(mode == "wb"), encoding=encoding)
    try:
        with f:
            yield f
        os.replace(tmp, final)
    except BaseException:
        _remove_quietly(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same folder + rename)."""
    with atomic_writer(path, "wb") as f:
        f.write(data)
    return Path(path)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def guard_output(
    path: str | os.PathLike,
    protected: Iterable[str | os.PathLike],
    *,
    is_dir: bool | None = None,
) -> Path:
    """Refuse an output ``path`` that would overwrite one of the ``protected`` input paths.

    InputError ("refusing to overwrite input 'x'") when ``path`` resolves to a protected path
    (symlinks and hard links included) or, when ``path`` is a folder (``is_dir=True``, or it
    exists as a folder), contains one. Returns the resolved output path.
    """
    out = Path(path).expanduser().resolve()
    if is_dir is None:
        is_dir = out.is_dir()
    for item in protected:
        if item is None:
            continue
        prot = Path(item).expanduser().resolve()
        if out == prot or _same_file(out, prot):
            raise InputError(f"refusing to overwrite input '{item}' with output '{path}'")
        if is_dir and prot.is_relative_to(out):
            raise InputError(
                f"refusing to overwrite input '{item}': output folder '{path}' contains it"
            )
    return out


class MaskWriter:
    """Writes one indexed label PNG per frame: ``<out_dir>/<frame_name>.png`` (atomic)."""

    def __init__(self, out_dir: str | os.PathLike, protected: Iterable[str | os.PathLike] = ()):
        self.protected = [Path(p) for p in protected]
        guard_output(out_dir, self.protected, is_dir=True)
        self.out_dir = Path(out_dir)
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise InputError(f"output folder '{out_dir}' is an existing file") from None
        except OSError as exc:
            raise InputError(f"cannot create output folder '{out_dir}': {exc.strerror}") from None
        self.count = 0

    def path_for(self, frame_name: str) -> Path:
        """The PNG path for a frame name."""
        name = str(frame_name)
        if not name or "/" in name or "\\" in name or name in (".", ".."):
            raise InputError(f"invalid frame name {frame_name!r} for a mask file")
        return self.out_dir / f"{name}.png"

    def write(self, frame_name: str, label_map: np.ndarray) -> Path:
        """Write the label map of one frame; returns the written path."""
        from segtrack.io.palette import write_label_png

        target = self.path_for(frame_name)
        if self.protected:
            guard_output(target, self.protected, is_dir=False)
        write_label_png(target, label_map)
        self.count += 1
        return target

    def close(self) -> None:
        """Nothing to flush (every frame is complete on disk); for symmetry with the others."""

    def __enter__(self) -> MaskWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _finite_box(box: Any) -> tuple[float, float, float, float] | None:
    if box is None:
        return None
    try:
        vals = [float(v) for v in box]
    except (TypeError, ValueError):
        return None
    if len(vals) != 4 or not all(math.isfinite(v) for v in vals) or vals[2] <= 0 or vals[3] <= 0:
        return None
    return vals[0], vals[1], vals[2], vals[3]


def draw_predictions(
    image_rgb: np.ndarray, predictions: dict[int, Prediction], alpha: float = 0.5
) -> np.ndarray:
    """RGB copy of ``image_rgb`` with tinted masks, axis boxes, rotated boxes and object ids."""
    import cv2

    from segtrack.io.palette import davis_palette

    pal = davis_palette()
    out = np.array(image_rgb, dtype=np.uint8, copy=True)
    h, w = out.shape[:2]
    # masks first (so outlines stay visible on top)
    for oid in sorted(predictions):
        pred = predictions[oid]
        if pred is None or pred.mask is None:
            continue
        m = np.asarray(pred.mask, dtype=bool)
        if m.shape != (h, w) or not m.any():
            continue
        color = pal[int(oid) % 256].astype(np.float32)
        out[m] = np.round(out[m].astype(np.float32) * (1 - alpha) + color * alpha).astype(np.uint8)
    thickness = max(1, round(min(h, w) / 240))
    for oid in sorted(predictions):
        pred = predictions[oid]
        if pred is None:
            continue
        color = tuple(int(v) for v in pal[int(oid) % 256])
        if color == (0, 0, 0):
            color = (255, 255, 255)
        box = _finite_box(pred.box)
        if box is not None and not pred.empty:
            x, y, bw, bh = box
            p1 = (round(x), round(y))
            p2 = (max(round(x + bw) - 1, p1[0]), max(round(y + bh) - 1, p1[1]))
            cv2.rectangle(out, p1, p2, color, thickness)
        rb = None if pred.rotated_box is None else np.asarray(pred.rotated_box, dtype=np.float64)
        if rb is not None and rb.shape == (4, 2) and np.isfinite(rb).all() and not pred.empty:
            # corners are continuous coordinates; pixel centres sit at +0.5
            pts = np.round((rb - 0.5) * 16).astype(np.int32).reshape(-1, 1, 2)
            cv2.polylines(out, [pts], True, (255, 255, 255), thickness, cv2.LINE_AA, shift=4)
        if box is not None and not pred.empty:
            org = (max(0, round(box[0])), max(12, round(box[1]) - 3))
            cv2.putText(
                out, str(oid), org, cv2.FONT_HERSHEY_SIMPLEX, 0.5, color, 1, cv2.LINE_AA
            )
    return out


class _CloseOrAbort:
    """``with`` support for writers: ``close()`` on success, ``abort()`` on an exception."""

    def close(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def abort(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class OverlayWriter(_CloseOrAbort):
    """Writes an overlay video of the predictions (mp4 'mp4v', else MJPG .avi).

    The video is written under a temporary name and renamed to :attr:`path` on
    :meth:`close`; on an exception inside a ``with`` block the temporary file is removed. When
    the mp4 writer cannot be opened the writer falls back to Motion-JPEG in an ``.avi`` next to
    the requested path (``path`` with suffix ``.avi``), warns, and sets :attr:`fell_back`.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float | None,
        frame_size: tuple[int, int],
        protected: Iterable[str | os.PathLike] = (),
    ):
        import cv2

        requested = Path(path)
        guard_output(requested, protected, is_dir=False)
        if requested.is_dir():
            raise InputError(f"overlay output '{path}' is a folder, expected a video file name")
        requested.parent.mkdir(parents=True, exist_ok=True)
        self.frame_size = (int(frame_size[0]), int(frame_size[1]))
        self.fps = float(fps) if fps and fps > 0 and math.isfinite(fps) else 25.0
        self.fell_back = False
        self.count = 0
        h, w = self.frame_size
        first = requested.with_suffix(".mp4") if requested.suffix == "" else requested
        attempts = [("mp4v", first), ("MJPG", requested.with_suffix(".avi"))]
        self._writer = None
        for i, (fourcc, final) in enumerate(attempts):
            if i > 0:
                guard_output(final, protected, is_dir=False)
            tmp = _temp_name(final, suffix=".tmp" + final.suffix)
            writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*fourcc), self.fps, (w, h))
            if writer.isOpened():
                self._writer, self._tmp, self.path, self.fourcc = writer, tmp, final, fourcc
                break
            writer.release()
            _remove_quietly(tmp)
            if i == 0:
                self.fell_back = True
        if self._writer is None:
            raise InputError(f"cannot open a video writer for '{path}' (tried mp4v and MJPG)")
        if self.fell_back:
            warnings.warn(
                f"mp4 writer unavailable; writing Motion-JPEG '{self.path}' instead of '{path}'",
                RuntimeWarning,
                stacklevel=2,
            )

    def write(self, image_rgb: np.ndarray, predictions: dict[int, Prediction]) -> None:
        """Draw the predictions on an RGB frame and append it to the video."""
        import cv2

        if self._writer is None:
            raise RuntimeError("OverlayWriter is closed")
        img = np.asarray(image_rgb)
        if img.shape[:2] != self.frame_size or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(
                f"overlay frame has shape {tuple(img.shape)}, expected {self.frame_size + (3,)}"
            )
        drawn = draw_predictions(img, predictions or {})
        self._writer.write(cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
        self.count += 1

    def close(self) -> Path:
        """Finish the video and move it to :attr:`path`."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Stop writing and remove the temporary file (``path`` is left untouched)."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            _remove_quietly(self._tmp)



def _json_float(v: Any) -> float | None:
    f = float(v)
    return f if math.isfinite(f) else None


def prediction_record(pred: Prediction) -> dict[str, Any]:
    """JSON-ready ``{"box", "rotated_box", "score"}`` of one prediction (NaN -> null)."""
    box = None if pred.box is None else [_json_float(v) for v in pred.box]
    rb = None
    if pred.rotated_box is not None:
        arr = np.asarray(pred.rotated_box, dtype=np.float64).reshape(-1, 2)
        rb = [[_json_float(x), _json_float(y)] for x, y in arr]
    score = None if pred.score is None else _json_float(pred.score)
    return {"box": box, "rotated_box": rb, "score": score}


class BoxesWriter(_CloseOrAbort):
    """Collects per-frame boxes and writes one JSON file on :meth:`close`.

    Format: ``{"frames": [{"index": i, "name": n, "objects": {"1": {"box": [x, y, w, h],
    "rotated_box": [[x, y] x4], "score": s}}}]}``. Records are streamed into a temporary file
    as they are added (memory stays bounded on long videos); ``close`` closes the JSON and
    renames it to ``path``. Non-finite numbers are written as ``null``.
    """

    def __init__(self, path: str | os.PathLike, protected: Iterable[str | os.PathLike] = ()):
        self.path = Path(path)
        guard_output(self.path, protected, is_dir=False)
        if self.path.is_dir():
            raise InputError(f"boxes output '{path}' is a folder, expected a .json file name")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = _temp_name(self.path)
        self._f: IO[Any] | None = _open_exclusive(self._tmp, binary=False)
        self._f.write('{"frames": [')
        self.count = 0

    def add(self, frame_index: int, frame_name: str, predictions: dict[int, Prediction]) -> None:
        """Append the predictions of one frame."""
        if self._f is None:
            raise RuntimeError("BoxesWriter is closed")
        rec = {
            "index": int(frame_index),
            "name": str(frame_name),
            "objects": {
                str(int(k)): prediction_record(predictions[k])
                for k in sorted(predictions, key=int)
                if predictions[k] is not None
            },
        }
        self._f.write(("\n  " if self.count == 0 else ",\n  ") + json.dumps(rec, allow_nan=False))
        self.count += 1

    def close(self) -> Path:
        """Finish the JSON and move it to :attr:`path`."""
        if self._f is not None:
            f, self._f = self._f, None
            try:
                f.write("\n]}\n")
                f.close()
                os.replace(self._tmp, self.path)
            except BaseException:
                f.close()
                _remove_quietly(self._tmp)
                raise
        return self.path

    def abort(self) -> None:
        """Stop and remove the temporary file (``path`` is left untouched)."""
        if self._f is not None:
            self._f.close()
            self._f = None
            _remove_quietly(self._tmp)

