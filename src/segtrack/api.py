"""The public Python API: ``track_video`` streams a video through one tracker per object.

Example::

    import segtrack
    for result in segtrack.track_video("clip.mp4", mask="first_mask.png"):
        result.labels      # (H, W) uint8: 0 background, k object k
        result.predictions[1].rotated_box
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segtrack.errors import InputError
from segtrack.profiling import stage
from segtrack.trackers.multi import MultiObjectTracker
from segtrack.trackers.registry import load_tracker
from segtrack.types import Frame, Prediction


@dataclass
class TrackResult:
    """Everything known about one frame after tracking."""

    frame: Frame
    predictions: dict[int, Prediction]
    labels: np.ndarray
    seconds: float = 0.0  # tracker time spent on this frame (decoding excluded)
    started: list[int] = field(default_factory=list)  # objects initialised on this frame


ObjectSpec = Mapping[int, Any]


def _objects_from(mask: Any, box: Any, objects: Mapping | None, frame_size, points: Any = None,
                  labels: Any = None) -> dict[int, dict]:
    """Normalise user object specs to {id: {"mask": bool array} | {"box": xywh}}."""
    out: dict[int, dict] = {}
    if objects:
        for k, spec in objects.items():
            if isinstance(spec, dict):
                out[int(k)] = dict(spec)
            elif isinstance(spec, np.ndarray) and spec.ndim == 2:
                out[int(k)] = {"mask": spec}
            else:
                out[int(k)] = {"box": spec}
    if mask is not None:
        if isinstance(mask, (str, Path)):
            from segtrack.io import read_mask_input

            for k, m in read_mask_input(mask, frame_size).items():
                out[k] = {"mask": m}
        else:
            arr = np.asarray(mask)
            if arr.ndim != 2:
                raise InputError(f"mask must be a 2-D array, got shape {arr.shape}")
            if arr.dtype == bool or set(np.unique(arr).tolist()) <= {0, 1, 255}:
                out[1] = {"mask": arr > 0}
            else:
                for k in np.unique(arr):
                    if k != 0:
                        out[int(k)] = {"mask": arr == k}
    if box is not None or points is not None:
        spec: dict = {"box": box} if box is not None else {}
        if points is not None:
            spec.update(points=points, labels=labels)
        out[max(out, default=0) + 1] = spec
    return out


def track_video(
    source: Any,
    mask: Any = None,
    box: Any = None,
    *,
    points: Any = None,
    labels: Any = None,
    objects: Mapping[int, Any] | None = None,
    method: str = "flow",
    frame: int = 0,
    starts: Mapping[int, int] | None = None,
    device: str = "cpu",
    params: Mapping[str, Any] | None = None,
) -> Iterator[TrackResult]:
    """Track objects through ``source`` (video path, image folder, list of paths, webcam index).

    Args:
        source: anything :func:`segtrack.io.open_source` accepts, or an iterable of Frames.
        mask: a PNG path (non-zero values are object ids) or an array, on frame ``frame``.
        box: an ``(x, y, w, h)`` box of one more object on frame ``frame`` (its first mask
            comes from the box-to-mask network unless the method's ``box_init`` says otherwise).
        points, labels: clicks ``[(x, y), ...]`` on one more object (labels 1 = object, 0 =
            background; default all 1), alone or with ``box``: the first mask comes from them.
        objects: ``{id: mask array | box | {"mask": ..} | {"box": .., "points": ..,
            "labels": ..}}`` (given on ``frame`` unless ``starts[id]`` says on which frame that
            object starts).
        method: registered method name (see ``segtrack methods``).
        frame: index of the frame where ``mask``/``box``/``objects`` are given.
        params: parameter overrides for the method.

    Yields one :class:`TrackResult` per frame, from the first frame of the source; frames before an
    object's start frame have no prediction for it.
    """
    frames = _as_frames(source)
    # fail early on an unknown method or bad parameter, before any decoding
    load_tracker(method, device=device, **dict(params or {}))
    multi = MultiObjectTracker(lambda: load_tracker(method, device=device, **dict(params or {})))
    pending: dict[int, dict] | None = None
    starts = dict(starts or {})
    if frame < 0:
        raise InputError(f"--frame {frame} must be >= 0")
    last_index = -1
    frames = iter(frames)
    while True:
        with stage("decode"):
            fr = next(frames, None)
        if fr is None:
            break
        last_index = fr.index
        if pending is None:
            pending = _objects_from(mask, box, objects, fr.size, points, labels)
            if not pending:
                raise InputError("nothing to track: give a mask, a box or objects")
        t0 = time.perf_counter()
        started = [k for k, spec in pending.items() if starts.get(k, frame) == fr.index]
        tracked = multi.track(fr.image, skip=set(started)) if multi.trackers else {}
        preds = dict(tracked)
        for k in started:
            spec = pending.pop(k)
            try:
                with stage("init"):
                    m = spec.get("mask")
                    if m is None and spec.get("points") is not None:
                        m = _clicks_to_mask(fr.image, spec, device)
                    preds[k] = multi.add(k, fr.image, mask=m, box=spec.get("box"))
            except InputError as e:
                raise InputError(f"object {k} on frame {fr.index} ({fr.name}): {e}") from None
        # each tracker goes on from its final mask
        preds, labels = multi.resolve(tracked, preds, fr.size)
        dt = time.perf_counter() - t0
        yield TrackResult(fr, preds, labels, dt, started)
    if pending:
        first = min(starts.get(k, frame) for k in pending)
        raise InputError(
            f"start frame {first} is beyond the last frame ({last_index}) of the source"
        )


def init_record(frame: int, *, mask: Any = None, box: Any = None, points: Any = None,
                labels: Any = None, objects: Any = None) -> dict[str, Any]:
    """What a run was started from, for its ``run.json``: the frame index and the mask file,
    the ``[x, y, w, h]`` box and/or the clicks (``points`` ``[[x, y], ...]`` with ``labels``,
    1 object / 0 background) as the user gave them; ``objects``: the object ids."""
    def num(v: Any) -> int | float:
        v = float(v)
        return int(v) if v.is_integer() else v

    rec: dict[str, Any] = {"frame": int(frame)}
    if mask is not None:
        rec["mask"] = str(mask)
    if box is not None:
        rec["box"] = [num(v) for v in box]
    if points:
        rec["points"] = [[num(x), num(y)] for x, y in points]
        rec["labels"] = [int(v) for v in (labels if labels is not None else [1] * len(points))]
    if objects is not None:
        rec["objects"] = sorted(int(k) for k in objects)
    return rec


def speed_report(frames: int, track_seconds: float, wall_seconds: float) -> str:
    """``"tracked 80 frames in 3.1 s (26 fps tracking alone; 19 fps with decoding and
    writing)"``: the tracker's own rate next to the rate a progress bar shows."""
    track_fps = frames / max(track_seconds, 1e-9)
    wall_fps = frames / max(wall_seconds, 1e-9)
    return (f"tracked {frames} frames in {track_seconds:.1f} s ({track_fps:.0f} fps tracking "
            f"alone; {wall_fps:.0f} fps with decoding and writing)")


def _clicks_to_mask(image: np.ndarray, spec: dict, device: str) -> np.ndarray:
    """The first mask of an object given by clicks (and maybe a box)."""
    from segtrack.interactive import Segmenter

    m = Segmenter(device=device).segment(image, box=spec.get("box"), points=spec["points"],
                                         labels=spec.get("labels"))
    if not m.any():
        raise InputError("the clicks select no pixel: click inside the object")
    return m


def _as_frames(source: Any):
    """Accept a path / webcam index / list of paths, or in-memory frames (arrays or Frames)."""
    from segtrack.io import open_source

    if isinstance(source, (list, tuple)) and source and isinstance(source[0], np.ndarray):
        return (Frame(i, f"{i:05d}", img) for i, img in enumerate(source))
    if isinstance(source, (str, Path, int, list, tuple)):
        return open_source(source)
    if hasattr(source, "__iter__"):
        return (
            f if isinstance(f, Frame) else Frame(i, f"{i:05d}", np.asarray(f))
            for i, f in enumerate(source)
        )
    raise InputError(f"cannot read frames from {type(source).__name__}")
