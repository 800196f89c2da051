"""Training clips synthesised from still photographs with an object mask (static-image
pre-training: seed 000 "MaskTrack" offline training on deformed static images, "LucidTrack" data
dreaming; the STM-style "stage 0" of video object segmentation).

From one photograph and its object mask, :class:`StaticClipMaker` makes a clip of J frames in
which the object and the background move independently: the object follows a random walk of
translation, scale, aspect change and rotation (and a horizontal flip), deforms non-rigidly with
a thin-plate spline whose control points drift from frame to frame, and changes illumination and
colour on its own; the background is another photograph (or the object's own photograph with the
object inpainted away) that moves like a camera.  Optional, each with its probability:

* **distractors** - a second copy of the same object, deformed, flipped and coloured
  differently, or another object of the same kind (same COCO category, another person), placed
  next to the target and moving on its own, behind or in front of it: the clip teaches *which*
  of two similar things is the target;
* **occluders** - an object of another photograph crossing the target during the clip;
* **motion blur** along the target's motion, and frame-wide colour jitter.

Every layer (target, distractor, occluder) is warped with one pair of sampling maps that is used
for its pixels *and* its mask, and composited with that warped mask, so each output mask is
aligned with the pixels it labels; the target mask is what stays visible after the layers in
front of it.  Everything is drawn from the generator passed in, so a clip is a pure function of
its seed.

Departures from the papers: Lucid inpaints and re-pastes the object within its own image only
(we also paste it onto other photographs, MaskTrack/STM style); STM's stage 0 uses affine
transforms only (we add the thin-plate spline, the distractors and the occluders).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from segtrack.errors import InputError

__all__ = [
    "HOLDOUT_EVERY",
    "StaticSample",
    "load_static_sets",
    "read_static",
    "split_static",
    "without_heldout",
    "ClipParams",
    "StaticClip",
    "StaticClipMaker",
    "Layer",
    "camera_frame",
    "colour_jitter",
    "cut_object",
    "motion_blur",
    "object_size",
    "random_walk",
    "render_layer",
    "tps_field",
]

_IMAGE_EXT = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


# ------------------------------------------------------------------------------------------
# the photographs
@dataclass(frozen=True)
class StaticSample:
    """One photograph and its object mask; ``kind`` groups objects of the same sort (a COCO
    category, ``person``) for same-kind distractors."""

    image: Path
    mask: Path
    kind: str
    source: str


def _kind_of(set_name: str, stem: str) -> str:
    m = re.match(r"^([A-Za-z][A-Za-z \-]*?)\d+_", stem)
    if m:
        return m.group(1).strip().lower()
    low = set_name.lower()
    if "person" in low or "human" in low or "people" in low:
        return "person"
    return low


def _one_set(d: Path) -> list[StaticSample]:
    images, masks = d / "images", d / "masks"
    if not images.is_dir() or not masks.is_dir():
        return []
    out = []
    for p in sorted(images.iterdir()):
        if p.suffix.lower() not in _IMAGE_EXT:
            continue
        m = masks / (p.stem + ".png")
        if m.is_file():
            out.append(StaticSample(p, m, _kind_of(d.name, p.stem), d.name))
    return out


def load_static_sets(dirs: Iterable[str | os.PathLike]) -> list[StaticSample]:
    """The photographs of each folder: a folder with ``images/`` and ``masks/`` (``<name>.jpg`` +
    ``<name>.png``, white = the object), or a folder of such folders (``static-masks/``)."""
    samples: list[StaticSample] = []
    for d in dirs:
        root = Path(d)
        if not root.is_dir():
            raise InputError(f"--static '{d}': no such folder")
        found = _one_set(root)
        if not found:
            for sub in sorted(p for p in root.iterdir() if p.is_dir()):
                found.extend(_one_set(sub))
        if not found:
            raise InputError(
                f"--static '{d}': no images/ and masks/ folders with matching files found"
            )
        samples.extend(found)
    return samples


def read_static(sample: StaticSample) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 (H, W, 3), bool mask (H, W)) of a sample."""
    bgr = cv2.imread(str(sample.image), cv2.IMREAD_COLOR)
    m = cv2.imread(str(sample.mask), cv2.IMREAD_GRAYSCALE)
    if bgr is None or m is None:
        raise InputError(f"static image '{sample.image}': cannot be read")
    if m.shape != bgr.shape[:2]:
        m = cv2.resize(m, (bgr.shape[1], bgr.shape[0]), interpolation=cv2.INTER_NEAREST)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), m > 127


