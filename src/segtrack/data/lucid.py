"""Training-data simulation for the one-shot family (seed 000 "MaskTrack", "LucidTrack"; seed 002
"MaskTrack: training inputs can be simulated", "Lucid: clever data augmentation").

* :func:`simulate_previous_mask` - MaskTrack's simulated previous-frame masks from an annotated
  mask: affine jitter, non-rigid deformation, dilation / erosion, and coarsening to blobs or a
  box (Perazzi/Khoreva et al. 2017, Fig. 3 "example training masks").
* :func:`dream_frame` / :func:`dream_pair` - Lucid data dreaming (Khoreva et al. 2019): from one
  annotated frame, cut the object out, inpaint the background, deform object and background
  separately (affine + smooth non-rigid field), change their illumination separately and paste
  the object at a new place; pairs are two consecutive "frames" of one dream (small relative
  motion) with both masks, the first being the second's previous mask.

The object layer and its mask are warped with the *same* sampling maps and the composite uses
that warped mask, so a dreamed mask is aligned with its image pixel for pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


# ------------------------------------------------------------------------------------------
# geometric helpers
def _affine(cx: float, cy: float, angle_deg: float, scale: float, tx: float, ty: float,
            ) -> np.ndarray:
    """2x3 matrix: rotate/scale about (cx, cy), then translate by (tx, ty) (forward map)."""
    m = cv2.getRotationMatrix2D((float(cx), float(cy)), float(angle_deg), float(scale))
    m[0, 2] += tx
    m[1, 2] += ty
    return m


def smooth_field(shape: tuple[int, int], rng: np.random.Generator, amplitude: float,
                 grid: int = 4) -> np.ndarray:
    """A smooth random displacement field (H, W, 2) float32, values about +-``amplitude`` px."""
    h, w = shape
    coarse = rng.uniform(-1, 1, size=(grid, grid, 2)).astype(np.float32) * float(amplitude)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)


def _maps(shape: tuple[int, int], forward: np.ndarray, field: np.ndarray | None,
          ) -> tuple[np.ndarray, np.ndarray]:
    """Backward sampling maps for the forward affine ``forward`` followed by ``field``."""
    h, w = shape
    inv = cv2.invertAffineTransform(forward)
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    if field is not None:
        gx = gx + field[..., 0]
        gy = gy + field[..., 1]
    mx = inv[0, 0] * gx + inv[0, 1] * gy + inv[0, 2]
    my = inv[1, 0] * gx + inv[1, 1] * gy + inv[1, 2]
    return mx.astype(np.float32), my.astype(np.float32)


def warp_mask(mask: np.ndarray, mx: np.ndarray, my: np.ndarray) -> np.ndarray:
    """Warp a bool mask with backward maps (bilinear on {0,1}, then > 0.5)."""
    out = cv2.remap(mask.astype(np.float32), mx, my, cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out > 0.5


def _box_of(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


# ------------------------------------------------------------------------------------------
# MaskTrack: simulated previous masks
def simulate_previous_mask(mask: np.ndarray, rng: np.random.Generator, *,
                           shift: float = 0.08, scale: float = 0.08, rotate: float = 8.0,
                           nonrigid: float = 0.06, morph: float = 0.04,
                           p_coarse: float = 0.2, p_empty: float = 0.0) -> np.ndarray:
    """A plausible "previous frame" mask made from the annotation ``mask`` (bool (H, W)).

    Affine jitter (shift / scale relative to the object size, rotation in degrees), a smooth
    non-rigid deformation (``nonrigid`` x object size), dilation or erosion (``morph`` x size)
    and, with probability ``p_coarse``, coarsening to blobs (a heavy blur + threshold) or to
    the bounding box.  An empty input (or, with probability ``p_empty``) gives an empty mask.
    """
    mask = np.asarray(mask, bool)
    if not mask.any() or rng.random() < p_empty:
        return np.zeros_like(mask)
    h, w = mask.shape
    x0, y0, x1, y1 = _box_of(mask)
    size = max(4.0, float(np.sqrt((x1 - x0) * (y1 - y0))))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    fwd = _affine(cx, cy, rng.uniform(-rotate, rotate), 1 + rng.uniform(-scale, scale),
                  rng.normal(0, shift) * size, rng.normal(0, shift) * size)
    field = smooth_field((h, w), rng, nonrigid * size) if nonrigid > 0 else None
    out = warp_mask(mask, *_maps((h, w), fwd, field))
    r = int(round(abs(rng.normal(0, morph)) * size))
    if r > 0:
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        op = cv2.dilate if rng.random() < 0.5 else cv2.erode
        eroded = op(out.astype(np.uint8), k) > 0
        out = eroded if eroded.any() else out
    if rng.random() < p_coarse and out.any():
        if rng.random() < 0.5:  # bounding box
            bx0, by0, bx1, by1 = _box_of(out)
            out = np.zeros_like(out)
            out[by0:by1, bx0:bx1] = True
        else:  # blobs
            k = int(max(3, size * 0.25)) | 1
            blur = cv2.GaussianBlur(out.astype(np.float32), (k, k), 0)
            blob = blur > 0.3
            out = blob if blob.any() else out
    return out


# ------------------------------------------------------------------------------------------
# Lucid data dreaming
@dataclass
class DreamParams:
    """Ranges of the dreamed transformations (object size = sqrt of its box area)."""

    obj_scale: float = 0.15  # object scale change (+-)
    obj_rotate: float = 15.0  # degrees
    obj_shift: float = 0.5  # new placement: +- fraction of the free space around the object
    obj_nonrigid: float = 0.05  # non-rigid amplitude x object size
    bg_scale: float = 0.05
    bg_shift: float = 0.05  # fraction of the frame
    gain: float = 0.25  # illumination: multiplicative gain range (+-), per part and channel-wide
    bias: float = 15.0  # additive brightness range (+-, grey levels)
    gamma: float = 0.2  # gamma range (+-)
    inpaint_radius: int = 5
    pair_motion: float = 0.15  # relative size of the second frame's motion in a pair


def inpaint_background(image: np.ndarray, mask: np.ndarray, radius: int = 5,
                       max_side: int = 240) -> np.ndarray:
    """The image with the (dilated) object region filled by inpainting (Telea), computed at a
    reduced size for speed and pasted back into the hole only."""
    h, w = image.shape[:2]
    hole = cv2.dilate(mask.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    s = min(1.0, max_side / max(h, w))
    small = cv2.resize(image, (max(8, int(w * s)), max(8, int(h * s))),
                       interpolation=cv2.INTER_AREA) if s < 1 else image
    small_hole = cv2.resize(hole.astype(np.uint8), (small.shape[1], small.shape[0]),
                            interpolation=cv2.INTER_NEAREST)
    small_hole = cv2.dilate(small_hole, np.ones((3, 3), np.uint8))
    filled = cv2.inpaint(small, small_hole, int(radius), cv2.INPAINT_TELEA)
    if s < 1:
        filled = cv2.resize(filled, (w, h), interpolation=cv2.INTER_LINEAR)
    out = image.copy()
    out[hole] = filled[hole]
    return out


def _illum(image: np.ndarray, gain: float, bias: float, gamma: float) -> np.ndarray:
    x = image.astype(np.float32) / 255.0
    x = np.clip(x, 0, 1) ** gamma
    return np.clip(x * 255.0 * gain + bias, 0, 255)


@dataclass
class _Dream:
    obj_fwd: np.ndarray
    obj_field: np.ndarray
    bg_fwd: np.ndarray
    obj_light: tuple[float, float, float]
    bg_light: tuple[float, float, float]


def _sample_dream(shape, box, rng, p: DreamParams) -> _Dream:
    h, w = shape
    x0, y0, x1, y1 = box
    size = max(4.0, float(np.sqrt((x1 - x0) * (y1 - y0))))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    # new placement: shift within the free space on each side, scaled by obj_shift
    tx = rng.uniform(-x0, w - x1) * p.obj_shift if w > x1 - x0 else 0.0
    ty = rng.uniform(-y0, h - y1) * p.obj_shift if h > y1 - y0 else 0.0
    obj = _affine(cx, cy, rng.uniform(-p.obj_rotate, p.obj_rotate),
                  1 + rng.uniform(-p.obj_scale, p.obj_scale), tx, ty)
    bg = _affine(w / 2, h / 2, 0.0, 1 + rng.uniform(0, p.bg_scale),
                 rng.uniform(-p.bg_shift, p.bg_shift) * w, rng.uniform(-p.bg_shift, p.bg_shift) * h)

    def light():
        return (1 + rng.uniform(-p.gain, p.gain), rng.uniform(-p.bias, p.bias),
                float(np.exp(rng.uniform(-p.gamma, p.gamma))))

    field = smooth_field(shape, rng, p.obj_nonrigid * size)
    return _Dream(obj, field, bg, light(), light())


def _render(image: np.ndarray, mask: np.ndarray, background: np.ndarray, d: _Dream,
            ) -> tuple[np.ndarray, np.ndarray]:
    h, w = mask.shape
    omx, omy = _maps((h, w), d.obj_fwd, d.obj_field)
    obj = cv2.remap(image, omx, omy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    m = warp_mask(mask, omx, omy)
    bmx, bmy = _maps((h, w), d.bg_fwd, None)
    bg = cv2.remap(background, bmx, bmy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    out = _illum(bg, *d.bg_light)
    out[m] = _illum(obj, *d.obj_light)[m]
    return out.astype(np.uint8), m


def _compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """2x3 forward affine ``b`` after ``a``."""
    A = np.vstack([a, [0, 0, 1]])
    B = np.vstack([b, [0, 0, 1]])
    return (B @ A)[:2]


def dream_frame(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator,
                params: DreamParams | None = None, background: np.ndarray | None = None,
                ) -> tuple[np.ndarray, np.ndarray]:
    """One dreamed (image uint8 (H, W, 3), mask bool (H, W)) from an annotated frame.

    ``background`` (the inpainted frame, :func:`inpaint_background`) can be passed to reuse it.
    """
    p = params or DreamParams()
    mask = np.asarray(mask, bool)
    if background is None:
        background = inpaint_background(image, mask, p.inpaint_radius)
    d = _sample_dream(mask.shape, _box_of(mask), rng, p)
    return _render(image, mask, background, d)


def dream_pair(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator,
               params: DreamParams | None = None, background: np.ndarray | None = None,
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Two consecutive dreamed frames ``(image_prev, mask_prev, image, mask)``: the second has
    a small extra object/background motion, deformation and illumination change."""
    p = params or DreamParams()
    mask = np.asarray(mask, bool)
    if background is None:
        background = inpaint_background(image, mask, p.inpaint_radius)
    box = _box_of(mask)
    d1 = _sample_dream(mask.shape, box, rng, p)
    k = p.pair_motion
    small = DreamParams(obj_scale=p.obj_scale * k, obj_rotate=p.obj_rotate * k,
                        obj_shift=p.obj_shift * k, obj_nonrigid=p.obj_nonrigid * k,
                        bg_scale=p.bg_scale * k, bg_shift=p.bg_shift * k, gain=p.gain * k,
                        bias=p.bias * k, gamma=p.gamma * k)
    # the second frame's motion is sampled around the first frame's object placement
    im1, m1 = _render(image, mask, background, d1)
    delta = _sample_dream(mask.shape, _box_of(m1) if m1.any() else box, rng, small)
    d2 = _Dream(
        obj_fwd=_compose(d1.obj_fwd, delta.obj_fwd),
        obj_field=d1.obj_field + delta.obj_field,
        bg_fwd=_compose(d1.bg_fwd, delta.bg_fwd),
        obj_light=tuple(a * b if i != 1 else a + b for i, (a, b) in
                        enumerate(zip(d1.obj_light, delta.obj_light, strict=True))),
        bg_light=tuple(a * b if i != 1 else a + b for i, (a, b) in
                       enumerate(zip(d1.bg_light, delta.bg_light, strict=True))),
    )
    im2, m2 = _render(image, mask, background, d2)
    return im1, m1, im2, m2
