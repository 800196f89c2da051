"""Held-out multi-object clips from real photographs: several similar objects tracked at once.

Each clip holds 3 to 8 objects cut from the *held-out* photographs of ``static-masks``
(:func:`segtrack.data.static.split_static`; no trainer may use them, see
:func:`segtrack.data.static.without_heldout`): half of the clips are several people at once,
the others several instances of one COCO category (the few held-out instances of a category,
and copies of them, each flipped, deformed and coloured on its own), so that objects look alike.
Over a slowly panning and zooming view of one DAVIS-2016-train frame whose own object is
inpainted away, every object

* moves along a smooth path through waypoints (a cubic Hermite spline, so speed varies from
  segment to segment, plus a little smoothed jitter), scales (a trend and a smooth random walk),
  changes aspect and rotates a little, and deforms non-rigidly (a drifting thin-plate spline);
* crosses others (pairs are sent through one meeting point from opposite sides) and occludes
  them in a depth order that drifts, so it can change (with hysteresis: no flicker);
* may enter late (from outside the frame), leave the frame and come back.

Layers are rendered and coloured with :func:`segtrack.data.static.render_layer` (pixels and
mask through the same sampling maps) and pasted back to front with their hard masks: the label
map is exactly the visible part of every object, aligned pixel for pixel.  An object is
annotated from the first frame where at least ``min_init`` of it is visible (the frame a
benchmark initialises it on); its pixels before that frame are void (255, ignored by the
DAVIS measures).  A clip is a pure function of (seed, clip number).

:func:`write_multi_set` writes a set in the DAVIS-2017 layout (``JPEGImages/480p``,
``Annotations/480p`` palette PNGs, ``ImageSets/2017/val.txt``) with a ``meta.json`` that
records seeds, sources, sizes, when each object enters and leaves, and the objects' frames
(YouTube-VOS style, so the DAVIS reader finds the objects that enter late).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from segtrack.data.static import (
    ClipParams,
    Layer,
    StaticClipMaker,
    StaticSample,
    camera_frame,
    load_static_sets,
    motion_blur,
    object_size,
    read_static,
    render_layer,
    split_static,
)
from segtrack.errors import InputError

__all__ = [
    "MultiParams",
    "MultiClip",
    "MultiClipMaker",
    "heldout_objects",
    "write_multi_set",
    "GENERATOR",
    "DEFAULT_SEED",
]

GENERATOR = "segtrack make-clips multi"
DEFAULT_SEED = 20000
VOID = 255


@dataclass
class MultiParams:
    """What a multi-object clip looks like.  Sizes are relative to sqrt(H W) of the frame or
    to an object's size (sqrt of its box area); times to the clip length."""

    frames: int = 48
    size: tuple[int, int] = (360, 640)  # H, W of every frame
    objects: tuple[int, int] = (3, 8)  # objects per clip (inclusive)
    people_share: float = 0.5  # clips of people; the others: one COCO category
    object_size: tuple[float, float] = (0.18, 0.34)  # clip's object size with 3 objects
    crowd_shrink: float = 0.35  # size x (3 / objects) ** this
    size_spread: float = 0.25  # per-object log-size spread within a clip
    max_upscale: float = 2.0  # never enlarge a photo's object more than about this
    min_object: float = 40.0  # photo objects smaller than this (pixels) are not used
    min_piece: float = 0.85  # ... or whose largest connected piece is less of their area
    allow_cut: bool = False  # also use objects that touch their photograph's border
    grid: tuple[float, float] = (0.16, 0.28)  # time between waypoints, x frames
    step: tuple[float, float] = (0.3, 1.3)  # distance between waypoints, x object size
    step_min: float = 0.0  # ... at least 1-2 x this x sqrt(H W) (0: no minimum)
    jitter: float = 0.03  # smoothed positional jitter (std), x object size
    scale_step: float = 0.012  # per-frame log-scale random walk (std)
    scale_trend: float = 0.3  # log-scale trend over the clip, at most (+-)
    scale_clip: float = 0.5  # log-scale range over the clip (+-)
    aspect_step: float = 0.008
    rotate_step: float = 0.6  # degrees per frame (std)
    rotate: float = 6.0  # initial rotation range (+-, degrees)
    tps: float = 0.03  # thin-plate-spline displacement (std), x object size
    tps_step: float = 0.006
    late: float = 0.34  # share of objects entering late (at least one per clip)
    leave: float = 0.34  # share of objects leaving the frame (at least one per clip)
    p_return: float = 0.6  # of those, the share that comes back
    depth_step: float = 0.02  # per-frame depth drift (std; depths start in 0..1)
    depth_margin: float = 0.1  # hysteresis of a depth-order change
    pan: tuple[float, float] = (0.3, 0.9)  # share of the available camera travel used
    zoom: float = 0.08  # camera zoom change over the clip, at most
    background_margin: float = 1.3  # the DAVIS frame is scaled to cover this x the view
    p_blur: float = 0.1  # per frame: motion blur along the camera motion
    blur_max: int = 7
    light: float = 0.15
    light_bias: float = 12.0
    light_step: float = 0.01
    hue: float = 6.0
    saturation: float = 0.2
    min_init: float = 0.3  # annotated from the first frame with this share of it visible
    min_init_px: int = 64  # ... and at least this many pixels
    min_scored: int = 6  # objects first annotated later than frames - this are left out
    jpeg_quality: int = 90

    def __post_init__(self) -> None:
        if self.frames < 12:
            raise InputError(f"--frames {self.frames}: must be at least 12")
        h, w = self.size
        if not (48 <= h <= 2160 and 64 <= w <= 3840):
            raise InputError(f"--size {w}x{h}: must be between 64x48 and 3840x2160")
        lo, hi = self.objects
        if not 1 <= lo <= hi <= 50:
            raise InputError(f"--objects {lo},{hi}: expected 1 <= MIN <= MAX <= 50")


