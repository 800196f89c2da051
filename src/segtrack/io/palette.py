"""The DAVIS colour palette and indexed label PNGs.

DAVIS-2017 and YouTube-VOS (seed 002, "datasets"; seed 001 Ch. 5 experiments) store one PNG
per annotated frame in palette ("P") mode: the pixel value is the object id, the colours come
from the PASCAL VOC colour map (0 black, 1 (128, 0, 0), 2 (0, 128, 0), ...; 255 = void in
DAVIS-2017). DAVIS-2016 (single object) stores grayscale "L" PNGs with 0 / 255. This module
matches the ``davis2017-evaluation`` toolkit's reading convention (``np.array(Image.open(p))``
gives the indices of a "P" PNG).
"""

from __future__ import annotations

import io
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from segtrack.errors import InputError

__all__ = [
    "davis_palette",
    "write_label_png",
    "read_label_png",
    "read_mask_input",
    "colors_to_labels",
]


@lru_cache(maxsize=1)
def _palette() -> np.ndarray:
    pal = np.zeros((256, 3), dtype=np.uint8)
    for i in range(256):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal[i] = (r, g, b)
    pal.setflags(write=False)
    return pal


def davis_palette() -> np.ndarray:
    """The 256-entry DAVIS / PASCAL VOC colour map as a ``(256, 3)`` uint8 array (a copy)."""
    return _palette().copy()


def colors_to_labels(rgb: np.ndarray, what: str = "image") -> np.ndarray:
    """Map an ``(H, W, 3)`` uint8 image drawn with the DAVIS palette back to indices.

    Raises InputError naming ``what`` if a colour is not in the palette.
    """
    rgb = np.asarray(rgb)
    codes = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[
        ..., 2
    ].astype(np.int64)
    pal = _palette().astype(np.int64)
    pal_codes = (pal[:, 0] << 16) | (pal[:, 1] << 8) | pal[:, 2]
    order = np.argsort(pal_codes)
    sorted_codes = pal_codes[order]
    pos = np.clip(np.searchsorted(sorted_codes, codes), 0, 255)
    ok = sorted_codes[pos] == codes
    if not ok.all():
        bad = tuple(int(v) for v in rgb[~ok][0])
        raise InputError(f"{what} has colours that are not in the DAVIS palette, e.g. {bad}")
    return order[pos].astype(np.uint8)


def _as_label_array(label_map: np.ndarray) -> np.ndarray:
    arr = np.asarray(label_map)
    if arr.ndim != 2:
        raise InputError(f"label map must be 2-D, got shape {tuple(arr.shape)}")
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8)
    if not np.issubdtype(arr.dtype, np.integer):
        raise InputError(f"label map must hold integers, got dtype {arr.dtype}")
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) > 255):
        raise InputError("label map values must be in 0..255")
    return np.ascontiguousarray(arr, dtype=np.uint8)


def write_label_png(path: str | os.PathLike, label_map: np.ndarray) -> Path:
    """Write ``label_map`` as an indexed ("P") PNG with the DAVIS palette, atomically.

    Pixel value k is object k (0 background). Returns the path written.
    """
    from segtrack.io.writers import atomic_write_bytes

    arr = _as_label_array(label_map)
    img = Image.fromarray(arr)  # 2-D uint8 -> "L"
    img.putpalette(_palette().tobytes())  # "L" + palette -> "P"
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return atomic_write_bytes(path, buf.getvalue())


def _open_png(path: str | os.PathLike, what: str = "label image") -> Image.Image:
    p = Path(path)
    if not p.exists():
        raise InputError(f"{what} '{p}' does not exist")
    if p.is_dir():
        raise InputError(f"{what} '{p}' is a folder, expected an image file")
    try:
        img = Image.open(p)
        img.load()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"cannot read {what} '{p}': {exc}") from None
    return img


