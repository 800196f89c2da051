"""Deterministic synthetic videos with exact ground-truth masks, for tests, training and the demo.

Objects are either *photo* cut-outs of real photographs that ship inside scikit-image (the cat's
face from ``chelsea``, the cup and saucer from ``coffee``, the helmet and the face from
``astronaut``; nothing is downloaded) or procedural *shapes* (ellipses, stars, polygons, noise
blobs, the ``horse`` silhouette) with noise, stripe, gradient or flat textures. Each object moves
along a smooth trajectory, scales, rotates and deforms non-rigidly (a travelling sine warp of its
sprite); objects occlude one another in a fixed depth order (the label map holds the top-most
object), and with ``exits=True`` they leave the frame and come back. Backgrounds are a slowly
panning and zooming real photograph, a procedural texture, or flat; a global illumination change
and sensor noise can be added.

Every frame is computed on demand from per-frame parameters fixed at construction, so
``frame(t)`` is the same whatever order frames are asked for and no video is held in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

#: object kinds; in semantic mode the class id of a pixel is the kind's index + 1
KINDS = ("cat", "cup", "helmet", "face", "horse", "ellipse", "star", "polygon", "blob")
PHOTO_KINDS = ("cat", "cup", "helmet", "face")
SHAPE_KINDS = ("horse", "ellipse", "star", "polygon", "blob")
SPRITE = 160  # sprite canvas side in pixels


@dataclass
class SyntheticConfig:
    """What a synthetic video looks like (see the module docstring)."""

    height: int = 240
    width: int = 320
    num_frames: int = 40
    num_objects: int = 1
    kinds: tuple[str, ...] = ("photo", "shape")  # "photo", "shape" or explicit kind names
    min_size: float = 0.15  # object size as a fraction of min(height, width)
    max_size: float = 0.35
    speed: float = 0.02  # fraction of the width per frame
    rotate: bool = True
    scale: bool = True
    deform: bool = True
    occlusion: bool = True  # objects may overlap (else their paths keep apart)
    exits: bool = False  # objects may leave the frame and re-enter
    background: str = "photo"  # "photo" | "texture" | "flat"
    moving_background: bool = True
    illumination: bool = True
    noise: float = 2.0  # std of additive Gaussian noise (grey levels)
    texture: str = "random"  # shapes' texture: "random" | "noise" | "stripes" | "gradient" | "flat"
    semantic: bool = False  # labels hold class ids (kind index + 1) instead of object ids


# ------------------------------------------------------------------------------------------
# photographs and sprites


def _photo(name: str) -> np.ndarray:
    import skimage.data as skd

    img = getattr(skd, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, -1)
    return np.ascontiguousarray(img[..., :3])


def _ellipse_mask(shape: tuple[int, int], center, axes, angle: float = 0.0) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    cv2.ellipse(m, (int(center[0]), int(center[1])), (int(axes[0]), int(axes[1])), angle, 0, 360,
                1, -1)
    return m.astype(bool)


def _cutout(kind: str) -> tuple[np.ndarray, np.ndarray]:
    """A real photographed object: (rgb crop, bool alpha) cut out with a hand-placed outline."""
    if kind == "cat":  # the cat's face in chelsea (451 x 300)
        img = _photo("chelsea")
        m = _ellipse_mask(img.shape[:2], (215, 160), (170, 138))
    elif kind == "cup":  # cup and saucer in coffee (600 x 400)
        img = _photo("coffee")
        m = _ellipse_mask(img.shape[:2], (278, 228), (202, 160))
        m |= _ellipse_mask(img.shape[:2], (290, 120), (118, 100))
    elif kind == "helmet":  # the helmet in astronaut (512 x 512)
        img = _photo("astronaut")
        m = _ellipse_mask(img.shape[:2], (392, 436), (108, 100))
    elif kind == "face":  # the astronaut's head
        img = _photo("astronaut")
        m = _ellipse_mask(img.shape[:2], (224, 118), (66, 88))
    else:
        raise ValueError(kind)
    ys, xs = np.nonzero(m)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    return img[y0:y1, x0:x1].copy(), m[y0:y1, x0:x1].copy()


def _texture(rng: np.random.Generator, h: int, w: int, style: str) -> np.ndarray:
    if style == "random":
        style = str(rng.choice(["noise", "stripes", "gradient"]))
    c1 = rng.uniform(30, 225, 3)
    c2 = rng.uniform(30, 225, 3)
    if style == "flat":
        return np.broadcast_to(c1, (h, w, 3)).astype(np.float32).copy()
    if style == "noise":
        k = int(rng.integers(4, 12))
        small = rng.uniform(0, 1, (max(2, h // k), max(2, w // k), 1)).astype(np.float32)
        t = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)[..., None]
    elif style == "stripes":
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        a = rng.uniform(0, np.pi)
        period = rng.uniform(8, 24)
        t = (0.5 + 0.5 * np.sin(2 * np.pi * (xx * np.cos(a) + yy * np.sin(a)) / period))[..., None]
    else:  # gradient
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        a = rng.uniform(0, 2 * np.pi)
        g = xx * np.cos(a) + yy * np.sin(a)
        t = ((g - g.min()) / max(float(np.ptp(g)), 1e-6))[..., None]
    return np.clip(c1 * (1 - t) + c2 * t, 0, 255).astype(np.float32)


def _shape_alpha(rng: np.random.Generator, kind: str, n: int) -> np.ndarray:
    m = np.zeros((n, n), np.uint8)
    c = n / 2
    if kind == "ellipse":
        cv2.ellipse(m, (int(c), int(c)), (int(n * 0.45), int(n * rng.uniform(0.2, 0.42))), 0, 0,
                    360, 1, -1)
    elif kind in ("star", "polygon"):
        k = int(rng.integers(5, 8))
        ang = np.sort(rng.uniform(0, 2 * np.pi, k)) if kind == "polygon" else (
            np.arange(2 * k) * np.pi / k
        )
        if kind == "star":
            r = np.where(np.arange(2 * k) % 2 == 0, 0.46, rng.uniform(0.18, 0.28)) * n
        else:
            r = rng.uniform(0.3, 0.46, k) * n
        pts = np.stack([c + r * np.cos(ang), c + r * np.sin(ang)], 1).astype(np.int32)
        cv2.fillPoly(m, [pts], 1)
    elif kind == "blob":
        small = rng.normal(size=(6, 6)).astype(np.float32)
        f = cv2.resize(small, (n, n), interpolation=cv2.INTER_CUBIC)
        yy, xx = np.mgrid[0:n, 0:n]
        f = f - 2.5 * (((yy - c) ** 2 + (xx - c) ** 2) / (0.45 * n) ** 2)
        m = (f > 0).astype(np.uint8)
        cnt, lab = cv2.connectedComponents(m)
        if cnt > 2:  # keep the largest component
            sizes = np.bincount(lab.ravel())
            sizes[0] = 0
            m = (lab == sizes.argmax()).astype(np.uint8)
        if m.sum() < n * n * 0.05:
            cv2.circle(m, (int(c), int(c)), int(n * 0.35), 1, -1)
    elif kind == "horse":
        import skimage.data as skd

        horse = ~skd.horse()  # True on the horse
        ys, xs = np.nonzero(horse)
        crop = horse[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1].astype(np.uint8)
        s = 0.92 * n / max(crop.shape)
        crop = cv2.resize(crop, (max(1, int(crop.shape[1] * s)), max(1, int(crop.shape[0] * s))),
                          interpolation=cv2.INTER_NEAREST)
        y0 = (n - crop.shape[0]) // 2
        x0 = (n - crop.shape[1]) // 2
        m[y0: y0 + crop.shape[0], x0: x0 + crop.shape[1]] = crop
    return m.astype(bool)


@dataclass
class _Sprite:
    kind: str
    rgb: np.ndarray  # (S, S, 3) float32, defined everywhere (so edges interpolate cleanly)
    alpha: np.ndarray  # (S, S) float32 in {0, 1}


def _make_sprite(rng: np.random.Generator, kind: str, texture: str) -> _Sprite:
    n = SPRITE
    if kind in PHOTO_KINDS:
        rgb, alpha = _cutout(kind)
        s = 0.94 * n / max(rgb.shape[:2])
        size = (max(1, int(rgb.shape[1] * s)), max(1, int(rgb.shape[0] * s)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA).astype(np.float32)
        alpha = cv2.resize(alpha.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
        canvas = np.zeros((n, n, 3), np.float32)
        a = np.zeros((n, n), np.float32)
        y0, x0 = (n - size[1]) // 2, (n - size[0]) // 2
        canvas[y0: y0 + size[1], x0: x0 + size[0]] = rgb
        a[y0: y0 + size[1], x0: x0 + size[0]] = alpha
        # extend the photo's colours outwards so that interpolation at the outline stays clean
        canvas = cv2.inpaint(canvas.clip(0, 255).astype(np.uint8), (a == 0).astype(np.uint8), 3,
                             cv2.INPAINT_TELEA).astype(np.float32)
        return _Sprite(kind, canvas, a)
    alpha = _shape_alpha(rng, kind, n).astype(np.float32)
    return _Sprite(kind, _texture(rng, n, n, texture), alpha)


# ------------------------------------------------------------------------------------------
# the video


class SyntheticVideo:
    """A deterministic synthetic video; ``frame(t)`` gives ``(rgb uint8, uint8 labels)``."""

    def __init__(self, config: SyntheticConfig, seed: int) -> None:
        self.config = c = config
        self.seed = int(seed)
        rng = np.random.default_rng(self.seed)
        kinds: list[str] = []
        for k in c.kinds:
            if k == "photo":
                kinds.extend(PHOTO_KINDS)
            elif k == "shape":
                kinds.extend(SHAPE_KINDS)
            elif k in KINDS:
                kinds.append(k)
            else:
                raise ValueError(f"unknown object kind '{k}'")
        if not kinds:
            raise ValueError("kinds: no object kind to draw")
        chosen = rng.choice(len(kinds), size=c.num_objects, replace=c.num_objects > len(kinds))
        self.sprites = [_make_sprite(rng, kinds[i], c.texture) for i in chosen]
        self._background = self._make_background(rng)
        self._tracks = [self._make_track(rng, i) for i in range(c.num_objects)]
        self._bg_phase = rng.uniform(0, 2 * np.pi, 3)
        self._light_phase = rng.uniform(0, 2 * np.pi)

    # -- construction ------------------------------------------------------------------------
    def _make_background(self, rng: np.random.Generator) -> np.ndarray:
        c = self.config
        h, w = int(c.height * 1.3) + 2, int(c.width * 1.3) + 2
        if c.background == "photo":
            name = str(rng.choice(["coffee", "astronaut", "rocket", "chelsea"]))
            img = _photo(name)
            return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
        if c.background == "texture":
            return _texture(rng, h, w, "noise")
        if c.background == "flat":
            return np.broadcast_to(rng.uniform(40, 215, 3), (h, w, 3)).astype(np.float32).copy()
        raise ValueError(f"unknown background '{c.background}'")

    def _make_track(self, rng: np.random.Generator, i: int) -> np.ndarray:
        """Per frame (cx, cy, size, angle_deg, deform_phase), fixed at construction."""
        c = self.config
        T, H, W = c.num_frames, c.height, c.width
        base = min(H, W) * rng.uniform(c.min_size, c.max_size)
        t = np.arange(T, dtype=np.float64)
        size = base * (1 + 0.25 * np.sin(2 * np.pi * t / rng.uniform(25, 60) + rng.uniform(0, 6)))
        if not c.scale:
            size = np.full(T, base)
        angle = (rng.uniform(-1.5, 1.5) * t + rng.uniform(-20, 20)) if c.rotate else np.zeros(T)
        if c.exits and i == 0:
            # sweep across and beyond the left/right borders: out of view for part of the clip
            period = max(T * 0.9, 8)
            cx = W / 2 + 0.95 * W * np.sin(2 * np.pi * t / period + 0.3)
            cy = H / 2 + 0.2 * H * np.sin(2 * np.pi * t / (period * 1.3))
        else:
            v = rng.normal(size=2)
            v = v / (np.linalg.norm(v) + 1e-9) * c.speed * W
            lo_x, hi_x = base * 0.55, W - base * 0.55
            lo_y, hi_y = base * 0.55, H - base * 0.55
            if c.exits:
                lo_x, hi_x, lo_y, hi_y = -base * 0.4, W + base * 0.4, -base * 0.4, H + base * 0.4
            if not c.occlusion and c.num_objects > 1:  # keep objects in their own vertical band
                band = W / c.num_objects
                lo_x, hi_x = band * i + base * 0.55, band * (i + 1) - base * 0.55
                if hi_x <= lo_x:
                    lo_x = hi_x = band * (i + 0.5)
            p = np.array([rng.uniform(lo_x, max(lo_x, hi_x)), rng.uniform(lo_y, max(lo_y, hi_y))])
            cx, cy = np.empty(T), np.empty(T)
            for k in range(T):
                cx[k], cy[k] = p
                v = 0.9 * v + rng.normal(size=2) * 0.1 * c.speed * W  # inertia
                p = p + v
                for d, lo, hi in ((0, lo_x, hi_x), (1, lo_y, hi_y)):  # bounce at the bounds
                    if p[d] < lo or p[d] > hi:
                        v[d] = -v[d]
                        p[d] = np.clip(p[d], lo, hi)
        phase = t * 0.35 + rng.uniform(0, 6)
        return np.stack([cx, cy, size, angle, phase], 1)

    # -- rendering ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.config.num_frames

    @property
    def num_classes(self) -> int:
        """Number of classes in semantic mode, background included."""
        return len(KINDS) + 1

    @property
    def class_names(self) -> list[str]:
        return ["background", *KINDS]

    def _render_background(self, t: int) -> np.ndarray:
        c = self.config
        bh, bw = self._background.shape[:2]
        if c.moving_background:
            ph = self._bg_phase
            zoom = 1.0 + 0.08 * (0.5 + 0.5 * np.sin(t * 0.05 + ph[2]))
            ox = (bw - c.width / zoom) * (0.5 + 0.45 * np.sin(t * 0.04 + ph[0]))
            oy = (bh - c.height / zoom) * (0.5 + 0.45 * np.sin(t * 0.03 + ph[1]))
        else:
            zoom, ox, oy = 1.0, (bw - c.width) / 2, (bh - c.height) / 2
        M = np.array([[zoom, 0, -ox * zoom], [0, zoom, -oy * zoom]], np.float64)
        return cv2.warpAffine(self._background, M, (c.width, c.height), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REFLECT)

    def _render_object(self, k: int, t: int) -> tuple[np.ndarray, np.ndarray]:
        c = self.config
        sp = self.sprites[k]
        cx, cy, size, angle, phase = self._tracks[k][t]
        rgb, alpha = sp.rgb, sp.alpha
        if c.deform:  # non-rigid: a travelling sine displacement of the sprite
            n = SPRITE
            yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
            amp = 0.035 * n
            map_x = xx + amp * np.sin(2 * np.pi * yy / n + phase).astype(np.float32)
            map_y = yy + amp * np.sin(2 * np.pi * xx / n + 0.7 * phase).astype(np.float32)
            rgb = cv2.remap(rgb, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            alpha = cv2.remap(alpha, map_x, map_y, cv2.INTER_LINEAR, borderValue=0)
        s = size / SPRITE
        M = cv2.getRotationMatrix2D((SPRITE / 2, SPRITE / 2), float(angle), float(s))
        M[0, 2] += cx - SPRITE / 2
        M[1, 2] += cy - SPRITE / 2
        out_rgb = cv2.warpAffine(rgb, M, (c.width, c.height), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_REPLICATE)
        out_a = cv2.warpAffine(alpha, M, (c.width, c.height), flags=cv2.INTER_LINEAR,
                               borderValue=0)
        return out_rgb, out_a > 0.5

    def frame(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame ``t``: ``(RGB uint8 (H, W, 3), uint8 labels)``, 0 = background, k = object k
        (or class ids in semantic mode)."""
        c = self.config
        if not 0 <= t < c.num_frames:
            raise IndexError(f"frame {t} outside 0..{c.num_frames - 1}")
        img = self._render_background(t)
        labels = np.zeros((c.height, c.width), np.uint8)
        for k in range(len(self.sprites)):  # depth order: later objects on top
            rgb, m = self._render_object(k, t)
            img[m] = rgb[m]
            labels[m] = (KINDS.index(self.sprites[k].kind) + 1) if c.semantic else k + 1
        if c.illumination:
            img = img * (1.0 + 0.12 * np.sin(t * 0.15 + self._light_phase))
        if c.noise > 0:
            rng = np.random.default_rng([self.seed, t])
            img = img + rng.normal(0, c.noise, img.shape).astype(np.float32)
        return np.clip(img + 0.5, 0, 255).astype(np.uint8), labels

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for t in range(len(self)):
            yield self.frame(t)