@dataclass
class MultiClip:
    """J frames (RGB uint8 (H, W, 3)) and label maps (uint8 (H, W): 0 background, k object k,
    255 an object not yet annotated); ``backgrounds``: the frames without the objects;
    ``layers``: object id -> its :class:`~segtrack.data.static.Layer` (its pixels at frame j
    are ``render_layer(layers[k], j, size)``); ``info``: what :func:`write_multi_set` records
    in ``meta.json``."""

    frames: list[np.ndarray]
    labels: list[np.ndarray]
    backgrounds: list[np.ndarray]
    layers: dict[int, Layer]
    info: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------------------
# the objects
_COCO_STEM = re.compile(r"^[A-Za-z][A-Za-z \-]*?\d+_(.+)$")


def _photo_key(s: StaticSample) -> tuple[str, str]:
    m = _COCO_STEM.match(s.image.stem)
    return s.source, (m.group(1) if m else s.image.stem)


def heldout_objects(samples: Sequence[StaticSample]) -> list[StaticSample]:
    """The photographs the multi-object clips may use: the held-out part of
    :func:`~segtrack.data.static.split_static`, less those whose photograph is also a training
    photograph (COCO photos with two masked instances), so that no object pixel of a clip
    comes from a training photograph (the DAVIS backgrounds are not held out)."""
    train, held = split_static(samples)
    seen = {_photo_key(s) for s in train}
    return [s for s in held if _photo_key(s) not in seen]


def _usable(mask: np.ndarray, p: MultiParams) -> bool:
    """An object worth pasting: large enough, in one piece (not a group of people, not an
    instance split by what hid it in its photograph) and, unless ``allow_cut``, not cut by its
    photograph's border."""
    if not mask.any() or object_size(mask) < p.min_object:
        return False
    if not p.allow_cut and (mask[0].any() or mask[-1].any() or mask[:, 0].any()
                            or mask[:, -1].any()):
        return False
    _, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    return bool(areas.max() >= p.min_piece * areas.sum())


# ------------------------------------------------------------------------------------------
# paths
def _smooth(rng: np.random.Generator, J: int, dims: int, sigma: float) -> np.ndarray:
    """(J, dims) smoothed white noise of unit std."""
    r = int(3 * sigma) + 3
    n = rng.normal(0.0, 1.0, size=(J + 2 * r, dims))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= np.sqrt((k ** 2).sum())
    return np.stack([np.convolve(n[:, d], k, mode="valid")[:J] for d in range(dims)], 1)


def _hermite(times: np.ndarray, pts: np.ndarray, J: int) -> np.ndarray:
    """(J, 2) positions at frames 0..J-1 of the cubic Hermite spline through ``pts`` at
    ``times`` (Catmull-Rom tangents for uneven times; one-sided at the ends)."""
    n = len(times)
    m = np.zeros_like(pts)
    for i in range(n):
        a, b = max(i - 1, 0), min(i + 1, n - 1)
        m[i] = (pts[b] - pts[a]) / max(times[b] - times[a], 1e-9)
    t = np.arange(J, dtype=np.float64)
    seg = np.clip(np.searchsorted(times, t, side="right") - 1, 0, n - 2)
    t0, t1 = times[seg], times[seg + 1]
    dt = t1 - t0
    u = ((t - t0) / dt)[:, None]
    h00, h10 = 2 * u ** 3 - 3 * u ** 2 + 1, u ** 3 - 2 * u ** 2 + u
    h01, h11 = -2 * u ** 3 + 3 * u ** 2, u ** 3 - u ** 2
    return (h00 * pts[seg] + h10 * dt[:, None] * m[seg] + h01 * pts[seg + 1]
            + h11 * dt[:, None] * m[seg + 1])


