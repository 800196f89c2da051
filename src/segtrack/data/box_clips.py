"""Long box-tracking clips from real photographs: the development set of box tracking.

Built on the multi-object clip generator (:mod:`segtrack.data.multi`): one *target* and one to
four look-alikes (other people, or instances and copies of the target's COCO category) cut
from the *held-out* photographs of ``static-masks``, over a panning and zooming view of a
DAVIS-2016-train frame.  What differs from the multi-object clips is what box trackers are
judged on (OTB, LaSOT, UAV123):

* long clips (300 to 1,000 frames by default, drawn per clip);
* targets from about 12 pixels to half the frame (the clip's size is log-uniform), whose size
  changes up to 4x over the clip;
* fast motion (waypoints 2-6 % of the clip apart, steps up to 3 object sizes, and a minimum
  step in pixels so that small targets move too), more rotation, stronger camera pan and zoom
  and more motion-blurred frames;
* look-alikes sent across the target (most crossings involve it) and hiding it when they pass
  in front; the target may leave the frame and always comes back.

Objects are rigid here (no thin-plate-spline deformation: its per-frame fields do not fit in
memory over 1,000 frames), and frames are rendered and written one at a time.

Ground truth is the min-max box of the target's visible pixels (its exact mask); a frame where
fewer than ``min_visible`` of its pixels are visible (fully hidden or out of view) is absent.
:func:`write_box_set` writes the OTB layout (``<clip>/img/0001.jpg``,
``<clip>/groundtruth_rect.txt`` with OTB's 1-based ``x,y,w,h``, ``0,0,0,0`` where absent),
plus ``<clip>/absent.label`` (one 0/1 per frame), ``<clip>/masks/0001.png`` (the target's
visible mask) and a root ``meta.json`` with seeds, sources and each clip's attributes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from segtrack.data.multi import (
    MultiClipMaker,
    MultiParams,
    _depth_orders,
    check_set_output,
    move_into_place,
)
from segtrack.data.static import camera_frame, load_static_sets, motion_blur, render_layer
from segtrack.errors import InputError

__all__ = ["BoxParams", "BoxClipMaker", "write_box_set", "BOX_GENERATOR", "BOX_SEED"]

BOX_GENERATOR = "segtrack make-clips box"
BOX_SEED = 50000


@dataclass
class BoxParams(MultiParams):
    """What a box-tracking clip looks like (see the module doc); sizes in pixels of the
    clip's frames unless said otherwise."""

    frames: int = 1000  # the most frames a clip may have (memory bound of the paths)
    frame_range: tuple[int, int] = (300, 1000)  # frames per clip, drawn per clip
    objects: tuple[int, int] = (2, 5)  # the target and its look-alikes
    target_px: tuple[float, float] = (12.0, 0.5)  # clip's object size: pixels .. x min(H, W)
    crowd_shrink: float = 0.0
    size_spread: float = 0.2
    grid: tuple[float, float] = (0.02, 0.06)
    step: tuple[float, float] = (0.5, 3.0)
    step_min: float = 0.03
    scale_trend: float = 0.7
    scale_clip: float = 0.7  # up to e^1.4 = 4x between the smallest and the largest
    rotate_step: float = 1.2
    rotate: float = 15.0
    tps: float = 0.0
    late: float = 0.3
    leave: float = 0.3
    p_target_leave: float = 0.5  # clips whose target leaves the frame (it comes back)
    p_target_cross: float = 0.8  # crossings that involve the target
    pan: tuple[float, float] = (0.5, 1.0)
    zoom: float = 0.35
    background_margin: float = 1.8
    p_blur: float = 0.12  # mean share of motion-blurred frames (uniform in 0 .. 2x per clip)
    blur_max: int = 13
    min_init: float = 0.85  # the target is this much visible on the first frame (it is the
    # box a tracker starts from; multi-object clips start objects from 30 %)
    min_visible: float = 0.02  # share of the target's pixels below which it is absent
    min_visible_px: int = 3

    def __post_init__(self) -> None:
        lo, hi = self.frame_range
        if not 12 <= lo <= hi:
            raise InputError(f"--frames {lo},{hi}: expected 12 <= MIN <= MAX")
        self.frames = max(self.frames, hi)
        super().__post_init__()
        if self.objects[0] < 1:
            raise InputError("--objects: at least the target")


