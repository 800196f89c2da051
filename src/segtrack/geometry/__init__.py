"""Box and polygon geometry: mask -> box conversions (Min-max, MBR, Opt), IoUs, rasterisation.

Seed document 004 (SiamMask), section 3 "Box generation" (Figure 3) and Table 1: Min-max
(:func:`mask_to_box`), MBR (:func:`mask_to_rotated_box`) and Opt (:func:`mask_to_opt_box`) boxes;
section 4 (VOT evaluation): :func:`polygon_iou` with optional image bounds as the VOT toolkit.

Conventions: pixel ``(r, c)`` covers ``[c, c+1) x [r, r+1)``; axis box ``(x, y, w, h)``; rotated
box ``(4, 2)`` corners in order around the rectangle; rasterisation sets the pixels whose centres
``(c + .5, r + .5)`` lie inside (half-open edges).
"""

from segtrack.geometry.boxes import (
    as_mask,
    box_iou,
    box_to_mask,
    box_to_polygon,
    mask_iou,
    mask_pixel_corners,
    mask_to_box,
    mask_to_rotated_box,
    piece_box,
    rotated_box_from_params,
    rotated_box_params,
)
from segtrack.geometry.opt_box import mask_polygon_iou, mask_to_opt_box
from segtrack.geometry.polygons import as_polygon, polygon_area, polygon_iou, polygon_to_mask

__all__ = [
    "as_mask",
    "as_polygon",
    "box_iou",
    "box_to_mask",
    "box_to_polygon",
    "mask_iou",
    "mask_pixel_corners",
    "mask_polygon_iou",
    "mask_to_box",
    "mask_to_opt_box",
    "mask_to_rotated_box",
    "piece_box",
    "polygon_area",
    "polygon_iou",
    "polygon_to_mask",
    "rotated_box_from_params",
    "rotated_box_params",
]
