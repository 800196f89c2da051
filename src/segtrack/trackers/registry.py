"""Registry of tracking methods: ``load_tracker(name, **params)``.

Methods register lazily (module path + class name) so that importing segtrack stays cheap and
methods that need torch only import it when used.
"""

from __future__ import annotations

import importlib
from typing import Any

from segtrack.errors import UnknownMethodError
from segtrack.trackers.base import Tracker

#: method name -> "module:Class"
_METHODS: dict[str, str] = {
    "flow": "segtrack.trackers.flow:FlowTracker",
    "static": "segtrack.trackers.static:StaticTracker",
    "rts": "segtrack.trackers.rts:RTSTracker",
    "lwl": "segtrack.trackers.rts:LWLTracker",
    # issue 7 (EVS / LMANet)
    "evs": "segtrack.trackers.evs:EVSTracker",
    "semseg": "segtrack.trackers.semseg:SemSegTracker",
    "lmanet": "segtrack.trackers.semseg:LMANetTracker",
    "convlstm": "segtrack.trackers.convlstm:ConvLSTMTracker",
    "convlstm-1stage": "segtrack.trackers.convlstm:ConvLSTM1StageTracker",
    "perframe": "segtrack.trackers.convlstm:PerFrameTracker",
    # issue 5 (SiamMask)
    "siammask": "segtrack.trackers.siammask:SiamMaskTracker",
    "siammask-2b": "segtrack.trackers.siammask:SiamMask2BTracker",
    # issue 4 (one-shot family)
    "osvos": "segtrack.trackers.oneshot:OSVOSTracker",
    "onavos": "segtrack.trackers.oneshot:OnAVOSTracker",
    "masktrack": "segtrack.trackers.oneshot:MaskTrackTracker",
    "masktrack-flow": "segtrack.trackers.oneshot:MaskTrackFlowTracker",
}


def register(name: str, target: str) -> None:
    """Register a method ``name`` implemented by ``"package.module:ClassName"``."""
    _METHODS[name] = target


def available_methods() -> list[str]:
    return sorted(_METHODS)


def tracker_class(name: str) -> type[Tracker]:
    key = str(name).strip().lower()
    if key not in _METHODS:
        raise UnknownMethodError(
            f"unknown method '{name}'; available: {', '.join(available_methods())}"
        )
    module, cls = _METHODS[key].split(":")
    return getattr(importlib.import_module(module), cls)


def load_tracker(name: str, device: str = "cpu", **params: Any) -> Tracker:
    """Build the tracker ``name`` with parameter overrides ``params`` on ``device``."""
    cls = tracker_class(name)
    return cls(device=device, **params)
