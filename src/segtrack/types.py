"""Plain data types shared by every part of segtrack.

Conventions used throughout the package:

* images are ``numpy.uint8`` arrays of shape ``(H, W, 3)`` in **RGB** order;
* masks are ``bool`` arrays of shape ``(H, W)`` (label maps: ``uint8``/``int`` with 0 = background,
  k = object k);
* an axis-aligned box is ``(x, y, w, h)`` in pixels, ``x, y`` the top-left corner, floats allowed;
  a mask pixel ``(r, c)`` covers ``[c, c+1) x [r, r+1)``, so the min-max box of a single pixel at
  ``(r, c)`` is ``(c, r, 1, 1)``;
* a rotated box is a ``(4, 2)`` float array of corner ``(x, y)`` coordinates, in order around the
  rectangle.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Frame:
    """One decoded video frame.

    Attributes:
        index: 0-based position of the frame in its source.
        name: a name for output files: the input file's stem for image folders / path lists,
            else the zero-padded index (``"00000"``).
        image: ``(H, W, 3)`` uint8 RGB.
    """

    index: int
    name: str
    image: np.ndarray

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)`` of the frame."""
        return int(self.image.shape[0]), int(self.image.shape[1])


@dataclass
class Prediction:
    """What a tracker says about one object in one frame.

    Attributes:
        mask: ``(H, W)`` bool mask in frame coordinates.
        box: axis-aligned ``(x, y, w, h)`` (min-max of the mask where there is one).
        rotated_box: ``(4, 2)`` corners of the rotated box (minimum-area rectangle of the mask).
        score: confidence in [0, 1] that the object is present and the mask right.
        scores: optional ``(H, W)`` float32 soft foreground probability.
    """

    mask: np.ndarray
    box: tuple[float, float, float, float]
    rotated_box: np.ndarray
    score: float = 1.0
    scores: np.ndarray | None = None
    extra: dict = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not bool(self.mask.any())
