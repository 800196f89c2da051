"""Click-to-segment: a box and/or clicks (and the mask being corrected) to an object mask.

``segtrack.segment(image, box=..., points=..., labels=..., mask=...) -> mask``;
:class:`Segmenter` keeps the network loaded between interactions; :mod:`.clicker` is the
automatic clicker of the standard evaluation protocol (and of training).
"""

from segtrack.interactive.clicker import Click, iou, next_click
from segtrack.interactive.segmenter import Segmenter, SegmentParams, check_points, segment

__all__ = ["Click", "SegmentParams", "Segmenter", "check_points", "iou", "next_click", "segment"]