# ------------------------------------------------------------------------------------------
# the held-out photographs
HOLDOUT_EVERY = 5  # every 5th photograph of each set and kind is held out


def split_static(samples: Sequence[StaticSample], every: int = HOLDOUT_EVERY,
                 ) -> tuple[list[StaticSample], list[StaticSample]]:
    """(train, held-out) photographs, the one split every part of segtrack uses: within each
    (set, kind) group, in file-name order, the ``every``-th, (2 ``every``)-th ... photograph is
    held out (COCO-MVal: 2 of each category's 10; the people sets: one in 5).  Both lists are
    in group order; the split does not depend on the order of ``samples``, only on which
    photographs of a set are listed (list whole sets)."""
    groups: dict[tuple[str, str], list[StaticSample]] = {}
    for s in sorted(samples, key=lambda q: str(q.image)):
        groups.setdefault((s.source, s.kind), []).append(s)
    train: list[StaticSample] = []
    held: list[StaticSample] = []
    for g in groups.values():
        for i, s in enumerate(g):
            (held if i % every == every - 1 else train).append(s)
    return train, held


def without_heldout(samples: Sequence[StaticSample], every: int = HOLDOUT_EVERY,
                    ) -> list[StaticSample]:
    """``samples`` less the held-out photographs of :func:`split_static`, in their order: what
    a trainer may use when its model is to be scored on the held-out part (the click-to-mask
    benchmark, the multi-object clips of :mod:`segtrack.data.multi`)."""
    held = set(split_static(samples, every)[1])
    return [s for s in samples if s not in held]


