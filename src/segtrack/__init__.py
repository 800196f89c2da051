"""segtrack: tracking by segmentation.

Public surface::

    segtrack.load_tracker(name, device="cpu", **params) -> Tracker
    tracker.init(frame, mask=None, box=None) -> Prediction
    tracker.track(frame) -> Prediction
    segtrack.track_video(source, mask=..., box=..., method=...)  # generator of TrackResult
"""

import os as _os

# OpenMP threads that spin while waiting collapse torch on a CPU shared with other processes
# (measured: rts 1.7 fps with the default policy vs 13-15 fps passive, 2 cores at load ~3).
# Only a default: a user's OMP_WAIT_POLICY wins, and it only applies if torch is not loaded yet.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from segtrack.api import TrackResult, track_video
from segtrack.errors import InputError, SegtrackError, UnknownMethodError
from segtrack.trackers.registry import available_methods, load_tracker, register
from segtrack.types import Frame, Prediction

__version__ = "0.1.0"

__all__ = [
    "Frame",
    "InputError",
    "Prediction",
    "SegtrackError",
    "TrackResult",
    "UnknownMethodError",
    "available_methods",
    "load_tracker",
    "register",
    "track_video",
]
