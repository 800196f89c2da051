"""Streaming frame sources: video files, image folders, lists of images and webcams.

Frames are decoded one at a time (a video is never loaded whole into memory) and returned as
:class:`segtrack.types.Frame` with RGB images. Tracking by segmentation runs online over a
video stream, frame after frame, so sources are plain iterables that can be re-iterated (each
iteration re-opens the input) and can start at any frame.

A broken file or a missing camera is reported once, by segtrack's own error naming the input:
OpenCV's and FFmpeg's log lines are silenced while sources are opened and read.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

# FFmpeg (inside OpenCV) prints demuxer errors such as "moov atom not found" to stderr itself;
# OpenCV reads this level when it first opens a video, so it must be set before that (-8: quiet).
# Only a default: a user's own setting wins.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

import numpy as np

from segtrack.errors import InputError
from segtrack.types import Frame

__all__ = [
    "FrameSource",
    "open_source",
    "read_image",
    "natural_key",
    "list_images",
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm")

_DIGITS = re.compile(r"(\d+)")


@contextlib.contextmanager
def quiet_opencv() -> Iterator[None]:
    """Silence OpenCV's own log lines (``[ WARN:0@0.1] ... VIDEOIO(V4L2...)``, PNG decoder
    errors) for the duration; the previous level comes back after."""
    import cv2

    log = getattr(getattr(cv2, "utils", None), "logging", None)
    if log is not None and hasattr(log, "setLogLevel"):
        previous = log.getLogLevel()
        log.setLogLevel(log.LOG_LEVEL_SILENT)
        try:
            yield
        finally:
            log.setLogLevel(previous)
    elif hasattr(cv2, "setLogLevel"):  # older OpenCV
        previous = cv2.getLogLevel()
        cv2.setLogLevel(0)
        try:
            yield
        finally:
            cv2.setLogLevel(previous)
    else:  # pragma: no cover - every supported OpenCV has one of the two
        yield


def natural_key(name: str) -> tuple:
    """Sort key putting ``"2.jpg"`` before ``"10.jpg"`` (digit runs compare as numbers)."""
    parts = _DIGITS.split(name)
    key: list = []
    for i, part in enumerate(parts):
        if i % 2:
            key.append((1, int(part), part))
        else:
            key.append((0, part.lower(), part))
    return tuple(key)


def list_images(folder: str | os.PathLike) -> list[Path]:
    """The jpg/jpeg/png/bmp files of ``folder`` (not recursive) in natural order."""
    folder = Path(folder)
    with os.scandir(folder) as it:
        names = [
            e.name
            for e in it
            if not e.name.startswith(".")
            and os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS
            and e.is_file()
        ]
    names.sort(key=natural_key)
    return [folder / n for n in names]


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` uint8 RGB (grayscale expanded, alpha dropped).

    Raises InputError naming the file when it is missing or cannot be decoded.
    """
    import cv2

    p = Path(path)
    try:
        data = np.fromfile(p, dtype=np.uint8)  # works with non-ASCII paths, unlike imread
    except FileNotFoundError:
        raise InputError(f"image '{p}' does not exist") from None
    except IsADirectoryError:
        raise InputError(f"image '{p}' is a folder, expected an image file") from None
    except OSError as exc:
        raise InputError(f"cannot read image '{p}': {exc.strerror or exc}") from None
    with quiet_opencv():
        img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise InputError(f"cannot decode image '{p}'")
    if img.dtype != np.uint8:  # defensive: IMREAD_COLOR already converts to 8 bits
        img = (img / (np.iinfo(img.dtype).max / 255.0)).round().astype(np.uint8)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