# ------------------------------------------------------------------------------------------
# thin-plate spline
def _tps_kernel(r2: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        k = 0.5 * r2 * np.log(r2)
    return np.nan_to_num(k, nan=0.0, posinf=0.0, neginf=0.0)


def tps_field(shape: tuple[int, int], ctrl: np.ndarray, disp: np.ndarray,
              step: int = 8) -> np.ndarray:
    """Dense displacement field (H, W, 2) float32 of the thin-plate spline that moves control
    points ``ctrl`` (N, 2, pixels x/y) by ``disp`` (N, 2); evaluated every ``step`` pixels and
    interpolated (the spline is smooth, so this loses nothing visible)."""
    h, w = shape
    n = len(ctrl)
    d2 = ((ctrl[:, None, :] - ctrl[None, :, :]) ** 2).sum(-1)
    P = np.hstack([np.ones((n, 1)), ctrl])
    L = np.zeros((n + 3, n + 3))
    L[:n, :n] = _tps_kernel(d2) + 1e-6 * np.eye(n)
    L[:n, n:] = P
    L[n:, :n] = P.T
    rhs = np.zeros((n + 3, 2))
    rhs[:n] = disp
    coef = np.linalg.solve(L, rhs)
    gh, gw = max(2, -(-h // step) + 1), max(2, -(-w // step) + 1)
    ys, xs = np.meshgrid(np.linspace(0, h - 1, gh), np.linspace(0, w - 1, gw), indexing="ij")
    pts = np.stack([xs.ravel(), ys.ravel()], 1)
    r2 = ((pts[:, None, :] - ctrl[None, :, :]) ** 2).sum(-1)
    val = _tps_kernel(r2) @ coef[:n] + coef[n] + pts @ coef[n + 1:]
    coarse = val.reshape(gh, gw, 2).astype(np.float32)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR)


# ------------------------------------------------------------------------------------------
# clip synthesis
@dataclass
class ClipParams:
    """Ranges of the synthesised motion and appearance (sizes are relative to the object's size
    = sqrt of its box area, or to the canvas).  Probabilities are per clip."""

    frames: int = 3
    canvas: tuple[int, int] = (384, 640)  # H, W of every frame
    object_size: tuple[float, float] = (0.15, 0.45)  # object size / canvas size
    max_upscale: float = 2.0  # never enlarge a photo's object more than this
    motion: float = 0.15  # per-frame object translation (std), x object size
    scale_step: float = 0.08  # per-frame log-scale change (std)
    aspect_step: float = 0.05  # per-frame log-aspect change (std)
    rotate_step: float = 6.0  # per-frame rotation (std, degrees)
    tps: float = 0.06  # thin-plate-spline control-point displacement (std), x object size
    tps_step: float = 0.03  # its per-frame drift (std)
    bg_motion: float = 0.03  # per-frame camera translation (std), x canvas size
    bg_scale_step: float = 0.03
    p_flip: float = 0.5
    p_other_background: float = 0.8  # else: the photo itself with the object inpainted
    p_distractor: float = 0.5
    p_distractor_copy: float = 0.5  # of the distractors: a copy of the target (else same kind)
    distractor_gap: tuple[float, float] = (0.5, 1.2)  # centre distance / sum of half-sizes
    p_distractor_front: float = 0.4
    p_occluder: float = 0.25
    occluder_size: tuple[float, float] = (0.3, 0.7)  # occluder size / target size
    p_blur: float = 0.25  # per frame
    blur_max: int = 9  # longest blur kernel (pixels)
    light: float = 0.2  # illumination gain range (+-), per layer
    light_bias: float = 15.0  # brightness offset range (+-, grey levels)
    light_step: float = 0.04  # per-frame illumination drift (std)
    hue: float = 8.0  # hue shift range (+-, OpenCV hue units of 180)
    saturation: float = 0.25  # saturation gain range (+-)
    min_visible: float = 0.35  # frame 0 keeps at least this fraction of the target visible

    def __post_init__(self) -> None:
        if self.frames < 1:
            raise InputError(f"frames {self.frames}: must be at least 1")


@dataclass
class StaticClip:
    """J frames (RGB uint8 (H, W, 3)), the visible target mask of each (bool (H, W)), the visible
    distractor mask of each (all False without a distractor), and what the clip contains."""

    frames: list[np.ndarray]
    masks: list[np.ndarray]
    distractor_masks: list[np.ndarray]
    source: StaticSample
    info: dict = field(default_factory=dict)


@dataclass
class Layer:
    """An object cut out of a photo: a crop around it, its mask, and its path over the clip."""

    rgb: np.ndarray  # (h, w, 3) uint8 crop around the object
    mask: np.ndarray  # (h, w) bool
    centre: np.ndarray  # (J, 2) canvas position of the crop's object centre
    scale: np.ndarray  # (J,)
    aspect: np.ndarray  # (J,) log aspect
    angle: np.ndarray  # (J,) degrees
    flip: bool
    fields: list[np.ndarray | None]  # per-frame TPS displacement (crop coords) or None
    light: np.ndarray  # (J, 3): gain, bias, gamma
    hue: float
    sat: float


def cut_object(rgb: np.ndarray, mask: np.ndarray, margin: float = 0.15,
               ) -> tuple[np.ndarray, np.ndarray]:
    """(crop, crop mask) of the object's box grown by ``margin`` of its size on each side."""
    ys, xs = np.nonzero(mask)
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    mx, my = int((x1 - x0) * margin) + 2, int((y1 - y0) * margin) + 2
    x0, y0 = max(0, x0 - mx), max(0, y0 - my)
    x1, y1 = min(mask.shape[1], x1 + mx), min(mask.shape[0], y1 + my)
    return np.ascontiguousarray(rgb[y0:y1, x0:x1]), mask[y0:y1, x0:x1].copy()


def object_size(mask: np.ndarray) -> float:
    """sqrt of the area of the mask's tight box (pixels)."""
    ys, xs = np.nonzero(mask)
    return float(np.sqrt((xs.max() - xs.min() + 1) * (ys.max() - ys.min() + 1)))


def random_walk(rng: np.random.Generator, J: int, std: float, start: float = 0.0) -> np.ndarray:
    """(J,) Gaussian random walk from ``start`` (step std ``std``; frame 0 is ``start``)."""
    steps = rng.normal(0.0, std, size=J)
    steps[0] = 0.0
    return start + np.cumsum(steps)


def render_layer(L: Layer, j: int, canvas: tuple[int, int],
                 ) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    """(rgb uint8 (H, W, 3), mask bool (H, W), footprint box (x0, y0, x1, y1)) of layer ``L``
    at frame ``j`` on a canvas of ``canvas`` = (H, W): pixels and mask are sampled with the
    same maps (computed only over the layer's footprint), colour-changed pixels included."""
    H, W = canvas
    h, w = L.mask.shape
    c = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    s, a = float(L.scale[j]), float(L.aspect[j])
    sx, sy = s * np.exp(a / 2), s * np.exp(-a / 2)
    th = np.deg2rad(float(L.angle[j]))
    R = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    A = R @ np.diag([(-sx if L.flip else sx), sy])  # crop offset -> canvas offset
    corners = (np.array([[0, 0], [w, 0], [0, h], [w, h]]) - c) @ A.T + L.centre[j]
    x0 = int(np.clip(np.floor(corners[:, 0].min()) - 2, 0, W))
    x1 = int(np.clip(np.ceil(corners[:, 0].max()) + 2, 0, W))
    y0 = int(np.clip(np.floor(corners[:, 1].min()) - 2, 0, H))
    y1 = int(np.clip(np.ceil(corners[:, 1].max()) + 2, 0, H))
    out_rgb = np.zeros((H, W, 3), np.uint8)
    out_m = np.zeros((H, W), bool)
    if x1 <= x0 or y1 <= y0:
        return out_rgb, out_m, (0, 0, 0, 0)
    gx, gy = np.meshgrid(np.arange(x0, x1, dtype=np.float64),
                         np.arange(y0, y1, dtype=np.float64))
    Ai = np.linalg.inv(A)
    dx, dy = gx - L.centre[j, 0], gy - L.centre[j, 1]
    mx = (Ai[0, 0] * dx + Ai[0, 1] * dy + c[0]).astype(np.float32)
    my = (Ai[1, 0] * dx + Ai[1, 1] * dy + c[1]).astype(np.float32)
    fld = L.fields[j]
    if fld is not None:  # backward TPS displacement, looked up at the undeformed position
        fx = cv2.remap(fld[..., 0], mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        fy = cv2.remap(fld[..., 1], mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        mx, my = mx + fx, my + fy
    rgb = cv2.remap(L.rgb, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    m = cv2.remap(L.mask.astype(np.float32), mx, my, cv2.INTER_LINEAR,
                  borderMode=cv2.BORDER_CONSTANT, borderValue=0) > 0.5
    out_rgb[y0:y1, x0:x1] = colour_jitter(rgb, L.light[j], L.hue, L.sat)
    out_m[y0:y1, x0:x1] = m
    return out_rgb, out_m, (x0, y0, x1, y1)


def colour_jitter(rgb: np.ndarray, light: np.ndarray, hue: float, sat: float) -> np.ndarray:
    """Illumination (gain, bias, gamma through one look-up table) and a hue / saturation
    change of an RGB image; uint8 in and out."""
    gain, bias, gamma = (float(v) for v in light)
    lut = np.clip((np.arange(256) / 255.0) ** gamma * 255.0 * gain + bias + 0.5, 0, 255)
    x = cv2.LUT(rgb, lut.astype(np.uint8))
    if abs(hue) < 0.5 and abs(sat - 1.0) < 1e-3:
        return x
    hsv = cv2.cvtColor(x, cv2.COLOR_RGB2HSV)
    hsv[..., 0] = ((hsv[..., 0].astype(np.int16) + int(round(hue))) % 180).astype(np.uint8)
    slut = np.clip(np.arange(256) * sat + 0.5, 0, 255).astype(np.uint8)
    hsv[..., 1] = cv2.LUT(hsv[..., 1], slut)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


class StaticClipMaker:
    """Makes :class:`StaticClip` s from a list of photographs (see the module doc).

    Args:
        samples: the photographs (:func:`load_static_sets`); the backgrounds, distractors and
            occluders come from the same list.
        params: the ranges of the transformations.
        min_object: photos whose object box is smaller than this many pixels (sqrt of its
            area) are skipped as targets.
    """

    def __init__(self, samples: Sequence[StaticSample], params: ClipParams | None = None,
                 min_object: float = 24.0) -> None:
        if not samples:
            raise InputError("static images: none given")
        self.samples = list(samples)
        self.p = params or ClipParams()
        self.min_object = float(min_object)
        self.by_kind: dict[str, list[int]] = {}
        for i, s in enumerate(self.samples):
            self.by_kind.setdefault(s.kind, []).append(i)

    # -- public ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.samples)

    def numbered(self, i: int, seed: int) -> StaticClip:
        """Clip number ``i`` of a series: photo ``i mod N``, generator ``[seed, i]`` (how every
        trainer draws its clips, so the same i and seed always give the same clip)."""
        return self.clip(int(i) % len(self.samples), np.random.default_rng([int(seed), int(i)]))

    def clip(self, index: int, rng: np.random.Generator) -> StaticClip:
        """A clip whose target is photo ``index`` (the next usable one if its object is tiny)."""
        for k in range(len(self.samples)):
            i = (int(index) + k) % len(self.samples)
            rgb, mask = read_static(self.samples[i])
            if mask.any() and object_size(mask) >= self.min_object:
                return self._make(i, rgb, mask, rng)
        raise InputError("static images: every object mask is empty or tiny")

    # -- layers ---------------------------------------------------------------------------
    def _path(self, rng: np.random.Generator, crop_mask: np.ndarray, size_px: float,
              centre0: np.ndarray, motion_scale: float = 1.0) -> dict:
        p, J = self.p, self.p.frames
        osz = object_size(crop_mask)
        scale0 = size_px / osz
        step = rng.normal(0.0, p.motion * size_px * motion_scale, size=(J, 2))
        step[0] = 0.0
        drift = rng.normal(0.0, 0.5 * p.motion * size_px * motion_scale, size=2)
        centre = centre0 + np.cumsum(step, 0) + np.arange(J)[:, None] * drift
        return {
            "centre": centre,
            "scale": scale0 * np.exp(random_walk(rng, J, p.scale_step)),
            "aspect": random_walk(rng, J, p.aspect_step, rng.uniform(-0.15, 0.15)),
            "angle": random_walk(rng, J, p.rotate_step, rng.uniform(-12, 12)),
        }

    def _fields(self, rng: np.random.Generator, crop_mask: np.ndarray) -> list:
        p, J = self.p, self.p.frames
        if p.tps <= 0:
            return [None] * J
        h, w = crop_mask.shape
        osz = object_size(crop_mask)
        g = np.linspace(0.0, 1.0, 4)
        ctrl = np.stack(np.meshgrid(g * (w - 1), g * (h - 1)), -1).reshape(-1, 2)
        disp = rng.normal(0.0, p.tps * osz, size=ctrl.shape)
        out = []
        for j in range(J):
            if j:
                disp = disp + rng.normal(0.0, p.tps_step * osz, size=ctrl.shape)
            out.append(tps_field((h, w), ctrl, disp))
        return out

    def _light(self, rng: np.random.Generator) -> np.ndarray:
        p, J = self.p, self.p.frames
        gain = np.exp(random_walk(rng, J, p.light_step, rng.uniform(-p.light, p.light)))
        bias = random_walk(rng, J, p.light_step * 100, rng.uniform(-p.light_bias, p.light_bias))
        gamma = np.exp(random_walk(rng, J, p.light_step, rng.uniform(-p.light, p.light)))
        return np.stack([gain, bias, gamma], 1)

    def make_layer(self, rng: np.random.Generator, rgb: np.ndarray, mask: np.ndarray,
                   size_px: float, centre0: np.ndarray, motion_scale: float = 1.0,
                   path: dict | None = None) -> Layer:
        """The object of (``rgb``, ``mask``) as a layer of ``self.p.frames`` frames: flip,
        drifting thin-plate spline, illumination and colour drawn from ``rng``; its path (canvas
        ``centre`` (J, 2), ``scale`` (J,) over the crop, log ``aspect`` (J,), ``angle`` (J,)
        degrees) is ``path`` when given, else a random walk of size ``size_px`` from
        ``centre0``."""
        crop, cm = cut_object(rgb, mask)
        if path is None:
            path = self._path(rng, cm, size_px, centre0, motion_scale)
        return Layer(
            rgb=crop, mask=cm, flip=bool(rng.random() < self.p.p_flip),
            fields=self._fields(rng, cm), light=self._light(rng),
            hue=float(rng.uniform(-self.p.hue, self.p.hue)),
            sat=float(np.exp(rng.uniform(-self.p.saturation, self.p.saturation))), **path,
        )

    def _render_layer(self, L: Layer, j: int) -> tuple[np.ndarray, np.ndarray, tuple]:
        return render_layer(L, j, self.p.canvas)

    _colour = staticmethod(colour_jitter)

    def _background(self, rng: np.random.Generator, index: int, rgb: np.ndarray,
                    mask: np.ndarray) -> tuple[list[np.ndarray], str]:
        p, J = self.p, self.p.frames
        H, W = p.canvas
        if len(self.samples) > 1 and rng.random() < p.p_other_background:
            k = int(rng.integers(len(self.samples) - 1))
            k = k + (k >= index)
            bg, _ = read_static(self.samples[k])
            kind = "other"
        else:
            from segtrack.data.lucid import inpaint_background

            bg = inpaint_background(rgb, mask)
            kind = "inpainted"
        # cover the canvas with a margin so that the camera can move
        s = 1.15 * max(H / bg.shape[0], W / bg.shape[1])
        bg = cv2.resize(bg, (int(np.ceil(bg.shape[1] * s)), int(np.ceil(bg.shape[0] * s))),
                        interpolation=cv2.INTER_LINEAR)
        if rng.random() < 0.5:
            bg = bg[:, ::-1].copy()
        off = np.array([rng.uniform(0, bg.shape[1] - W), rng.uniform(0, bg.shape[0] - H)])
        t = off + np.cumsum(rng.normal(0, p.bg_motion * np.array([W, H]), size=(J, 2)) *
                            (np.arange(J)[:, None] > 0), 0)
        zoom = np.exp(random_walk(rng, J, p.bg_scale_step))
        light = self._light(rng)
        hue = float(rng.uniform(-p.hue, p.hue))
        sat = float(np.exp(rng.uniform(-p.saturation, p.saturation)))
        frames = []
        for j in range(J):
            frame = camera_frame(bg, p.canvas, t[j], float(zoom[j]))
            frames.append(self._colour(frame, light[j], hue, sat))
        return frames, kind

    def _other(self, rng: np.random.Generator, index: int, same_kind: bool,
               ) -> tuple[np.ndarray, np.ndarray] | None:
        pool = self.by_kind.get(self.samples[index].kind, []) if same_kind else range(
            len(self.samples))
        pool = [k for k in pool if k != index]
        for _ in range(4):
            if not pool:
                return None
            k = pool[int(rng.integers(len(pool)))]
            rgb, m = read_static(self.samples[k])
            if m.any() and object_size(m) >= 8:
                return rgb, m
        return None

    # -- the clip -------------------------------------------------------------------------
    def _make(self, index: int, rgb: np.ndarray, mask: np.ndarray,
              rng: np.random.Generator) -> StaticClip:
        p, J = self.p, self.p.frames
        H, W = p.canvas
        canvas_size = float(np.sqrt(H * W))
        osz = object_size(mask)
        size = rng.uniform(*p.object_size) * canvas_size
        size = min(size, osz * p.max_upscale)
        centre0 = np.array([rng.uniform(0.3, 0.7) * W, rng.uniform(0.3, 0.7) * H])
        target = self.make_layer(rng, rgb, mask, size, centre0)
        backgrounds, bg_kind = self._background(rng, index, rgb, mask)
        info: dict = {"background": bg_kind, "distractor": None, "occluder": False,
                      "blur": [], "flip": target.flip}

        distractor, d_front = None, False
        if rng.random() < p.p_distractor:
            copy = rng.random() < p.p_distractor_copy
            other = None if copy else self._other(rng, index, same_kind=True)
            src = (rgb, mask) if other is None else other
            dsize = size * float(np.exp(rng.uniform(-0.3, 0.3)))
            ang = rng.uniform(0, 2 * np.pi)
            gap = rng.uniform(*p.distractor_gap) * (size + dsize) / 2
            dc = centre0 + gap * np.array([np.cos(ang), np.sin(ang)])
            distractor = self.make_layer(rng, *src, dsize, dc)
            d_front = bool(rng.random() < p.p_distractor_front)
            info["distractor"] = "copy" if other is None else "same-kind"
            info["distractor_front"] = d_front

        occluder = None
        if rng.random() < p.p_occluder:
            got = self._other(rng, index, same_kind=False)
            if got is not None:
                osize = size * rng.uniform(*p.occluder_size)
                ang = rng.uniform(0, 2 * np.pi)
                start = centre0 + 1.1 * (size + osize) / 2 * np.array([np.cos(ang), np.sin(ang)])
                occluder = self.make_layer(rng, *got, osize, start, motion_scale=0.3)
                if J > 1:  # cross the target: from beside it at frame 0 to beyond it at the end
                    lin = np.linspace(0.0, 1.0, J)[:, None]
                    end = target.centre[-1] - (start - centre0) * rng.uniform(0.3, 1.0)
                    occluder.centre = occluder.centre + lin * (end - start)
                info["occluder"] = True

        frames, masks, dmasks = [], [], []
        for j in range(J):
            out = backgrounds[j].copy()
            t_rgb, t_m, _ = self._render_layer(target, j)
            full_area = max(int(t_m.sum()), 1)
            d_m = np.zeros((H, W), bool)
            layers = []
            if distractor is not None:
                d_rgb, d_m, _ = self._render_layer(distractor, j)
                layers = [(t_rgb, t_m, "t"), (d_rgb, d_m, "d")] if d_front else [
                    (d_rgb, d_m, "d"), (t_rgb, t_m, "t")]
            else:
                layers = [(t_rgb, t_m, "t")]
            if occluder is not None:
                o_rgb, o_m, _ = self._render_layer(occluder, j)
                layers.append((o_rgb, o_m, "o"))
            vis_t, vis_d = t_m.copy(), d_m.copy()
            for k, (lr, lm, name) in enumerate(layers):
                out[lm] = lr[lm]
                for _, fm, _n in layers[k + 1:]:
                    if name == "t":
                        vis_t &= ~fm
                    elif name == "d":
                        vis_d &= ~fm
            if j == 0 and vis_t.sum() < p.min_visible * full_area:
                # keep the first frame usable as an annotation: drop what hides the target
                out, vis_t, vis_d = backgrounds[0].copy(), t_m.copy(), np.zeros((H, W), bool)
                if distractor is not None and not d_front:
                    out[d_m] = layers[0][0][d_m]
                    vis_d = d_m & ~t_m
                out[t_m] = t_rgb[t_m]
            if p.p_blur > 0 and rng.random() < p.p_blur:
                k = int(rng.integers(3, max(4, p.blur_max + 1)))
                if j:
                    v = target.centre[j] - target.centre[j - 1]
                    ang = float(np.arctan2(v[1], v[0])) if np.hypot(*v) > 0.5 else rng.uniform(
                        0, np.pi)
                else:
                    ang = rng.uniform(0, np.pi)
                out = motion_blur(out, k, ang)
                info["blur"].append(j)
            frames.append(out)
            masks.append(vis_t)
            dmasks.append(vis_d)
        return StaticClip(frames, masks, dmasks, self.samples[index], info)


def camera_frame(image: np.ndarray, canvas: tuple[int, int], offset: np.ndarray | Sequence[float],
                 zoom: float) -> np.ndarray:
    """The ``canvas`` = (H, W) view of ``image`` by a camera at ``offset`` (x, y: the image
    point at the view's top-left corner) zoomed by ``zoom`` (bilinear, borders reflected)."""
    H, W = canvas
    z = float(zoom)
    M = np.array([[1 / z, 0, offset[0]], [0, 1 / z, offset[1]]], np.float64)  # canvas -> image
    return cv2.warpAffine(image, M, (W, H), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REFLECT)


def motion_blur(img: np.ndarray, length: int, angle: float) -> np.ndarray:
    """``img`` blurred along a line of ``length`` pixels at ``angle`` (radians)."""
    k = np.zeros((length, length), np.float32)
    c = (length - 1) / 2.0
    dx, dy = np.cos(angle) * c, np.sin(angle) * c
    cv2.line(k, (int(round(c - dx)), int(round(c - dy))), (int(round(c + dx)), int(round(c + dy))),
             1.0, 1)
    k /= max(k.sum(), 1e-6)
    return cv2.filter2D(img, -1, k, borderType=cv2.BORDER_REFLECT)