def _image_values(img: Image.Image, p: Path, what: str) -> np.ndarray:
    """Labels of an opened image following the rules of :func:`read_label_png`."""
    mode = img.mode
    if mode in ("P", "PA"):
        arr = np.array(img.getchannel(0) if mode == "PA" else img)
        return arr.astype(np.uint8)
    if mode == "1":
        return np.array(img.convert("L"), dtype=np.uint8)
    if mode in ("L", "LA"):
        return np.array(img.getchannel(0) if mode == "LA" else img, dtype=np.uint8)
    if mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        arr = np.array(img)
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise InputError(f"{what} '{p}' has values outside 0..255")
        return arr.astype(np.uint8)
    rgb = np.array(img.convert("RGB"), dtype=np.uint8)
    return colors_to_labels(rgb, what=f"{what} '{p}'")


def read_label_png(path: str | os.PathLike) -> np.ndarray:
    """Read a label PNG as a ``uint8`` ``(H, W)`` label map.

    "P" PNGs give their palette indices, "L" (and "1", 16-bit) PNGs their values, "RGB"/"RGBA"
    PNGs are mapped back through the DAVIS palette (InputError on colours not in it).
    """
    p = Path(path)
    img = _open_png(p)
    return _image_values(img, p, "label image")


def read_png_mode_and_values(path: str | os.PathLike) -> tuple[str, np.ndarray]:
    """``(PIL mode, label array)`` of a label PNG (used to tell DAVIS-2016 from 2017)."""
    p = Path(path)
    img = _open_png(p)
    return img.mode, _image_values(img, p, "label image")


def read_mask_input(
    path: str | os.PathLike, frame_size: tuple[int, int]
) -> dict[int, np.ndarray]:
    """Read the CLI's ``--mask`` image into ``{object id: bool mask}``.

    Rules: a palette PNG gives its indices as ids (255 = void, ignored); a grayscale image with
    values >= 128 is a binary 0/255 mask (threshold 128) of one object with id 1, other
    grayscale images give their non-zero values as ids; an RGB image drawn with the DAVIS
    palette gives
    the palette indices (an RGB image whose three channels are equal is treated as grayscale).
    ``frame_size`` is ``(height, width)`` of the video frames.
    """
    p = Path(path)
    return masks_from_image(_open_png(p, what="mask"), str(p), frame_size)


def read_mask_bytes(data: bytes, frame_size: tuple[int, int], name: str = "mask"
                    ) -> dict[int, np.ndarray]:
    """:func:`read_mask_input` on an image file's bytes (an upload); ``name`` names it in errors."""
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise InputError(f"mask '{name}' is not a readable PNG or image file") from None
    return masks_from_image(img, name, frame_size)


def masks_from_image(img: Image.Image, name: str, frame_size: tuple[int, int]
                     ) -> dict[int, np.ndarray]:
    """``{object id: bool mask}`` of an opened mask image, by the rules of
    :func:`read_mask_input`; ``name`` names the image in errors."""
    p = name
    mode = img.mode
    if mode in ("P", "PA"):
        labels = np.array(img.getchannel(0) if mode == "PA" else img, dtype=np.uint8)
        labels = np.where(labels == 255, 0, labels).astype(np.uint8)
    else:
        if mode in ("RGB", "RGBA", "CMYK", "YCbCr", "HSV", "LAB"):
            rgb = np.array(img.convert("RGB"), dtype=np.uint8)
            if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(
                rgb[..., 0], rgb[..., 2]
            ):
                gray = rgb[..., 0]
                labels = None
            else:
                gray = None
                labels = colors_to_labels(rgb, what=f"mask '{p}'")
        else:
            gray = _image_values(img, Path(p), "mask")
            labels = None
        if labels is None:
            if gray.size and int(gray.max()) >= 128:  # a 0/255 (possibly noisy) binary mask
                labels = (gray >= 128).astype(np.uint8)
            else:
                labels = gray
    h, w = int(frame_size[0]), int(frame_size[1])
    if labels.shape != (h, w):
        raise InputError(
            f"mask '{p}' is {labels.shape[1]}x{labels.shape[0]} but the frame is {w}x{h}"
        )
    ids = [int(v) for v in np.unique(labels) if v != 0]
    if not ids:
        raise InputError(f"mask '{p}' is empty")
    return {k: labels == k for k in ids}