class FrameSource:
    """An iterable of :class:`~segtrack.types.Frame`, created by :func:`open_source`.

    Attributes:
        kind: ``"video"``, ``"folder"``, ``"list"`` or ``"webcam"``.
        num_frames: number of frames one iteration yields (after skipping ``start``), or
            ``None`` when unknown (webcams; videos without a frame count).
        total_frames: frames in the whole input (``None`` when unknown).
        fps: frames per second of a video / webcam, else ``None``.
        start: index of the first frame yielded.
        description: the input as given (for messages).

    Each ``for frame in source`` re-opens the input. ``len(source)`` works when ``num_frames``
    is known. ``Frame.index`` is the position in the whole input (so the first frame yielded
    has ``index == start``).
    """

    def __init__(
        self,
        kind: str,
        description: str,
        *,
        paths: Sequence[Path] | None = None,
        video: str | None = None,
        webcam: int | None = None,
        start: int = 0,
        total_frames: int | None = None,
        fps: float | None = None,
        frame_size: tuple[int, int] | None = None,
    ):
        self.kind = kind
        self.description = description
        self.start = int(start)
        self._paths = list(paths) if paths is not None else None
        self._video = video
        self._webcam = webcam
        self.total_frames = total_frames
        self.fps = fps
        self._frame_size = frame_size
        self._pending_cap = None  # webcam opened by open_source, reused by the first iteration

    # -- attributes ---------------------------------------------------------------------------
    @property
    def num_frames(self) -> int | None:
        if self.total_frames is None:
            return None
        return max(0, self.total_frames - self.start)

    @property
    def frame_size(self) -> tuple[int, int] | None:
        """``(height, width)``; for image inputs read from the first frame on first access."""
        if self._frame_size is None and self._paths:
            img = read_image(self._paths[self.start if self.start < len(self._paths) else 0])
            self._frame_size = (int(img.shape[0]), int(img.shape[1]))
        return self._frame_size

    @property
    def paths(self) -> list[Path] | None:
        """The image paths of a folder / list source (all of them, ignoring ``start``)."""
        return None if self._paths is None else list(self._paths)

    def __len__(self) -> int:
        n = self.num_frames
        if n is None:
            raise TypeError(f"the number of frames of {self.kind} '{self.description}' is unknown")
        return n

    def __repr__(self) -> str:
        return (
            f"FrameSource(kind={self.kind!r}, input={self.description!r}, start={self.start}, "
            f"num_frames={self.num_frames}, fps={self.fps}, frame_size={self._frame_size})"
        )

    # -- iteration ----------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Frame]:
        if self._paths is not None:
            return self._iter_images()
        if self._video is not None:
            return self._iter_video()
        return self._iter_webcam()

    def _iter_images(self) -> Iterator[Frame]:
        assert self._paths is not None
        expected = self._frame_size
        for i in range(self.start, len(self._paths)):
            p = self._paths[i]
            img = read_image(p)
            size = (int(img.shape[0]), int(img.shape[1]))
            if expected is None:
                expected = size
                self._frame_size = size
            if size != expected:
                raise InputError(
                    f"frame '{p}' is {size[1]}x{size[0]} but the first frame "
                    f"is {expected[1]}x{expected[0]}"
                )
            yield Frame(i, p.stem, img)

    def _iter_video(self) -> Iterator[Frame]:
        import cv2

        with quiet_opencv():
            cap = cv2.VideoCapture(self._video)
        try:
            if not cap.isOpened():
                raise InputError(f"cannot decode video '{self.description}'")
            index = 0
            if self.start > 0:
                with quiet_opencv():
                    seeked = cap.set(cv2.CAP_PROP_POS_FRAMES, self.start)
                if seeked and int(round(cap.get(cv2.CAP_PROP_POS_FRAMES))) == self.start:
                    index = self.start
                else:  # seeking unsupported: decode and drop
                    cap.release()
                    with quiet_opencv():
                        cap = cv2.VideoCapture(self._video)
                        while index < self.start and cap.grab():
                            index += 1
                    if index < self.start:
                        return
            while True:
                with quiet_opencv():
                    ok, bgr = cap.read()
                if not ok or bgr is None:
                    break
                yield Frame(index, f"{index:05d}", _to_rgb(bgr))
                index += 1
        finally:
            cap.release()

    def _iter_webcam(self) -> Iterator[Frame]:
        import cv2

        cap, self._pending_cap = self._pending_cap, None
        if cap is None:
            with quiet_opencv():
                cap = cv2.VideoCapture(self._webcam)
        try:
            if not cap.isOpened():
                raise InputError(f"cannot open webcam {self._webcam}: no camera with that index, "
                                 "or it is busy")
            index = 0
            while True:
                with quiet_opencv():
                    ok, bgr = cap.read()
                if not ok or bgr is None:
                    break
                if index >= self.start:
                    yield Frame(index, f"{index:05d}", _to_rgb(bgr))
                index += 1
        finally:
            cap.release()

    def close(self) -> None:
        """Release a webcam opened by :func:`open_source` and not iterated yet."""
        if self._pending_cap is not None:
            self._pending_cap.release()
            self._pending_cap = None


