"""``static``: the first-frame mask repeated on every frame — the zero-motion baseline that any
tracker must beat (used as the reference row in BENCHMARKS.md)."""

from __future__ import annotations

from segtrack.trackers.base import Tracker, make_prediction
from segtrack.types import Prediction


class StaticTracker(Tracker):
    """Returns the initial mask unchanged."""

    name = "static"

    def _init(self, frame, mask, box) -> None:
        self._mask = mask.copy()

    def _track(self, frame) -> Prediction:
        return make_prediction(self._mask.copy(), score=1.0)