def make_video(seed: int, **overrides) -> SyntheticVideo:
    """A synthetic video from :class:`SyntheticConfig` defaults with ``overrides``."""
    return SyntheticVideo(replace(SyntheticConfig(), **overrides), seed)


def demo_clip(seed: int = 0) -> SyntheticVideo:
    """The embedded default clip of ``segtrack demo``: the cat's face and the cup, cut out of real
    photographs, moving over a real photograph that pans slowly."""
    cfg = SyntheticConfig(
        height=360, width=640, num_frames=60, num_objects=2, kinds=("cat", "cup"),
        min_size=0.3, max_size=0.42, speed=0.012, background="photo", noise=1.5,
    )
    video = SyntheticVideo(cfg, seed)
    # one cat and one cup, whatever the draw
    rng = np.random.default_rng(seed)
    video.sprites = [_make_sprite(rng, "cat", "random"), _make_sprite(rng, "cup", "random")]
    return video


def write_video(video: SyntheticVideo, out_dir: str | Path, name: str = "synthetic",
                as_mp4: bool = False) -> Path:
    """Write ``video`` as a tiny DAVIS-style dataset (JPEG frames, indexed-PNG annotations in the
    DAVIS-2017 'P' style) under ``out_dir``; returns the root. With ``as_mp4`` also
    ``<root>/<name>.mp4``."""
    from segtrack.io.palette import write_label_png

    root = Path(out_dir)
    jdir = root / "JPEGImages" / "480p" / name
    adir = root / "Annotations" / "480p" / name
    jdir.mkdir(parents=True, exist_ok=True)
    adir.mkdir(parents=True, exist_ok=True)
    writer = None
    if as_mp4:
        c = video.config
        writer = cv2.VideoWriter(str(root / f"{name}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 25.0,
                                 (c.width, c.height))
    for t, (img, labels) in enumerate(video):
        cv2.imwrite(str(jdir / f"{t:05d}.jpg"), img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
        write_label_png(adir / f"{t:05d}.png", labels)
        if writer is not None:
            writer.write(np.ascontiguousarray(img[..., ::-1]))
    if writer is not None:
        writer.release()
    return root