def _grid(rng: np.random.Generator, J: int, p: MultiParams) -> np.ndarray:
    lo, hi = (max(3.0, f * J) for f in p.grid)
    times = [0.0]
    while times[-1] < J - 1:
        times.append(times[-1] + rng.uniform(lo, max(lo, hi)))
    times[-1] = J - 1.0
    if len(times) > 2 and times[-1] - times[-2] < lo / 2:
        del times[-2]
    return np.array(times)


def _depth_orders(z: np.ndarray, margin: float) -> list[list[int]]:
    """Per frame the object indices back to front (larger z = farther); two neighbours swap
    only when the one behind is nearer by more than ``margin``."""
    J, n = z.shape
    order = sorted(range(n), key=lambda k: (-z[0, k], k))
    out = []
    for j in range(J):
        for _ in range(n):
            swapped = False
            for i in range(n - 1):
                a, b = order[i], order[i + 1]
                if z[j, a] < z[j, b] - (margin if j else 0.0):
                    order[i], order[i + 1] = b, a
                    swapped = True
            if not swapped:
                break
        out.append(list(order))
    return out


# ------------------------------------------------------------------------------------------
class MultiClipMaker:
    """Makes :class:`MultiClip` s (see the module doc).

    Args:
        samples: the photographs (:func:`~segtrack.data.static.load_static_sets`, whole
            sets); only :func:`heldout_objects` of them are used, or with
            ``objects="training"`` only the training part of the split (training clips).
        davis_root: a DAVIS-2016-style folder (``JPEGImages/480p``, ``Annotations/480p``)
            whose frames become the backgrounds.
        params: what the clips look like.
        backgrounds: the sequence names the backgrounds may come from (default: all).
    """

    def __init__(self, samples: Sequence[StaticSample], davis_root: str | os.PathLike,
                 params: MultiParams | None = None, objects: str = "heldout",
                 backgrounds: Sequence[str] | None = None) -> None:
        from segtrack.eval.datasets import load_davis

        if objects not in ("heldout", "training"):
            raise ValueError(f"objects: {objects!r} (expected 'heldout' or 'training')")
        self.p = params or MultiParams()
        self.davis = load_davis(davis_root)
        if backgrounds is not None:  # e.g. a trainer's own sequences, not its held-out fold
            self.davis = [q for q in self.davis if q.name in set(backgrounds)]
            if not self.davis:
                raise InputError("multi-object clips: none of the background sequences is in "
                                 f"{davis_root}")
        # "training": clips for a trainer, from the photographs it may use (never an object of
        # the held-out set)
        self.held = (heldout_objects(samples) if objects == "heldout"
                     else split_static(samples)[0])
        usable = []
        for s in self.held:
            if _usable(read_static(s)[1], self.p):
                usable.append(s)
        self.people = [s for s in usable if s.kind == "person"]
        self.by_kind: dict[str, list[StaticSample]] = {}
        for s in usable:
            if s.kind != "person":
                self.by_kind.setdefault(s.kind, []).append(s)
        # categories with several distinct instances first, so that fewer clips are copies
        self.kinds = sorted(self.by_kind, key=lambda k: (len(self.by_kind[k]) < 2, k))
        self._several = sum(len(v) >= 2 for v in self.by_kind.values())
        if not self.people and not self.kinds:
            raise InputError("static images: no held-out object is usable (every held-out "
                             "mask is empty, tiny or cut by its photograph's border)")
        self.usable = usable
        H, W = self.p.size
        # the ranges static's layer maker draws flips, deformations and colours from
        self._layers = StaticClipMaker(usable, ClipParams(
            frames=self.p.frames, canvas=(H, W), tps=self.p.tps, tps_step=self.p.tps_step,
            light=self.p.light, light_bias=self.p.light_bias, light_step=self.p.light_step,
            hue=self.p.hue, saturation=self.p.saturation, p_flip=0.5))

    # -- which clip shows what --------------------------------------------------------------
    def theme(self, i: int, seed: int) -> tuple[str, str]:
        """("people" | "category", kind) of clip ``i``: people and categories alternate in
        the share ``people_share``; categories go round a seeded permutation."""
        share = self.p.people_share if self.kinds else 1.0
        share = share if self.people else 0.0

        def people(k: int) -> bool:
            return int(np.floor((k + 1) * share)) > int(np.floor(k * share))

        if people(i):
            return "people", "person"
        m = sum(not people(k) for k in range(i))
        rng = np.random.default_rng([int(seed), 1_000_001])
        a = self._several
        perm = np.r_[rng.permutation(a), a + rng.permutation(len(self.kinds) - a)]
        return "category", self.kinds[int(perm[m % len(perm)])]

    def _background(self, i: int, seed: int, rng: np.random.Generator,
                    ) -> tuple[list[np.ndarray], dict, np.ndarray]:
        bg, off, z, info, motion = self._camera(i, seed, rng)
        frames = [camera_frame(bg, self.p.size, off[j], float(z[j])) for j in range(len(z))]
        return frames, info, motion

    def _camera(self, i: int, seed: int, rng: np.random.Generator,
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict, np.ndarray]:
        """(scaled background image, camera offsets (J, 2), zooms (J,), info, pan vector):
        frame j's background is ``camera_frame(image, size, offsets[j], zooms[j])``."""
        from segtrack.data.lucid import inpaint_background

        p, J = self.p, self.p.frames
        H, W = p.size
        perm = np.random.default_rng([int(seed), 1_000_002]).permutation(len(self.davis))
        seq = self.davis[int(perm[i % len(perm)])]
        cands = sorted(rng.choice(len(seq.frames), size=min(8, len(seq.frames)), replace=False))
        areas = []
        for f in cands:
            lab = seq.read_labels(int(f))
            areas.append(int((lab > 0).sum()) if lab is not None else 0)
        f = int(cands[int(np.argmin(areas))])
        img = seq.read_image(f)
        lab = seq.read_labels(f)
        inpainted = lab is not None and bool((lab > 0).any())
        if inpainted:
            img = inpaint_background(img, lab > 0)
        s = p.background_margin * max(H / img.shape[0], W / img.shape[1])
        bg = cv2.resize(img, (int(np.ceil(img.shape[1] * s)), int(np.ceil(img.shape[0] * s))),
                        interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        z = np.exp(np.linspace(0.0, rng.uniform(-p.zoom, p.zoom), J)) * 1.0
        z = z / min(z.min(), 1.0)  # never zoom out of the scaled frame
        room = np.array([bg.shape[1] - W / z.min(), bg.shape[0] - H / z.min()])
        start = rng.uniform(0, 1, 2) * room
        ang = rng.uniform(-0.35, 0.35) + (np.pi if rng.random() < 0.5 else 0.0)
        travel = rng.uniform(*p.pan) * np.array([np.cos(ang), np.sin(ang)]) * room
        end = np.clip(start + travel, 0, room)
        ease = 0.5 - 0.5 * np.cos(np.pi * np.linspace(0, 1, J))  # starts and stops gently
        off = start + ease[:, None] * (end - start)
        motion = end - start
        info = {"sequence": seq.name, "frame": seq.frames[f].stem, "inpainted": inpainted,
                "pan": [[round(float(v), 1) for v in start], [round(float(v), 1) for v in end]],
                "zoom": [round(float(z[0]), 4), round(float(z[-1]), 4)]}
        return bg, off, z, info, motion

    # -- plan: objects and their paths ------------------------------------------------------
    def _objects(self, rng: np.random.Generator, theme: str, kind: str, n: int,
                 ) -> list[tuple[StaticSample, bool]]:
        """n (photo, is a copy) for the clip: distinct people, or the category's instances
        and copies of them."""
        pool = self.people if theme == "people" else self.by_kind[kind]
        order = list(rng.permutation(len(pool)))
        out = []
        for k in range(n):
            out.append((pool[int(order[k % len(order)])], k >= len(order)))
        return out

    def _plan(self, rng: np.random.Generator, theme: str, kind: str) -> dict:
        p, J = self.p, self.p.frames
        H, W = p.size
        n = int(rng.integers(p.objects[0], p.objects[1] + 1))
        chosen = self._objects(rng, theme, kind, n)
        canvas = float(np.sqrt(H * W))
        base = self._base_size(rng, n, canvas)
        times = _grid(rng, J, p)
        ng = len(times)
        inside = self._presence(rng, n, ng)
        objs = []
        for sample, copy in chosen:
            rgb, mask = read_static(sample)
            osz = object_size(mask)
            size = base * float(np.exp(rng.uniform(-p.size_spread, p.size_spread)))
            log_s = (np.linspace(0.0, rng.uniform(-p.scale_trend, p.scale_trend), J)
                     + np.cumsum(np.r_[0.0, rng.normal(0.0, p.scale_step, J - 1)]))
            log_s = np.clip(log_s, -p.scale_clip, p.scale_clip)
            s0 = min(size / osz, p.max_upscale * 1.25 / float(np.exp(log_s.max())))
            scale = s0 * np.exp(log_s)
            ys, xs = np.nonzero(mask)
            reach = 0.6 * float(scale.max()) * np.hypot(np.ptp(xs) + 1, np.ptp(ys) + 1) + 6
            objs.append({"sample": sample, "copy": copy, "rgb": rgb, "mask": mask,
                         "size": float(scale[0]) * osz, "scale": scale, "reach": reach})
        return self._paths(rng, objs, times, inside, canvas)

    def _base_size(self, rng: np.random.Generator, n: int, canvas: float) -> float:
        """The clip's object size in pixels (each object's is spread around it)."""
        p = self.p
        return rng.uniform(*p.object_size) * canvas * (3.0 / max(n, 3)) ** p.crowd_shrink

    def _presence(self, rng: np.random.Generator, n: int, ng: int) -> np.ndarray:
        """(n, ng) bool: which object is in view at each waypoint (late entries, exits and
        returns)."""
        p = self.p
        inside = np.ones((n, ng), bool)
        late = rng.permutation(n)[:max(1, int(round(p.late * n)))] if n > 1 and ng > 3 else []
        entered = np.zeros(n, int)
        for k in late:
            a = int(rng.integers(1, ng - 1))
            inside[k, :a] = False
            entered[k] = a
        if ng > 4:
            for k in rng.permutation(n)[:max(1, int(round(p.leave * n)))]:
                lo = entered[k] + 2
                if lo > ng - 1:
                    continue
                back = rng.random() < p.p_return and lo <= ng - 2
                b = int(rng.integers(lo, ng - 1 if back else ng))
                inside[k, b:] = False
                if back:
                    inside[k, int(rng.integers(b + 1, ng)):] = True
        if not inside[:, 0].any():
            inside[int(rng.integers(n)), :] = True
        return inside

    def _crossing_pair(self, rng: np.random.Generator, both: list[int]) -> tuple[int, int]:
        """The two objects sent through one meeting point, among ``both``."""
        a, b = (int(v) for v in rng.choice(both, 2, replace=False))
        return a, b

    def _paths(self, rng: np.random.Generator, objs: list[dict], times: np.ndarray,
               inside: np.ndarray, canvas: float) -> dict:
        p, J = self.p, self.p.frames
        H, W = p.size
        n, ng = inside.shape
        # waypoints: a random walk with persistent direction and varying steps, crossing
        # pairs, then the points beyond an edge for the absences
        lo_xy, hi_xy = np.array([0.1 * W, 0.22 * H]), np.array([0.9 * W, 0.78 * H])
        pts = np.zeros((n, ng, 2))
        for k in range(n):
            pts[k, 0] = rng.uniform(lo_xy, hi_xy)
            heading = rng.uniform(-np.pi, np.pi)
            for g in range(1, ng):
                heading += rng.normal(0.0, 0.9)
                step = rng.uniform(*p.step) * objs[k]["size"]
                if p.step_min > 0:  # small objects move too
                    step = max(step, rng.uniform(1.0, 2.0) * p.step_min * canvas)
                nxt = pts[k, g - 1] + step * np.array([np.cos(heading), np.sin(heading)])
                if not ((lo_xy <= nxt) & (nxt <= hi_xy)).all():  # turn back at the stage edge
                    heading += np.pi
                    nxt = pts[k, g - 1] + step * np.array([np.cos(heading), np.sin(heading)])
                pts[k, g] = np.clip(nxt, lo_xy, hi_xy)
        used = np.zeros((n, ng), bool)
        crossings = []
        for _ in range(max(1, n // 2) if ng > 2 else 0):
            g = int(rng.integers(1, ng - 1))
            both = [k for k in range(n) if inside[k, g - 1:g + 2].all() and
                    not used[k, g - 1:g + 2].any()]
            if len(both) < 2:
                continue
            a, b = self._crossing_pair(rng, both)
            P = np.clip(0.5 * (pts[a, g] + pts[b, g]), lo_xy, hi_xy)  # they meet half way
            u = pts[b, g - 1] - pts[a, g - 1]  # ... coming from where they were
            u = u / max(float(np.hypot(*u)), 1e-6)
            v = np.array([-u[1], u[0]])
            D = 0.9 * (objs[a]["size"] + objs[b]["size"])
            d = rng.uniform(-0.2, 0.2) * (objs[a]["size"] + objs[b]["size"]) / 2
            pts[a, g - 1], pts[b, g - 1] = np.clip(P - D * u, lo_xy, hi_xy), np.clip(
                P + D * u, lo_xy, hi_xy)
            pts[a, g], pts[b, g] = P + d * v, P - d * v
            pts[a, g + 1], pts[b, g + 1] = np.clip(P + D * u, lo_xy, hi_xy), np.clip(
                P - D * u, lo_xy, hi_xy)
            used[[a, b], g - 1:g + 2] = True
            crossings.append({"objects": [a, b], "frame": int(round(times[g]))})
        for k in range(n):
            for g0, g1 in _runs(~inside[k]):
                near = g1 if g0 == 0 else g0 - 1  # the inside point next to the absence
                edge = _nearest_edge(pts[k, near], W, H, rng)
                for g in sorted({near, g1} if g1 < ng else {near}):  # out / in near it
                    if not used[k, g]:
                        pts[k, g] = _near_edge(pts[k, g], edge, objs[k]["size"], lo_xy, hi_xy,
                                               rng)
                pts[k, g0:g1] = _beyond(pts[k, near], edge, objs[k]["reach"], W, H)
        paths = []
        for k in range(n):
            o = objs[k]
            centre = _hermite(times, pts[k], J)
            centre = centre + _smooth(rng, J, 2, 3.0) * p.jitter * o["size"]
            paths.append({
                "centre": centre,
                "scale": o["scale"],
                "aspect": rng.uniform(-0.1, 0.1) + np.cumsum(
                    np.r_[0.0, rng.normal(0.0, p.aspect_step, J - 1)]),
                "angle": rng.uniform(-p.rotate, p.rotate) + np.cumsum(
                    np.r_[0.0, rng.normal(0.0, p.rotate_step, J - 1)]),
            })
        z = rng.uniform(0, 1, n)[None, :] + np.cumsum(
            np.vstack([np.zeros((1, n)), rng.normal(0.0, p.depth_step, (J - 1, n))]), 0)
        layers = [self._layers.make_layer(rng, o["rgb"], o["mask"], o["size"], np.zeros(2),
                                          path=paths[k]) for k, o in enumerate(objs)]
        blur = [(j, int(rng.integers(3, max(4, p.blur_max + 1)))) for j in range(J)
                if p.p_blur > 0 and rng.random() < p.p_blur]
        return {"objects": objs, "layers": layers, "z": z, "times": times, "inside": inside,
                "crossings": crossings, "blur": blur}

    # -- rendering --------------------------------------------------------------------------
    def _render(self, layers: list[Layer], z: np.ndarray, bgs: list[np.ndarray],
                ) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray, np.ndarray, list]:
        """(frames, label maps with id = index + 1, visible (J, n), in-frame (J, n) areas,
        depth orders)."""
        J, n = len(bgs), len(layers)
        orders = _depth_orders(z, self.p.depth_margin)
        vis = np.zeros((J, n), np.int64)
        inframe = np.zeros((J, n), np.int64)
        frames, labels = [], []
        for j in range(J):
            out = bgs[j].copy()
            lab = np.zeros(out.shape[:2], np.uint8)
            for k in orders[j]:
                rgb, m, _ = render_layer(layers[k], j, self.p.size)
                out[m] = rgb[m]
                lab[m] = k + 1
                inframe[j, k] = int(m.sum())
            for k in range(n):
                vis[j, k] = int((lab == k + 1).sum())
            frames.append(out)
            labels.append(lab)
        return frames, labels, vis, inframe, orders

    def clip(self, i: int, seed: int = DEFAULT_SEED) -> MultiClip:
        """Clip number ``i`` of the set of seed ``seed`` (generator ``[seed, i]``)."""
        p, J = self.p, self.p.frames
        rng = np.random.default_rng([int(seed), int(i)])
        theme, kind = self.theme(i, seed)
        bgs, bg_info, motion = self._background(i, seed, rng)
        for _attempt in range(8):
            plan = self._plan(rng, theme, kind)
            layers, z = plan["layers"], plan["z"]
            keep = list(range(len(layers)))
            for _pass in range(2):
                frames, labels, vis, inframe, orders = self._render(
                    [layers[k] for k in keep], z[:, keep], bgs)
                full = np.stack([layers[k].mask.sum() * layers[k].scale ** 2 for k in keep], 1)
                ok = (vis >= np.maximum(p.min_init_px, p.min_init * full))
                first = [int(np.argmax(ok[:, c])) if ok[:, c].any() else J for c in
                         range(len(keep))]
                drop = [c for c, f in enumerate(first) if f > J - p.min_scored]
                if not drop:
                    break
                keep = [k for c, k in enumerate(keep) if c not in drop]
            if not drop and len(keep) >= p.objects[0] and min(first) == 0:
                break
        else:
            raise InputError(f"clip {i}: could not place the objects (try other --objects or "
                             "--size)")
        # ids: by first annotated frame, then plan order
        ranked = sorted(range(len(keep)), key=lambda c: (first[c], c))
        new_id = {c + 1: r + 1 for r, c in enumerate(ranked)}
        lut = np.zeros(256, np.uint8)
        for old, new in new_id.items():
            lut[old] = new
        out_labels = []
        for j in range(J):
            lab = lut[labels[j]]
            for c in range(len(keep)):
                if j < first[c]:
                    lab[labels[j] == c + 1] = VOID
            out_labels.append(lab)
        angle = float(np.arctan2(motion[1], motion[0]))
        for j, length in plan["blur"]:
            frames[j] = motion_blur(frames[j], length, angle)
        objs = [plan["objects"][k] for k in keep]
        info_objects: dict[str, dict] = {}
        for c in ranked:
            k = new_id[c + 1]
            o = objs[c]
            seen = vis[:, c] > 0
            labelled = [j for j in range(J) if j >= first[c] and seen[j]]
            outside = inframe[:, c] == 0
            leaves = [j for j in range(first[c] + 1, J) if outside[j] and not outside[j - 1]]
            returns = [j for j in range(first[c] + 1, J) if not outside[j] and outside[j - 1]]
            hidden = [j for j in range(first[c], J) if not outside[j] and not seen[j]]
            s = o["sample"]
            L = layers[keep[c]]
            info_objects[str(k)] = {
                "source": f"{s.source}/{s.image.name}", "kind": s.kind,
                "copy": bool(o["copy"]), "flip": bool(L.flip),
                "first_frame": first[c], "frames": [f"{j:05d}" for j in labelled],
                "void_frames": [j for j in range(first[c]) if vis[j, c] > 0],
                "leaves": leaves, "returns": returns, "fully_hidden": hidden,
                "size_px": {  # sqrt of its whole (unoccluded) area
                    "first": round(float(np.sqrt(full[first[c], c])), 1),
                    "min": round(float(np.sqrt(full[:, c].min())), 1),
                    "max": round(float(np.sqrt(full[:, c].max())), 1)},
                "speed_px": {  # of its centre, per frame
                    "mean": round(float(np.hypot(*np.diff(L.centre, axis=0).T).mean()), 1),
                    "max": round(float(np.hypot(*np.diff(L.centre, axis=0).T).max()), 1)},
                "visible_share_min": round(float(min(
                    (vis[j, c] / max(inframe[j, c], 1) for j in labelled), default=0.0)), 3),
            }
        info = {
            "rng": [int(seed), int(i)], "theme": theme, "kind": kind,
            "size": [p.size[1], p.size[0]], "frames": J, "background": bg_info,
            "objects": info_objects,
            "crossings": [{"objects": sorted(new_id[keep.index(k) + 1] for k in cr["objects"]),
                           "frame": cr["frame"]} for cr in plan["crossings"]
                          if all(k in keep for k in cr["objects"])],
            "depth": [[new_id[c + 1] for c in o] for o in orders],
            "blurred_frames": [j for j, _ in plan["blur"]],
        }
        return MultiClip(frames, out_labels, bgs,
                         {new_id[c + 1]: layers[keep[c]] for c in range(len(keep))}, info)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[(start, end)) of the True runs of a 1-D bool array."""
    out, start = [], None
    for i, v in enumerate(list(mask) + [False]):
        if v and start is None:
            start = i
        elif not v and start is not None:
            out.append((start, i))
            start = None
    return out


def _nearest_edge(ref: np.ndarray, W: int, H: int, rng: np.random.Generator) -> str:
    """The frame edge nearest to ``ref`` (left and right preferred, a little at random)."""
    x, y = float(ref[0]), float(ref[1])
    d = {"left": x / W, "right": 1 - x / W, "top": 1.6 * y / H, "bottom": 1.6 * (1 - y / H)}
    return min(sorted(d), key=lambda e: d[e] + rng.uniform(0, 0.15))


def _near_edge(pt: np.ndarray, edge: str, size: float, lo: np.ndarray, hi: np.ndarray,
               rng: np.random.Generator) -> np.ndarray:
    """``pt`` moved to within about one object size of ``edge``, inside the stage."""
    x, y = float(pt[0]), float(pt[1])
    t = rng.uniform(0.0, 1.0) * size
    if edge == "left":
        x = min(x, lo[0] + t)
    elif edge == "right":
        x = max(x, hi[0] - t)
    elif edge == "top":
        y = min(y, lo[1] + t)
    else:
        y = max(y, hi[1] - t)
    return np.array([x, y])


def _beyond(ref: np.ndarray, edge: str, reach: float, W: int, H: int) -> np.ndarray:
    """A point beyond ``edge`` level with ``ref``, far enough that an object of radius
    ``reach`` there is wholly out of view."""
    x, y = float(ref[0]), float(ref[1])
    if edge == "left":
        return np.array([-reach, y])
    if edge == "right":
        return np.array([W + reach, y])
    if edge == "top":
        return np.array([x, -reach])
    return np.array([x, H + reach])


# ------------------------------------------------------------------------------------------
# the written set
def _is_our_set(out: Path, generator: str = GENERATOR) -> bool:
    try:
        return json.loads((out / "meta.json").read_text(encoding="utf-8")).get(
            "generator") == generator
    except (OSError, ValueError, AttributeError):
        return False


def check_set_output(out: str | os.PathLike, static_dirs: Sequence[str | os.PathLike],
                     davis_root: str | os.PathLike, count: int, overwrite: bool,
                     generator: str) -> tuple[Path, Path, Path]:
    """Check a clip set's inputs and output folder: ``(dest, davis, hidden build folder)``;
    an existing non-empty ``out`` only with ``overwrite`` and when ``generator`` wrote it."""
    from segtrack.io import guard_output

    if count < 1:
        raise InputError(f"--count {count}: must be at least 1")
    davis = Path(davis_root)
    if not (davis / "JPEGImages" / "480p").is_dir():
        raise InputError(f"--davis '{davis_root}': no JPEGImages/480p folder (a DAVIS-2016 "
                         "train copy is expected)")
    dest = Path(out).expanduser()
    if dest.exists() and not dest.is_dir():
        raise InputError(f"--out '{out}' is an existing file")
    guard_output(dest, [*static_dirs, davis], is_dir=True)
    if dest.is_dir() and any(dest.iterdir()):
        if not overwrite:
            raise InputError(f"--out '{out}' is not empty (give --overwrite to replace a set "
                             "written by make-clips)")
        if not _is_our_set(dest, generator):
            raise InputError(f"--out '{out}': refusing to replace a folder that is not a set "
                             "written by make-clips")
    dest.parent.mkdir(parents=True, exist_ok=True)
    return dest, davis, dest.parent / f".{dest.name}.tmp-{uuid.uuid4().hex[:8]}"


def move_into_place(tmp: Path, dest: Path) -> None:
    """Replace ``dest`` by the complete set built in ``tmp``."""
    old = None
    if dest.exists():
        old = dest.parent / f".{dest.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(dest, old)
    os.replace(tmp, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_multi_set(out: str | os.PathLike, static_dirs: Sequence[str | os.PathLike],
                    davis_root: str | os.PathLike, count: int = 12, seed: int = DEFAULT_SEED,
                    params: MultiParams | None = None, *, overwrite: bool = False,
                    quiet: bool = False, objects: str = "heldout") -> dict:
    """Write ``count`` clips (``multi000`` ...) of the set of ``seed`` to ``out`` in the
    DAVIS-2017 layout with ``meta.json``; returns the meta.  The set is built in a hidden
    folder beside ``out`` and moved into place when complete; an existing non-empty ``out``
    is refused unless ``overwrite`` and it is a set written by this function.
    ``objects="training"``: cut from the training photographs (a validation set for tuning,
    see :class:`MultiClipMaker`)."""
    from tqdm import tqdm

    from segtrack.io import MaskWriter, atomic_write_bytes

    p = params or MultiParams()
    dest, davis, tmp = check_set_output(out, static_dirs, davis_root, count, overwrite,
                                        GENERATOR)
    samples = load_static_sets(static_dirs)
    maker = MultiClipMaker(samples, davis, p, objects=objects)
    names = [f"multi{i:03d}" for i in range(count)]
    meta: dict[str, Any] = {
        "generator": GENERATOR, "version": 1, "seed": int(seed), "count": int(count),
        "frames": p.frames, "size": [p.size[1], p.size[0]],
        "params": dataclasses.asdict(p),
        "static": [str(d) for d in static_dirs], "davis": str(davis_root),
        "held_out": {
            "rule": "every 5th photograph of each set and kind, in file-name order "
                    "(segtrack.data.static.split_static), less photographs shared with "
                    "the training part" if objects == "heldout" else
                    "none: objects cut from the training photographs (a validation set)",
            "photographs": len(maker.held), "usable_objects": len(maker.usable),
            "people": len(maker.people), "categories": len(maker.kinds)},
        "background": "one DAVIS-2016-train frame per clip, its object inpainted (Telea), "
                      "seen through a slowly panning and zooming camera",
        "labels": "palette PNGs: k = object k, 255 = void (an object before the frame it is "
                  "first annotated on)",
        "videos": {},
    }
    try:
        enc = [cv2.IMWRITE_JPEG_QUALITY, int(p.jpeg_quality)]
        for i, name in enumerate(tqdm(names, desc="multi clips", unit="clip", disable=quiet)):
            c = maker.clip(i, seed)
            jdir = tmp / "JPEGImages" / "480p" / name
            jdir.mkdir(parents=True, exist_ok=True)
            writer = MaskWriter(tmp / "Annotations" / "480p" / name)
            for j, (frame, lab) in enumerate(zip(c.frames, c.labels, strict=True)):
                ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(frame[..., ::-1]), enc)
                if not ok:
                    raise InputError(f"clip {name}: cannot encode frame {j}")
                atomic_write_bytes(jdir / f"{j:05d}.jpg", buf.tobytes())
                writer.write(f"{j:05d}", lab)
            meta["videos"][name] = c.info
        atomic_write_bytes(tmp / "ImageSets" / "2017" / "val.txt",
                           ("\n".join(names) + "\n").encode())
        atomic_write_bytes(tmp / "meta.json", (json.dumps(meta, indent=1) + "\n").encode())
        move_into_place(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta
