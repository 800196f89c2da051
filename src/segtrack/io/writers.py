"""Output writers: atomic files, per-frame label PNGs, overlay videos and box JSON.

Every output is first written under a temporary name in the destination folder and renamed
with :func:`os.replace` once complete, so an interrupted run never leaves a half-written file
and never clobbers a previous complete one. :func:`guard_output` refuses output paths that
would overwrite the user's inputs. The per-frame mask PNGs follow the DAVIS result format
(seed 002, "datasets"; the ``davis2017-evaluation`` toolkit reads ``<frame>.png`` per
sequence); the overlay (H.264 MP4 by default, so that browsers play it) draws the three output
representations of SiamMask (seed 004: mask, axis-aligned box, rotated box).
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
    image_rgb: np.ndarray,
    predictions: dict[int, Prediction],
    alpha: float = 0.5,
    names: dict[int, str] | None = None,
) -> np.ndarray:
    """RGB copy of ``image_rgb`` with tinted masks, axis boxes, rotated boxes and labels.

    Each object's label (its id, and its name from ``names``) is white on a dark tag in the
    object's colour, sized to the frame (readable at 480p and above).
    """
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
            name = (names or {}).get(int(oid))
            _draw_label(out, f"{oid} {name}" if name else str(oid), box, color)
    return out


def _draw_label(out: np.ndarray, text: str, box: tuple[float, ...], color: tuple) -> None:
    """A white label on a tag of the object's colour (darkened), above the box when it fits."""
    import cv2

    h, w = out.shape[:2]
    scale = max(0.45, min(h, w) / 800)
    thick = max(1, round(scale * 2))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    pad = max(2, round(th * 0.3))
    x0 = int(min(max(0, round(box[0])), max(0, w - tw - 2 * pad)))
    y1 = round(box[1])
    if y1 - th - base - 2 * pad < 0:  # no room above: inside the box's top edge
        y1 = min(h, round(box[1]) + th + base + 2 * pad)
    y0 = max(0, y1 - th - base - 2 * pad)
    tag = tuple(int(c * 0.55) for c in color)
    cv2.rectangle(out, (x0, y0), (min(w - 1, x0 + tw + 2 * pad), max(y0, y1 - 1)), tag, -1)
    cv2.putText(out, text, (x0 + pad, y1 - pad - base), cv2.FONT_HERSHEY_SIMPLEX, scale,
                (255, 255, 255), thick, cv2.LINE_AA)


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


class _PyAVVideo:
    """A browser-playable video written with PyAV's bundled FFmpeg (H.264 in MP4, VP9 in WebM).

    Frames are RGB; odd widths or heights are padded by one replicated row/column, since the
    4:2:0 chroma these codecs use needs even sizes.
    """

    CODECS = {".webm": ("libvpx-vp9", "webm", {"deadline": "realtime", "cpu-used": "8",
                                                "crf": "32", "b": "0", "row-mt": "1"})}
    H264 = ("libx264", "mp4", {"preset": "superfast", "crf": "20", "movflags": "+faststart"})

    def __init__(self, path: Path, final_suffix: str, fps: float, size: tuple[int, int]):
        from fractions import Fraction

        import av

        codec, fmt, options = self.CODECS.get(final_suffix, self.H264)
        av.codec.Codec(codec, "w")  # raises when this FFmpeg build lacks the encoder
        h, w = size
        self._pad = (h % 2, w % 2)
        self._container = av.open(str(path), "w", format=fmt)
        try:
            stream = self._container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
            stream.width, stream.height = w + self._pad[1], h + self._pad[0]
            stream.pix_fmt = "yuv420p"
            stream.options = dict(options)
        except BaseException:
            self._container.close()
            raise
        self._stream = stream
        self.codec = codec

    def write(self, rgb: np.ndarray) -> None:
        import av

        if any(self._pad):
            rgb = np.pad(rgb, ((0, self._pad[0]), (0, self._pad[1]), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def close(self) -> None:
        try:
            self._container.start_encoding()  # a header even when no frame came
            for packet in self._stream.encode():
                self._container.mux(packet)
        finally:
            self._container.close()

    def release(self) -> None:
        with contextlib.suppress(Exception):
            self._container.close()


class _OpenCVVideo:
    """OpenCV's writer (MPEG-4 Part 2 or Motion-JPEG: not playable in browsers)."""

    def __init__(self, path: Path, fourcc: str, fps: float, size: tuple[int, int]):
        import cv2

        self._writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps,
                                       (size[1], size[0]))
        if not self._writer.isOpened():
            self._writer.release()
            raise OSError(f"OpenCV cannot write {fourcc}")
        self.codec = fourcc

    def write(self, rgb: np.ndarray) -> None:
        import cv2

        self._writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))

    def close(self) -> None:
        self._writer.release()

    def release(self) -> None:
        self._writer.release()