class BoxClipMaker(MultiClipMaker):
    """Makes the clips of :func:`write_box_set`; :meth:`frames` yields one clip's frames."""

    def __init__(self, samples, davis_root, params: BoxParams | None = None,
                 objects: str = "heldout", backgrounds: Sequence[str] | None = None) -> None:
        super().__init__(samples, davis_root, params or BoxParams(), objects, backgrounds)

    # -- the plan's hooks --------------------------------------------------------------------
    def _base_size(self, rng: np.random.Generator, n: int, canvas: float) -> float:
        H, W = self.p.size
        lo, hi = self.p.target_px[0], self.p.target_px[1] * min(H, W)
        return float(np.exp(rng.uniform(np.log(lo), np.log(max(hi, lo)))))

    def _presence(self, rng: np.random.Generator, n: int, ng: int) -> np.ndarray:
        inside = super()._presence(rng, n, ng)
        inside[0] = True  # object 0 is the target: in view at the start
        if ng > 6 and rng.random() < self.p.p_target_leave:
            b = int(rng.integers(2, ng - 3))
            inside[0, b:b + int(rng.integers(1, 3))] = False
        return inside

    def _crossing_pair(self, rng: np.random.Generator, both: list[int]) -> tuple[int, int]:
        if 0 in both and rng.random() < self.p.p_target_cross:
            return 0, int(rng.choice([k for k in both if k != 0]))
        return super()._crossing_pair(rng, both)

    # -- one clip ----------------------------------------------------------------------------
    def _length(self, i: int, seed: int) -> int:
        lo, hi = self.p.frame_range
        return int(np.random.default_rng([int(seed), int(i), 7]).integers(lo, hi + 1))

    def frames(self, i: int, seed: int = BOX_SEED
               ) -> tuple[dict, Iterator[tuple[np.ndarray, np.ndarray]]]:
        """(info, iterator of (frame RGB (H, W, 3), target mask (H, W) bool)) of clip ``i``;
        ``info`` is completed (attributes, boxes) when the iterator is exhausted."""
        J = self._length(i, seed)
        base_p = self.p
        blur = float(np.random.default_rng([int(seed), int(i), 8]).uniform(0, 2 * base_p.p_blur))
        self.p = dataclasses.replace(base_p, frames=J, frame_range=(J, J), p_blur=blur)
        layers_p = self._layers.p
        self._layers.p = dataclasses.replace(layers_p, frames=J)
        try:
            rng = np.random.default_rng([int(seed), int(i)])
            theme, kind = self.theme(i, seed)
            bg, off, zoom, bg_info, motion = self._camera(i, seed, rng)
            size = self.p.size
            for _attempt in range(12):
                plan = self._plan(rng, theme, kind)
                L0 = plan["layers"][0]
                full0 = L0.mask.sum() * float(L0.scale[0]) ** 2
                order0 = _depth_orders(plan["z"][:1], self.p.depth_margin)[0]
                lab = np.zeros(size, np.uint8)
                for k in order0:
                    lab[render_layer(plan["layers"][k], 0, size)[1]] = k + 1
                if (lab == 1).sum() >= max(self.p.min_init_px, self.p.min_init * full0):
                    break
            else:
                raise InputError(f"clip {i}: could not place the target (try another --size)")
            p = self.p
        finally:
            self.p = base_p
            self._layers.p = layers_p
        info: dict[str, Any] = {"rng": [int(seed), int(i)], "theme": theme, "kind": kind,
                                "frames": J, "size": [size[1], size[0]],
                                "background": bg_info, "objects": len(plan["layers"])}
        return info, self._stream(p, plan, bg, off, zoom, motion, info)

    def _stream(self, p: BoxParams, plan: dict, bg: np.ndarray, off: np.ndarray,
                zoom: np.ndarray, motion: np.ndarray, info: dict
                ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        from segtrack.geometry import mask_to_box

        J, layers = len(zoom), plan["layers"]
        n = len(layers)
        orders = _depth_orders(plan["z"], p.depth_margin)
        blur = dict(plan["blur"])
        angle = float(np.arctan2(motion[1], motion[0]))
        boxes = np.zeros((J, 4))
        absent = np.zeros(J, bool)
        out_of_view = np.zeros(J, bool)
        share = np.ones(J)
        near = np.zeros(J, bool)
        L0 = layers[0]
        for j in range(J):
            frame = camera_frame(bg, p.size, off[j], float(zoom[j]))
            lab = np.zeros(p.size, np.uint8)
            for k in orders[j]:
                rgb, m, _ = render_layer(layers[k], j, p.size)
                frame[m] = rgb[m]
                lab[m] = k + 1
                if k == 0:
                    inframe = int(m.sum())
            if j in blur:
                frame = motion_blur(frame, blur[j], angle)
            target = lab == 1
            vis = int(target.sum())
            full = float(L0.mask.sum()) * float(L0.scale[j]) ** 2
            out_of_view[j] = inframe == 0
            absent[j] = vis < max(p.min_visible_px, p.min_visible * full)
            if absent[j]:
                target = np.zeros_like(target)
            else:
                boxes[j] = mask_to_box(target)
                share[j] = vis / max(inframe, 1)
            c0 = L0.centre[j]
            r0 = np.sqrt(full)
            near[j] = any(np.hypot(*(layers[k].centre[j] - c0)) < 0.6 * (
                r0 + np.sqrt(float(layers[k].mask.sum())) * float(layers[k].scale[j]))
                for k in range(1, n))
            yield frame, target
        present = ~absent
        area = boxes[present, 2] * boxes[present, 3]
        c = boxes[:, :2] + boxes[:, 2:] / 2
        both = present[1:] & present[:-1]
        speed = np.hypot(*(c[1:] - c[:-1]).T)[both]
        attrs = []
        if (area < 400).any():
            attrs.append("small")
        if (speed > 20).any():
            attrs.append("fast")
        r = np.sqrt(area / area[0])
        if ((r < 0.5) | (r > 2.0)).any():
            attrs.append("scale_change")
        if (present & (share < 0.5)).any():
            attrs.append("occlusion")
        if (absent & ~out_of_view).any():
            attrs.append("full_occlusion")
        if out_of_view.any():
            attrs.append("out_of_view")
        if (near & present).any() and n > 1:
            attrs.append("distractor")
        if len(blur) >= 0.1 * J:
            attrs.append("blur")
        if np.ptp(L0.angle) > 45:
            attrs.append("rotation")
        info.update({
            "attributes": attrs,
            "boxes": boxes.round(2).tolist(),
            "absent": [int(j) for j in np.nonzero(absent)[0]],
            "target": {"source": _source(plan["objects"][0]["sample"]),
                       "size_px": {"first": round(float(np.sqrt(area[0])), 1),
                                   "min": round(float(np.sqrt(area.min())), 1),
                                   "max": round(float(np.sqrt(area.max())), 1)},
                       "speed_px": {"mean": round(float(speed.mean()), 1) if len(speed) else 0,
                                    "max": round(float(speed.max()), 1) if len(speed) else 0},
                       "rotation_deg": round(float(np.ptp(L0.angle)), 1)},
            "blurred_frames": sorted(blur),
        })


def _source(s: Any) -> str:
    return f"{s.source}/{s.image.name}"


def _otb_line(b: np.ndarray, present: bool) -> str:
    if not present:
        return "0,0,0,0"
    x, y, w, h = (float(v) for v in b)
    return f"{x + 1:g},{y + 1:g},{w:g},{h:g}"  # OTB: 1-based pixel indices


def write_box_set(out: str | os.PathLike, static_dirs: Sequence[str | os.PathLike],
                  davis_root: str | os.PathLike, count: int = 10, seed: int = BOX_SEED,
                  params: BoxParams | None = None, *, overwrite: bool = False,
                  quiet: bool = False, objects: str = "heldout") -> dict:
    """Write ``count`` clips (``box000`` ...) of the set of ``seed`` in the OTB layout (see
    the module doc); returns the meta.  Built in a hidden folder beside ``out`` and moved into
    place when complete; a non-empty ``out`` is replaced only with ``overwrite`` when it is a
    set written by make-clips."""
    from tqdm import tqdm

    from segtrack.io import atomic_write_bytes

    p = params or BoxParams()
    dest, davis, tmp = check_set_output(out, static_dirs, davis_root, count, overwrite,
                                        BOX_GENERATOR)
    maker = BoxClipMaker(load_static_sets(static_dirs), davis, p, objects=objects)
    meta: dict[str, Any] = {
        "generator": BOX_GENERATOR, "version": 1, "seed": int(seed), "count": int(count),
        "params": dataclasses.asdict(p), "static": [str(d) for d in static_dirs],
        "davis": str(davis_root),
        "held_out": "objects cut from the held-out photographs (as make-clips multi)"
                    if objects == "heldout" else "objects cut from the training photographs "
                                                 "(a validation set)",
        "layout": "OTB: <clip>/img/0001.jpg, groundtruth_rect.txt (1-based x,y,w,h; 0,0,0,0 "
                  "where the target is absent), absent.label, masks/0001.png",
        "videos": {},
    }
    enc = [cv2.IMWRITE_JPEG_QUALITY, int(p.jpeg_quality)]
    total = sum(maker._length(i, seed) for i in range(count))
    bar = tqdm(total=total, desc="box clips", unit="frame", disable=quiet)
    try:
        for i in range(count):
            name = f"box{i:03d}"
            info, frames = maker.frames(i, seed)
            d = tmp / name
            (d / "img").mkdir(parents=True, exist_ok=True)
            (d / "masks").mkdir(parents=True, exist_ok=True)
            for j, (frame, target) in enumerate(frames):
                ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(frame[..., ::-1]), enc)
                ok2, mbuf = cv2.imencode(".png", target.astype(np.uint8) * 255)
                if not (ok and ok2):
                    raise InputError(f"clip {name}: cannot encode frame {j}")
                atomic_write_bytes(d / "img" / f"{j + 1:04d}.jpg", buf.tobytes())
                atomic_write_bytes(d / "masks" / f"{j + 1:04d}.png", mbuf.tobytes())
                bar.update(1)
            absent = set(info["absent"])
            boxes = np.asarray(info.pop("boxes"))
            atomic_write_bytes(d / "groundtruth_rect.txt", ("\n".join(
                _otb_line(b, j not in absent) for j, b in enumerate(boxes)) + "\n").encode())
            atomic_write_bytes(d / "absent.label", ("\n".join(
                "1" if j in absent else "0" for j in range(len(boxes))) + "\n").encode())
            meta["videos"][name] = info
        atomic_write_bytes(tmp / "meta.json", (json.dumps(meta, indent=1) + "\n").encode())
        move_into_place(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        bar.close()
    return meta
