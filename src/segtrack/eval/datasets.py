"""Readers for the benchmark datasets: DAVIS-2016/2017, YouTube-VOS, VOT, OTB, LaSOT, GOT-10k.

The datasets are the ones the seed documents evaluate on (seed 002, "datasets": DAVIS 2016 /
2017 and YouTube-VOS; seed 001 Ch. 5 (RTS) experiments: LaSOT, GOT-10k, YouTube-VOS, DAVIS,
VOT2020; seed 004 SiamMask: VOT-2016/2018 rotated boxes, DAVIS). Each reader returns a list of
:class:`Sequence` holding *paths* (images and masks are read on demand, so loading a dataset is
cheap). File formats follow the official releases / toolkits:

* DAVIS-2016: ``Annotations/480p/<seq>/<frame>.png`` grayscale 0/255 (one object);
  DAVIS-2017: palette PNGs with object ids, 255 = void (``davis2017-evaluation``);
* YouTube-VOS: sparse palette PNGs plus ``meta.json`` giving each object's frames;
* VOT: ``groundtruth.txt`` with ``x,y,w,h`` rectangles, ``x1,y1,...,x4,y4`` polygons or
  VOT2020 masks ``m<x0>,<y0>,<w>,<h>,<counts...>`` (as in the vot-toolkit ``vot/region/io.py``:
  run lengths alternating 0s and 1s starting with 0s, row-major inside the ``w x h`` patch
  placed at ``(x0, y0)``); a single number (e.g. ``0``) or NaNs mean "no region";
* OTB: ``<seq>/img/*.jpg`` and ``groundtruth_rect.txt`` (comma, tab or space separated).
  OTB boxes are kept **exactly as given** (the files use 1-based pixel coordinates; no -1
  shift is applied). The four sequences whose annotation starts later than image 1 (BlurCar1,
  BlurCar3, BlurCar4, David) and Tiger1's five omitted frames follow the OTB-2015 config;
* LaSOT: ``<category>/<category-N>/img``, ``groundtruth.txt``, ``full_occlusion.txt``,
  ``out_of_view.txt`` (flags -> :attr:`Sequence.absent`);
* GOT-10k: ``<split>/list.txt``, ``<seq>/00000001.jpg...``, ``groundtruth.txt``,
  ``absence.label``.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import abc
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segtrack.errors import InputError
from segtrack.io.palette import read_png_mode_and_values
from segtrack.io.sources import list_images, natural_key

__all__ = [
    "Sequence",
    "VotMasks",
    "load_davis",
    "load_ytvos",
    "load_vot",
    "load_otb",
    "load_lasot",
    "load_got10k",
    "decode_vot_rle",
    "parse_vot_region",
]

_L_MODES = ("L", "LA", "1", "I", "I;16", "I;16B", "I;16L", "F")


@dataclass
class Sequence:
    """One annotated video of a dataset (paths only; pixels are read on demand).

    Attributes:
        name: sequence name (folder name; OTB multi-target sequences get ``"<seq>-<k>"``).
        frames: image paths in order.
        masks: annotation PNG per frame (``None`` where not annotated), or ``None`` for
            box datasets.
        boxes: ``(N, 4)`` float ``(x, y, w, h)`` per frame, NaN rows where absent/unknown
            (OTB / LaSOT / GOT-10k as given; VOT: axis bounds of the region).
        polygons: VOT only: per frame ``(K, 2)`` polygon (a rectangle becomes its 4 corners),
            ``None`` where the frame has no region or a VOT2020 mask.
        vot_masks: VOT2020 only: :class:`VotMasks`, a lazy list whose item ``i`` is the
            image-size bool mask of frame ``i`` or ``None``.
        object_ids: ids of the annotated objects (1-based).
        first_frames: object id -> index of the frame where it is first annotated.
        style: ``"davis2016" | "davis2017" | "ytvos" | "vot" | "otb" | "lasot" | "got10k"``.
        absent: LaSOT / GOT-10k: bool ``(N,)``, True where the target is fully occluded, out
            of view or marked absent; ``None`` when the dataset gives no such flags.
        meta: extra information (e.g. LaSOT ``category``).
    """

    name: str
    frames: list[Path]
    masks: list[Path | None] | None = None
    boxes: np.ndarray | None = None
    polygons: list[np.ndarray | None] | None = None
    vot_masks: VotMasks | None = None
    object_ids: list[int] = field(default_factory=list)
    first_frames: dict[int, int] = field(default_factory=dict)
    style: str = ""
    absent: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.frames)

    def read_image(self, i: int) -> np.ndarray:
        """RGB uint8 image of frame ``i``."""
        from segtrack.io.sources import read_image

        return read_image(self.frames[i])

    def _raw(self, i: int) -> tuple[str, np.ndarray] | None:
        if self.masks is None:
            return None
        p = self.masks[i]
        if p is None:
            return None
        if self._cache.get("i") != i:
            self._cache.clear()
            self._cache["i"] = i
            self._cache["raw"] = read_png_mode_and_values(p)
        return self._cache["raw"]

    def read_labels(self, i: int) -> np.ndarray | None:
        """``uint8`` label map of frame ``i`` (0 background, k object k, void removed).

        ``None`` when frame ``i`` has no annotation (or the dataset only has boxes).
        """
        if self.vot_masks is not None and self.masks is None:
            m = self.vot_masks[i]
            return None if m is None else m.astype(np.uint8)
        raw = self._raw(i)
        if raw is None:
            return None
        mode, arr = raw
        if self.style == "davis2016":
            fg = (arr != 0) if mode in ("P", "PA") else (arr >= 128)
            return fg.astype(np.uint8)
        if self.style == "davis2017":
            return np.where(arr == 255, 0, arr).astype(np.uint8)
        return arr.astype(np.uint8, copy=True)

    def read_void(self, i: int) -> np.ndarray | None:
        """Bool void mask of frame ``i`` (DAVIS-2017 value 255); ``None`` for other styles."""
        if self.style != "davis2017":
            return None
        raw = self._raw(i)
        if raw is None:
            return None
        return raw[1] == 255


# --------------------------------------------------------------------------------------------
# helpers


def _check_root(root: str | os.PathLike, what: str) -> Path:
    r = Path(root).expanduser()
    if not r.exists():
        raise InputError(f"{what} root '{root}' does not exist")
    if not r.is_dir():
        raise InputError(f"{what} root '{root}' is not a folder")
    return r


def _require_dir(p: Path, what: str) -> Path:
    if not p.is_dir():
        raise InputError(f"{what} '{p}' does not exist")
    return p


def _require_file(p: Path, what: str) -> Path:
    if not p.is_file():
        raise InputError(f"{what} '{p}' does not exist")
    return p


def _images(folder: Path, what: str) -> list[Path]:
    _require_dir(folder, f"{what} image folder")
    frames = list_images(folder)
    if not frames:
        raise InputError(f"{what} image folder '{folder}' has no images")
    return frames


def _subdirs(root: Path) -> list[str]:
    names = [e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith(".")]
    return sorted(names, key=natural_key)


def _read_lines(p: Path) -> list[str]:
    try:
        with open(p, encoding="utf-8-sig") as f:
            return [ln.strip() for ln in f]
    except UnicodeDecodeError:
        raise InputError(f"'{p}' is not a text file") from None
    except OSError as exc:
        raise InputError(f"cannot read '{p}': {exc.strerror or exc}") from None


def _read_list(p: Path) -> list[str]:
    return [ln for ln in _read_lines(p) if ln and not ln.startswith("#")]


def _restrict(names: list[str], sequences: Iterable[str] | str | None, what: str) -> list[str]:
    if sequences is None:
        return names
    wanted = [sequences] if isinstance(sequences, str) else [str(s) for s in sequences]
    known = set(names)
    unknown = [s for s in wanted if s not in known]
    if unknown:
        raise InputError(f"unknown {what} sequence(s): {', '.join(repr(u) for u in unknown)}")
    return wanted


_SEP = re.compile(r"[,\s;]+")


def _read_boxes(p: Path, n_frames: int | None = None, pad: bool = True) -> np.ndarray:
    """``(M, 4)`` float boxes of a groundtruth file (comma / tab / space separated)."""
    rows: list[list[float]] = []
    for k, line in enumerate(_read_lines(p), start=1):
        if not line:
            continue
        tokens = [t for t in _SEP.split(line) if t]
        try:
            vals = [float(t) for t in tokens]
        except ValueError:
            raise InputError(f"'{p}' line {k}: expected 4 numbers, got {line[:60]!r}") from None
        if len(vals) != 4:
            raise InputError(f"'{p}' line {k}: expected 4 numbers, got {len(vals)}")
        rows.append(vals)
    if not rows:
        raise InputError(f"groundtruth '{p}' is empty")
    boxes = np.asarray(rows, dtype=np.float64)
    if n_frames is not None:
        if len(boxes) > n_frames:
            raise InputError(
                f"groundtruth '{p}' has {len(boxes)} boxes but the sequence has {n_frames} frames"
            )
        if len(boxes) < n_frames and pad:
            boxes = np.vstack([boxes, np.full((n_frames - len(boxes), 4), np.nan)])
    return boxes


def _read_flags(p: Path, n_frames: int) -> np.ndarray:
    """0/1 flags, comma / whitespace / newline separated, one per frame."""
    text = " ".join(_read_lines(p))
    tokens = [t for t in _SEP.split(text) if t]
    try:
        vals = np.asarray([int(float(t)) for t in tokens], dtype=np.int64)
    except ValueError:
        raise InputError(f"'{p}' must hold 0/1 flags") from None
    if len(vals) != n_frames:
        raise InputError(f"'{p}' has {len(vals)} flags but the sequence has {n_frames} frames")
    return vals != 0


def _first_present(boxes: np.ndarray, absent: np.ndarray | None = None) -> int:
    ok = np.isfinite(boxes).all(axis=1) & (boxes[:, 2] > 0) & (boxes[:, 3] > 0)
    if absent is not None:
        ok &= ~absent
    idx = np.flatnonzero(ok)
    return int(idx[0]) if idx.size else 0


def _annotation_map(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    out = {}
    for e in os.scandir(folder):
        if e.name.lower().endswith(".png") and not e.name.startswith("."):
            out[os.path.splitext(e.name)[0]] = folder / e.name
    return out


# --------------------------------------------------------------------------------------------
# DAVIS


def _imageset_names(root: Path, resolution: str, imageset: str) -> list[str]:
    candidates = [Path(imageset)] if imageset.endswith(".txt") else []
    candidates += [
        root / "ImageSets" / resolution / f"{imageset}.txt",
        root / "ImageSets" / "2017" / f"{imageset}.txt",
        root / "ImageSets" / "2016" / f"{imageset}.txt",
        root / "ImageSets" / f"{imageset}.txt",
    ]
    path = next((c for c in candidates if c.is_file()), None)
    if path is None:
        raise InputError(
            f"DAVIS image set '{imageset}' not found (looked for "
            f"'{root / 'ImageSets' / resolution / (imageset + '.txt')}' and ImageSets/2017)"
        )
    names: list[str] = []
    seen: set[str] = set()
    for k, line in enumerate(_read_list(path), start=1):
        token = line.split()[0]
        if "/" in token or "\\" in token:
            parts = Path(token.replace("\\", "/")).parts
            if "JPEGImages" in parts and len(parts) > parts.index("JPEGImages") + 2:
                name = parts[parts.index("JPEGImages") + 2]
            elif len(parts) >= 2:
                name = parts[-2]
            else:
                raise InputError(f"'{path}' line {k}: cannot find a sequence name in {token!r}")
        else:
            name = token
        if name not in seen:
            seen.add(name)
            names.append(name)
    if not names:
        raise InputError(f"DAVIS image set '{path}' is empty")
    return names


def _davis_meta_objects(path: Path) -> dict[str, dict[int, list[str]]]:
    """{sequence: {object id: frame names}} of a YouTube-VOS-style ``meta.json`` beside a DAVIS
    layout; {} without one. Entries not of that form are ignored (the file may hold more)."""
    if not path.is_file():
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            videos = json.load(f).get("videos")
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        raise InputError(f"DAVIS meta file '{path}' is not readable JSON") from None
    out: dict[str, dict[int, list[str]]] = {}
    for name, video in (videos or {}).items() if isinstance(videos, dict) else ():
        objects = video.get("objects") if isinstance(video, dict) else None
        for key, obj in (objects or {}).items() if isinstance(objects, dict) else ():
            frames = obj.get("frames") if isinstance(obj, dict) else None
            if str(key).isdigit() and isinstance(frames, list):
                out.setdefault(str(name), {})[int(key)] = [str(x) for x in frames]
    return out


def load_davis(
    root: str | os.PathLike,
    resolution: str = "480p",
    sequences: Iterable[str] | str | None = None,
    imageset: str | None = None,
    *,
    scan_objects: bool = False,
) -> list[Sequence]:
    """Read a DAVIS-2016 or DAVIS-2017 folder (``JPEGImages/<res>``, ``Annotations/<res>``).

    The sequence list comes from ``ImageSets`` when ``imageset`` is given (``"train"``,
    ``"val"``, ``"train-sequences"``, ... or a path to a .txt; both the DAVIS-2016 "image
    annotation" lines and the DAVIS-2017 one-name-per-line format are understood), else from
    the folders under ``JPEGImages/<res>``. The style is decided per sequence from its first
    annotation: palette / RGB PNGs or grayscale PNGs with ids other than 0/255 are DAVIS-2017
    (255 = void), grayscale 0/255 PNGs are DAVIS-2016 (255 -> object 1). ``object_ids`` come
    from the first annotation; ``scan_objects=True`` reads all annotations to also find
    objects that appear later. Without scanning, a YouTube-VOS-style ``meta.json`` at the root
    (``{"videos": {seq: {"objects": {id: {"frames": [frame names]}}}}}``, as written by
    ``segtrack make-clips``) gives the objects that appear later and their first frames.
    """
    r = _check_root(root, "DAVIS")
    jpeg_root = _require_dir(r / "JPEGImages" / resolution, "DAVIS image folder")
    ann_root = _require_dir(r / "Annotations" / resolution, "DAVIS annotation folder")
    if imageset is not None:
        names = _imageset_names(r, resolution, imageset)
    else:
        names = _subdirs(jpeg_root)
        if not names:
            raise InputError(f"DAVIS image folder '{jpeg_root}' has no sequences")
    names = _restrict(names, sequences, "DAVIS")
    listed = {} if scan_objects else _davis_meta_objects(r / "meta.json")
    out = []
    for name in names:
        frames = _images(jpeg_root / name, f"DAVIS sequence '{name}'")
        ann_dir = _require_dir(ann_root / name, "DAVIS annotation folder")
        ann = _annotation_map(ann_dir)
        masks = [ann.get(f.stem) for f in frames]
        annotated = [i for i, m in enumerate(masks) if m is not None]
        if not annotated:
            raise InputError(f"DAVIS annotation folder '{ann_dir}' has no PNG matching a frame")
        i0 = annotated[0]
        mode, arr = read_png_mode_and_values(masks[i0])
        values = set(np.unique(arr).tolist())
        if mode not in ("P", "PA") and mode in _L_MODES and values <= {0, 255}:
            style = "davis2016"
            ids_first = {1: i0}
            if scan_objects:
                ids_first = {}
                for i in annotated:
                    m_mode, a = read_png_mode_and_values(masks[i])
                    fg = (a != 0) if m_mode in ("P", "PA") else (a >= 128)
                    if fg.any():
                        ids_first = {1: i}
                        break
                if not ids_first:
                    ids_first = {1: i0}
        else:
            style = "davis2017"
            ids_first = {int(v): i0 for v in sorted(values) if v not in (0, 255)}
            if scan_objects:
                for i in annotated[1:]:
                    _, a = read_png_mode_and_values(masks[i])
                    for v in np.unique(a).tolist():
                        if v not in (0, 255) and int(v) not in ids_first:
                            ids_first[int(v)] = i
            index_of = {f.stem: i for i, f in enumerate(frames)}
            for k, stems in listed.get(name, {}).items():
                idx = [index_of[st] for st in stems if st in index_of and masks[index_of[st]]]
                if k not in ids_first and idx:
                    ids_first[k] = min(idx)
        out.append(
            Sequence(
                name=name,
                frames=frames,
                masks=masks,
                object_ids=sorted(ids_first),
                first_frames=dict(sorted(ids_first.items())),
                style=style,
            )
        )
    return out


# --------------------------------------------------------------------------------------------
# YouTube-VOS


def load_ytvos(
    root: str | os.PathLike,
    split: str = "valid",
    sequences: Iterable[str] | str | None = None,
) -> list[Sequence]:
    """Read YouTube-VOS ``<root>/<split>/{JPEGImages,Annotations}/<seq>`` and ``meta.json``.

    Annotations are sparse (palette PNGs only where an object is given); ``object_ids`` and
    ``first_frames`` come from ``meta.json`` (each object's first listed frame), or, when
    ``meta.json`` is absent, from scanning the annotation PNGs.
    """
    r = _check_root(root, "YouTube-VOS")
    base = _require_dir(r / split, "YouTube-VOS split folder")
    jpeg_root = _require_dir(base / "JPEGImages", "YouTube-VOS image folder")
    ann_root = _require_dir(base / "Annotations", "YouTube-VOS annotation folder")
    meta_path = base / "meta.json"
    videos: dict[str, Any] | None = None
    if meta_path.is_file():
        try:
            with open(meta_path, encoding="utf-8") as f:
                meta = json.load(f)
            videos = meta["videos"]
            if not isinstance(videos, dict):
                raise TypeError
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
            raise InputError(f"YouTube-VOS meta file '{meta_path}' is malformed") from None
        names = sorted(videos, key=natural_key)
    else:
        names = _subdirs(jpeg_root)
    if not names:
        raise InputError(f"YouTube-VOS split '{base}' has no sequences")
    names = _restrict(names, sequences, "YouTube-VOS")
    out = []
    for name in names:
        frames = _images(jpeg_root / name, f"YouTube-VOS sequence '{name}'")
        ann_dir = _require_dir(ann_root / name, "YouTube-VOS annotation folder")
        ann = _annotation_map(ann_dir)
        masks = [ann.get(f.stem) for f in frames]
        index_of = {f.stem: i for i, f in enumerate(frames)}
        first: dict[int, int] = {}
        if videos is not None:
            objects = videos.get(name, {}).get("objects", {}) if name in videos else None
            if objects is None or not isinstance(objects, dict):
                raise InputError(f"YouTube-VOS meta file '{meta_path}' has no objects for {name!r}")
            for key, obj in objects.items():
                try:
                    oid = int(key)
                    fr = [str(x) for x in obj["frames"]]
                except (ValueError, KeyError, TypeError):
                    raise InputError(
                        f"YouTube-VOS meta file '{meta_path}': bad object {key!r} in {name!r}"
                    ) from None
                listed = [index_of[s] for s in fr if s in index_of]
                if not listed:
                    raise InputError(
                        f"YouTube-VOS meta file '{meta_path}': object {key} of {name!r} "
                        f"lists no frame present in '{jpeg_root / name}'"
                    )
                first[oid] = min(listed)
        else:
            for i, m in enumerate(masks):
                if m is None:
                    continue
                _, a = read_png_mode_and_values(m)
                for v in np.unique(a).tolist():
                    if v != 0 and int(v) not in first:
                        first[int(v)] = i
        out.append(
            Sequence(
                name=name,
                frames=frames,
                masks=masks,
                object_ids=sorted(first),
                first_frames=dict(sorted(first.items())),
                style="ytvos",
            )
        )
    return out


# --------------------------------------------------------------------------------------------
# VOT


def decode_vot_rle(counts: Iterable[int], width: int, height: int) -> np.ndarray:
    """Decode VOT run lengths (0s, 1s, 0s, ... row-major) into a ``(height, width)`` bool patch.

    Missing trailing zeros are padded; more pixels than ``width * height`` raise ValueError.
    """
    c = np.asarray(list(counts), dtype=np.int64)
    if (c < 0).any():
        raise ValueError("negative run length")
    total = width * height
    if int(c.sum()) > total:
        raise ValueError(f"run lengths cover {int(c.sum())} pixels, the patch has {total}")
    flat = np.repeat((np.arange(len(c)) % 2).astype(bool), c)
    if flat.size < total:
        flat = np.concatenate([flat, np.zeros(total - flat.size, dtype=bool)])
    return flat.reshape(height, width)


def parse_vot_region(line: str) -> tuple[str, Any]:
    """Parse one VOT groundtruth line.

    Returns ``("none", None)`` (special code / NaNs / empty), ``("polygon", (K, 2) array)``
    (a 4-number rectangle ``x,y,w,h`` becomes its corners) or
    ``("mask", (x0, y0, patch))``. Raises ValueError on malformed lines.
    """
    s = line.strip()
    if not s:
        return "none", None
    if s[0] == "m":
        vals = [int(t) for t in s[1:].split(",") if t.strip() != ""]
        if len(vals) < 4:
            raise ValueError("a mask needs x0,y0,w,h and run lengths")
        x0, y0, w, h = vals[:4]
        if w < 0 or h < 0:
            raise ValueError("negative mask size")
        return "mask", (x0, y0, decode_vot_rle(vals[4:], w, h))
    vals = [float(t) for t in _SEP.split(s) if t]
    if len(vals) == 1 or any(math.isnan(v) for v in vals):
        return "none", None
    if len(vals) == 4:
        x, y, w, h = vals
        return "polygon", np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], float)
    if len(vals) >= 6 and len(vals) % 2 == 0:
        return "polygon", np.asarray(vals, dtype=np.float64).reshape(-1, 2)
    raise ValueError(f"expected 4 numbers, an even number >= 6 or a mask, got {len(vals)}")


class VotMasks(abc.Sequence):
    """Lazy per-frame VOT2020 masks: item ``i`` is an image-size bool mask or ``None``.

    Only the small RLE patches are kept in memory; the full mask (patch placed at its offset,
    clipped to the image like the vot-toolkit does) is built on access.
    """

    def __init__(self, patches: list[tuple[int, int, np.ndarray] | None], size: tuple[int, int]):
        self._patches = patches
        self.size = (int(size[0]), int(size[1]))  # (height, width)

    def __len__(self) -> int:
        return len(self._patches)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        item = self._patches[i]
        if item is None:
            return None
        x0, y0, patch = item
        h, w = self.size
        full = np.zeros((h, w), dtype=bool)
        ph, pw = patch.shape
        ys, xs = max(0, y0), max(0, x0)
        ye, xe = min(h, y0 + ph), min(w, x0 + pw)
        if ye > ys and xe > xs:
            full[ys:ye, xs:xe] = patch[ys - y0 : ye - y0, xs - x0 : xe - x0]
        return full


def _image_size(p: Path) -> tuple[int, int]:
    from PIL import Image

    try:
        with Image.open(p) as im:
            w, h = im.size
    except OSError as exc:
        raise InputError(f"cannot read image '{p}': {exc}") from None
    return h, w


def load_vot(
    root: str | os.PathLike, sequences: Iterable[str] | str | None = None
) -> list[Sequence]:
    """Read a VOT dataset: ``list.txt`` (or the sub-folders with a ``groundtruth.txt``).

    Images are in ``<seq>/color/`` (VOT2016+) or directly in ``<seq>/`` (VOT2013-15).
    ``polygons`` holds each frame's region as a polygon, ``vot_masks`` (VOT2020) the masks,
    ``boxes`` the axis bounds of either (NaN where there is no region).
    """
    r = _check_root(root, "VOT")
    list_path = r / "list.txt"
    if list_path.is_file():
        names = _read_list(list_path)
    else:
        names = [n for n in _subdirs(r) if (r / n / "groundtruth.txt").is_file()]
    if not names:
        raise InputError(f"VOT root '{root}' has no sequences (no list.txt, no groundtruth.txt)")
    names = _restrict(names, sequences, "VOT")
    out = []
    for name in names:
        seq_dir = _require_dir(r / name, "VOT sequence folder")
        gt = _require_file(seq_dir / "groundtruth.txt", "VOT groundtruth")
        img_dir = seq_dir / "color" if (seq_dir / "color").is_dir() else seq_dir
        frames = _images(img_dir, f"VOT sequence '{name}'")
        lines = _read_lines(gt)
        while lines and not lines[-1]:
            lines.pop()
        n = len(frames)
        if len(lines) > n:
            raise InputError(f"VOT groundtruth '{gt}' has {len(lines)} lines but {n} frames")
        polygons: list[np.ndarray | None] = [None] * n
        patches: list[tuple[int, int, np.ndarray] | None] = [None] * n
        boxes = np.full((n, 4), np.nan)
        any_mask = False
        for k, line in enumerate(lines):
            try:
                kind, val = parse_vot_region(line)
            except ValueError as exc:
                raise InputError(f"VOT groundtruth '{gt}' line {k + 1}: {exc}") from None
            if kind == "polygon":
                polygons[k] = val
                lo, hi = val.min(axis=0), val.max(axis=0)
                boxes[k] = (lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1])
            elif kind == "mask":
                any_mask = True
                x0, y0, patch = val
                patches[k] = (x0, y0, patch)
                rows, cols = np.flatnonzero(patch.any(axis=1)), np.flatnonzero(patch.any(axis=0))
                if rows.size:
                    boxes[k] = (
                        x0 + cols[0], y0 + rows[0], cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1
                    )
        vot_masks = VotMasks(patches, _image_size(frames[0])) if any_mask else None
        out.append(
            Sequence(
                name=name,
                frames=frames,
                boxes=boxes,
                polygons=polygons,
                vot_masks=vot_masks,
                object_ids=[1],
                first_frames={1: _first_present(boxes)},
                style="vot",
            )
        )
    return out


# --------------------------------------------------------------------------------------------
# OTB

# OTB-2015 sequences whose annotation does not start at image 1 (first annotated image number)
_OTB_START = {"BlurCar1": 247, "BlurCar3": 3, "BlurCar4": 18, "David": 300}
# ... and whose first frames are skipped in both images and annotation
_OTB_INIT_OMIT = {"Tiger1": 5}


def load_otb(
    root: str | os.PathLike, sequences: Iterable[str] | str | None = None
) -> list[Sequence]:
    """Read OTB: ``<seq>/img/*.jpg`` + ``<seq>/groundtruth_rect.txt`` (or ``.1.txt``, ``.2.txt``
    for sequences with two targets, named ``<seq>-1``, ``<seq>-2``).

    Boxes are kept as given (OTB's 1-based pixel coordinates). When there are more images than
    boxes, the frames annotated are the first ones (or, for BlurCar1/3/4 and David, those from
    the OTB-2015 start frame on).
    """
    r = _check_root(root, "OTB")
    entries: list[tuple[str, str, Path]] = []  # (name, folder, gt file)
    for folder in _subdirs(r):
        d = r / folder
        if not (d / "img").is_dir():
            continue
        if (d / "groundtruth_rect.txt").is_file():
            entries.append((folder, folder, d / "groundtruth_rect.txt"))
            continue
        multi = sorted(
            (p for p in d.glob("groundtruth_rect.*.txt")), key=lambda p: natural_key(p.name)
        )
        if not multi:
            raise InputError(f"OTB groundtruth '{d / 'groundtruth_rect.txt'}' does not exist")
        for p in multi:
            entries.append((f"{folder}-{p.name.split('.')[1]}", folder, p))
    if not entries:
        raise InputError(f"OTB root '{root}' has no sequences (<seq>/img folders)")
    by_name = {e[0]: e for e in entries}
    names = _restrict([e[0] for e in entries], sequences, "OTB")
    out = []
    for name in names:
        _, folder, gt = by_name[name]
        imgs = _images(r / folder / "img", f"OTB sequence '{name}'")
        boxes = _read_boxes(gt)
        m = len(boxes)
        offset = 0
        start = _OTB_START.get(folder)
        if start is not None and len(imgs) > m and len(imgs) >= start - 1 + m:
            offset = start - 1
        omit = _OTB_INIT_OMIT.get(folder, 0)
        if omit and len(imgs) == m and m > omit:
            offset, boxes = omit, boxes[omit:]
            m = len(boxes)
        frames = imgs[offset : offset + m]
        if len(frames) < m:
            raise InputError(
                f"OTB groundtruth '{gt}' has {m} boxes but '{r / folder / 'img'}' only "
                f"{len(imgs) - offset} images"
            )
        absent = None
        flags = r / folder / "absent.label"  # written by make-clips box (not in OTB itself)
        if flags.is_file():
            absent = _read_flags(flags, len(imgs))[offset : offset + m]
        out.append(
            Sequence(
                name=name,
                frames=frames,
                boxes=boxes,
                object_ids=[1],
                first_frames={1: _first_present(boxes, absent)},
                style="otb",
                absent=absent,
            )
        )
    return out


# --------------------------------------------------------------------------------------------
# LaSOT


def load_lasot(
    root: str | os.PathLike, sequences: Iterable[str] | str | None = None
) -> list[Sequence]:
    """Read LaSOT: ``<category>/<category-N>/{img/, groundtruth.txt, full_occlusion.txt,
    out_of_view.txt}`` (a flat ``<category-N>/`` layout is accepted too).

    ``absent`` = full occlusion OR out of view (boxes are kept as given).
    """
    r = _check_root(root, "LaSOT")
    seq_dirs: dict[str, Path] = {}
    for child in _subdirs(r):
        d = r / child
        if (d / "groundtruth.txt").is_file() or (d / "img").is_dir():
            seq_dirs[child] = d
            continue
        for sub in _subdirs(d):
            if (d / sub / "groundtruth.txt").is_file() or (d / sub / "img").is_dir():
                seq_dirs[sub] = d / sub
    if not seq_dirs:
        raise InputError(f"LaSOT root '{root}' has no sequences (<category>/<category-N>/img)")
    names = _restrict(sorted(seq_dirs, key=natural_key), sequences, "LaSOT")
    out = []
    for name in names:
        d = seq_dirs[name]
        frames = _images(d / "img", f"LaSOT sequence '{name}'")
        gt = _require_file(d / "groundtruth.txt", "LaSOT groundtruth")
        boxes = _read_boxes(gt, len(frames))
        occ, oov = d / "full_occlusion.txt", d / "out_of_view.txt"
        absent = None
        if occ.is_file() or oov.is_file():
            absent = np.zeros(len(frames), dtype=bool)
            for p in (occ, oov):
                if p.is_file():
                    absent |= _read_flags(p, len(frames))
        category = name.rsplit("-", 1)[0] if "-" in name else d.parent.name
        out.append(
            Sequence(
                name=name,
                frames=frames,
                boxes=boxes,
                object_ids=[1],
                first_frames={1: _first_present(boxes, absent)},
                style="lasot",
                absent=absent,
                meta={"category": category},
            )
        )
    return out


# --------------------------------------------------------------------------------------------
# GOT-10k


def load_got10k(
    root: str | os.PathLike,
    split: str = "val",
    sequences: Iterable[str] | str | None = None,
) -> list[Sequence]:
    """Read GOT-10k ``<root>/<split>/list.txt`` and each ``<seq>/{00000001.jpg..., groundtruth.txt,
    absence.label}``.

    The test split gives only the first box: the other rows are NaN. ``absent`` comes from
    ``absence.label`` (``None`` when the file is missing).
    """
    r = _check_root(root, "GOT-10k")
    base = _require_dir(r / split, "GOT-10k split folder")
    list_path = base / "list.txt"
    names = _read_list(list_path) if list_path.is_file() else _subdirs(base)
    if not names:
        raise InputError(f"GOT-10k split '{base}' has no sequences")
    names = _restrict(names, sequences, "GOT-10k")
    out = []
    for name in names:
        d = _require_dir(base / name, "GOT-10k sequence folder")
        frames = _images(d, f"GOT-10k sequence '{name}'")
        gt = _require_file(d / "groundtruth.txt", "GOT-10k groundtruth")
        boxes = _read_boxes(gt, len(frames))
        lab = d / "absence.label"
        absent = _read_flags(lab, len(frames)) if lab.is_file() else None
        out.append(
            Sequence(
                name=name,
                frames=frames,
                boxes=boxes,
                object_ids=[1],
                first_frames={1: _first_present(boxes, absent)},
                style="got10k",
                absent=absent,
            )
        )
    return out
