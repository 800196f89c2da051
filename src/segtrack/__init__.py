"""segtrack: tracking by segmentation.

Public surface::

    segtrack.load_tracker(name, device="cpu", **params) -> Tracker
    tracker.init(frame, mask=None, box=None) -> Prediction
    tracker.track(frame) -> Prediction
    segtrack.track_video(source, mask=..., box=..., points=..., method=...)  # TrackResults
    segtrack.segment(image, box=..., points=..., labels=..., mask=...) -> bool mask
"""

import os as _os

# OpenMP threads that spin while waiting collapse torch on a CPU shared with other processes
# (measured: rts 1.7 fps with the default policy vs 13-15 fps passive, 2 cores at load ~3).
# Only a default: a user's OMP_WAIT_POLICY wins, and it only applies if torch is not loaded yet.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


from segtrack.api import TrackResult, track_video
from segtrack.errors import InputError, SegtrackError, UnknownMethodError
from segtrack.interactive import segment
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
    "segment",
    "track_video",
]


def _tune_allocator() -> None:
    """Keep freed tensor memory in the process heap instead of returning it to the system.

    glibc serves blocks above a dynamic threshold (128 KiB at start) with fresh mmap() pages
    and unmaps them when freed; the threshold only grows after big blocks were freed.  When the
    frozen networks run in ONNX Runtime (its own arena), torch's fine-tuning loop never raises
    it, and every large tensor costs page faults: OSVOS fine-tuning measured 1.7x slower.  Fixed
    thresholds of 256 MiB (what ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` set)
    avoid that; a user's own setting of either variable wins.  glibc only; a no-op elsewhere.
    """
    if _os.environ.get("MALLOC_MMAP_THRESHOLD_") or _os.environ.get("MALLOC_TRIM_THRESHOLD_"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_mmap_threshold, 256 << 20)
        libc.mallopt(m_trim_threshold, 256 << 20)
    except (OSError, AttributeError):
        pass


def release_memory() -> None:
    """Give the freed heap pages back to the system (glibc ``malloc_trim``): with the fixed
    thresholds above, a training run that built a large cache out of many mid-sized arrays
    would otherwise keep their pages for its whole life."""
    import gc

    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


_tune_allocator()
