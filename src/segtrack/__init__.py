"""segtrack: tracking by segmentation.

Public surface::

    segtrack.load_tracker(name, device="cpu", **params) -> Tracker
    tracker.init(frame, mask=None, box=None) -> Prediction
    tracker.track(frame) -> Prediction
    segtrack.track_video(source, mask=..., box=..., method=...)  # generator of TrackResult
"""

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