class OverlayWriter(_CloseOrAbort):
    """Writes an overlay video of the predictions that plays in web browsers.

    ``.mp4`` (the default when ``path`` has no suffix) is H.264, ``.webm`` is VP9, both encoded
    by the FFmpeg that the PyAV package brings; ``.avi`` is Motion-JPEG. Without PyAV (or
    without its encoder) the writer falls back to OpenCV's MPEG-4 Part 2 in the ``.mp4``, and
    then to Motion-JPEG in an ``.avi`` next to the requested path, warns (such files do not
    play in browsers), and sets :attr:`fell_back`.

    The video is written under a temporary name and renamed to :attr:`path` on :meth:`close`;
    on an exception inside a ``with`` block the temporary file is removed. ``names`` (object
    id -> name) labels the objects next to their ids.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float | None,
        frame_size: tuple[int, int],
        protected: Iterable[str | os.PathLike] = (),
        names: dict[int, str] | None = None,
    ):
        requested = Path(path)
        guard_output(requested, protected, is_dir=False)
        if requested.is_dir():
            raise InputError(f"overlay output '{path}' is a folder, expected a video file name")
        requested.parent.mkdir(parents=True, exist_ok=True)
        self.frame_size = (int(frame_size[0]), int(frame_size[1]))
        self.fps = float(fps) if fps and fps > 0 and math.isfinite(fps) else 25.0
        self.names = {int(k): str(v) for k, v in (names or {}).items()}
        self.fell_back = False
        self.count = 0
        first = requested.with_suffix(".mp4") if requested.suffix == "" else requested
        suffix = first.suffix.lower()
        attempts: list[tuple[str, Path]] = []
        if suffix == ".avi":
            attempts.append(("MJPG", first))
        else:
            attempts.append(("pyav", first))
            if suffix != ".webm":
                attempts.append(("mp4v", first))
            attempts.append(("MJPG", requested.with_suffix(".avi")))
        self._writer: _PyAVVideo | _OpenCVVideo | None = None
        for i, (kind, final) in enumerate(attempts):
            if i > 0:
                guard_output(final, protected, is_dir=False)
            tmp = _temp_name(final, suffix=".tmp" + final.suffix)
            try:
                if kind == "pyav":
                    writer: _PyAVVideo | _OpenCVVideo = _PyAVVideo(tmp, suffix, self.fps,
                                                                   self.frame_size)
                else:
                    writer = _OpenCVVideo(tmp, kind, self.fps, self.frame_size)
            except Exception:  # noqa: BLE001 - PyAV missing, encoder missing, OpenCV refusing
                _remove_quietly(tmp)
                continue
            self._writer, self._tmp, self.path, self.codec = writer, tmp, final, writer.codec
            self.fell_back = i > 0
            break
        if self._writer is None:
            raise InputError(f"cannot open a video writer for '{path}' "
                             "(tried H.264/VP9, MPEG-4 and Motion-JPEG)")
        if self.fell_back:
            warnings.warn(
                f"overlay '{self.path}' is written as {self.codec}, which web browsers do not "
                "play: install PyAV (pip install av) for H.264",
                RuntimeWarning,
                stacklevel=2,
            )

    def write(self, image_rgb: np.ndarray, predictions: dict[int, Prediction]) -> None:
        """Draw the predictions on an RGB frame and append it to the video."""
        if self._writer is None:
            raise RuntimeError("OverlayWriter is closed")
        img = np.asarray(image_rgb)
        if img.shape[:2] != self.frame_size or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(
                f"overlay frame has shape {tuple(img.shape)}, expected {self.frame_size + (3,)}"
            )
        self._writer.write(draw_predictions(img, predictions or {}, names=self.names))
        self.count += 1

    def close(self) -> Path:
        """Finish the video and move it to :attr:`path`."""
        if self._writer is not None:
            writer, self._writer = self._writer, None
            try:
                writer.close()
            except BaseException:
                _remove_quietly(self._tmp)
                raise
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