def _to_rgb(bgr: np.ndarray) -> np.ndarray:
    import cv2

    if bgr.ndim == 2:
        return cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB)
    if bgr.shape[2] == 4:
        return cv2.cvtColor(bgr, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _check_start(start: int, total: int | None, what: str) -> int:
    try:
        start = int(start)
    except (TypeError, ValueError):
        raise InputError(f"start frame must be an integer, got {start!r}") from None
    if start < 0:
        raise InputError(f"start frame must be >= 0, got {start}")
    if total is not None and start >= total:
        raise InputError(f"start frame {start} is past the last frame of {what} ({total} frames)")
    return start


def _open_video(path: Path, start: int) -> FrameSource:
    import cv2

    with quiet_opencv():
        cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise InputError(f"cannot decode video '{path}'")
        with quiet_opencv():
            ok, bgr = cap.read()
        if not ok or bgr is None:
            raise InputError(f"cannot decode video '{path}'")
        count = int(round(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0))
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    finally:
        cap.release()
    total = count if count > 0 else None
    start = _check_start(start, total, f"video '{path}'")
    return FrameSource(
        "video",
        str(path),
        video=str(path),
        start=start,
        total_frames=total,
        fps=fps if fps > 0 and np.isfinite(fps) else None,
        frame_size=(int(bgr.shape[0]), int(bgr.shape[1])),
    )


def _open_webcam(index: int, start: int) -> FrameSource:
    import cv2

    start = _check_start(start, None, f"webcam {index}")
    with quiet_opencv():
        cap = cv2.VideoCapture(index)
    if not cap.isOpened():
        cap.release()
        raise InputError(f"cannot open webcam {index}: no camera with that index, or it is busy")
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    w = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
    h = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
    src = FrameSource(
        "webcam",
        str(index),
        webcam=index,
        start=start,
        fps=fps if fps > 0 and np.isfinite(fps) else None,
        frame_size=(h, w) if h > 0 and w > 0 else None,
    )
    src._pending_cap = cap
    return src


def open_source(
    source: str | os.PathLike | int | Sequence[str | os.PathLike], *, start: int = 0
) -> FrameSource:
    """Open a frame source without decoding it all.

    ``source`` is a video file (mp4/avi/mkv/mov/webm, decoded with OpenCV), a folder of
    jpg/jpeg/png/bmp frames (natural sort; name = file stem), a list/tuple of image paths
    (a single image file is a one-frame list), or a webcam index (int or digit string; an
    existing file or folder with a digit name takes precedence). ``start`` skips frames.
    Bad inputs raise InputError naming the input.
    """
    if isinstance(source, bool):
        raise InputError(f"unsupported input {source!r}")
    if isinstance(source, (int, np.integer)):
        return _open_webcam(int(source), start)
    if isinstance(source, (list, tuple)):
        if not source:
            raise InputError("the list of image paths is empty")
        paths = [Path(p) for p in source]
        for p in paths:
            if not p.exists():
                raise InputError(f"input '{p}' does not exist")
            if p.is_dir():
                raise InputError(f"input '{p}' is a folder; a list must hold image files")
            if p.suffix.lower() not in IMAGE_EXTENSIONS:
                raise InputError(
                    f"input '{p}' is not an image (expected {', '.join(IMAGE_EXTENSIONS)})"
                )
        start = _check_start(start, len(paths), "the image list")
        return FrameSource(
            "list", f"{paths[0]} (+{len(paths) - 1} more)", paths=paths, start=start,
            total_frames=len(paths),
        )
    if not isinstance(source, (str, os.PathLike)):
        raise InputError(f"unsupported input of type {type(source).__name__}")
    text = os.fspath(source)
    p = Path(text).expanduser()
    if not p.exists():
        if isinstance(source, str) and text.strip().isdigit():
            return _open_webcam(int(text.strip()), start)
        raise InputError(f"input '{text}' does not exist")
    if p.is_dir():
        try:
            paths = list_images(p)
        except OSError as exc:
            raise InputError(f"cannot list folder '{text}': {exc.strerror or exc}") from None
        if not paths:
            raise InputError(
                f"folder '{text}' has no images ({', '.join(IMAGE_EXTENSIONS)})"
            )
        start = _check_start(start, len(paths), f"folder '{text}'")
        return FrameSource("folder", text, paths=paths, start=start, total_frames=len(paths))
    ext = p.suffix.lower()
    if ext in VIDEO_EXTENSIONS:
        return _open_video(p, start)
    if ext in IMAGE_EXTENSIONS:
        start = _check_start(start, 1, f"image '{text}'")
        return FrameSource("list", text, paths=[p], start=start, total_frames=1)
    raise InputError(
        f"unsupported input type '{ext or p.name}' for '{text}' (expected a video "
        f"{'/'.join(e[1:] for e in VIDEO_EXTENSIONS)}, an image folder, images or a webcam index)"
    )
