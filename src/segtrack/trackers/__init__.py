"""Online trackers: the per-frame inference logic of every method, behind one interface."""

from segtrack.trackers.base import Tracker, TrackerParams, make_prediction
from segtrack.trackers.registry import available_methods, load_tracker, register

__all__ = [
    "Tracker",
    "TrackerParams",
    "available_methods",
    "load_tracker",
    "make_prediction",
    "register",
]
