"""Registry of tracking methods: ``load_tracker(name, **params)``, and the catalogue users choose
a method from: ``method_catalogue()`` (what each starts from, learns, costs and scores, as
measured in BENCHMARKS.md) and ``best_method(init)``.

Methods register lazily (module path + class name) so that importing segtrack stays cheap and
methods that need torch only import it when used.
"""

from __future__ import annotations

import importlib
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from segtrack.errors import InputError, UnknownMethodError
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
    "osvos-s": "segtrack.trackers.osvos_s:OSVOSSTracker",
    "masktrack": "segtrack.trackers.oneshot:MaskTrackTracker",
    "masktrack-flow": "segtrack.trackers.oneshot:MaskTrackFlowTracker",
    # box-only baselines (OpenCV contrib)
    "csrt": "segtrack.trackers.opencv_box:CSRTTracker",
    "kcf": "segtrack.trackers.opencv_box:KCFTracker",
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


# -- the method catalogue: what a user chooses a method by ---------------------------------------
# One place for what `segtrack methods` prints and what the workbench's method selector shows.
# Figures are from BENCHMARKS.md (2-core CPU, DAVIS-2016 train at 480p, held-out sequences):
#   speed   "Every method, torch against ONNX Runtime", column "x flow onnx" (tracked frames per
#           second divided by flow's in the same run); static from the first table (1456 against
#           flow's 57.5 fps in the same run).
#   quality held-out J&F: the mean over three folds ("Three folds") where it exists, else fold 0
#           with the current default recipe: "RTS and LWL" (flow, static), "LWL with
#           photographs" / "Several objects at once, continued" (lwl-multi-fold0), "EVS
#           operating points" (evs, its default point),
#           "ConvLSTM pixel-wise tracker" (perframe), "Retraining with photographs, continued"
#           (convlstm, convlstm-1stage), "SiamMask, held-out fold 0" / "Box initialisation
#           of every method" (siammask-2b and every box figure), "One-shot parents with
#           photographs" (masktrack, masktrack-flow), "One-shot family: boundary refinement"
#           (osvos fold 0), "Every method, torch against ONNX Runtime" (onavos, semseg).
#   fold0   the fold-0 figure of every method that has one: the split every method was measured
#           on, which best_method() compares.

_MASK, _BOX, _CLICKS = "mask", "box", "clicks"
_ANY = (_MASK, _BOX, _CLICKS)
_NO = "no"
_FIRST = "on the first frame"  # fine-tunes on it before tracking
_ONLINE = "online, while tracking"

#: name -> (inits, learns, speed ratio to flow or None, speed note when there is no ratio,
#:          {init: (J&F, folds)} shown, {init: fold-0 J&F} compared, one-line summary)
_CATALOGUE: dict[str, tuple] = {
    "flow": (_ANY, _NO, 1.0, "", {_MASK: (0.498, 1)}, {_MASK: 0.498, _BOX: 0.474},
             "carries the mask to the next frame with optical flow; drifts on long videos"),
    "static": (_ANY, _NO, 25.0, "", {_MASK: (0.333, 1)}, {_MASK: 0.333, _BOX: 0.327},
               "repeats the first mask on every frame (a baseline)"),
    "rts": (_ANY, _ONLINE, 0.50, "", {_MASK: (0.663, 3), _BOX: (0.659, 3)},
            {_MASK: 0.789, _BOX: 0.782},
            "learns the object's look while it tracks; starts at once, good from a box"),
    "lwl": (_ANY, _ONLINE, 0.35, "", {_MASK: (0.696, 1)}, {_MASK: 0.696, _BOX: 0.695},
            "rts without its instance branch"),
    "evs": (_ANY, "as its base method", None, "varies with --evs", {_MASK: (0.674, 1)},
            {_MASK: 0.674},
            "runs a method on keyframes only, optical flow in between (default: semseg)"),
    "semseg": (_ANY, _NO, 0.15, "", {_MASK: (0.569, 1)}, {_MASK: 0.569, _BOX: 0.569},
               "segments the foreground of every frame on its own"),
    "lmanet": (_ANY, _NO, None, "about a third of semseg's speed", {_MASK: (0.587, 1)},
               {_MASK: 0.587}, "semseg with a memory of recent frames"),
    "convlstm": (_ANY, _NO, 1.09, "", {_MASK: (0.399, 1)}, {_MASK: 0.399, _BOX: 0.399},
                 "recurrent pixel-wise tracker with an attention model"),
    "convlstm-1stage": (_ANY, _NO, None, "not measured", {_MASK: (0.418, 1)}, {_MASK: 0.418},
                        "convlstm without its attention model"),
    "perframe": (_ANY, _NO, 1.47, "", {_MASK: (0.458, 1)}, {_MASK: 0.458, _BOX: 0.460},
                 "segments the object's region of each frame on its own (convlstm baseline)"),
    "siammask": ((_BOX, _MASK, _CLICKS), _NO, 0.53, "", {_BOX: (0.565, 3)}, {_BOX: 0.695},
                 "box tracker that also draws the mask; a mask or clicks become their box"),
    "siammask-2b": ((_BOX, _MASK, _CLICKS), _NO, 0.54, "", {_BOX: (0.695, 1)}, {_BOX: 0.695},
                    "siammask with two branches instead of three"),
    "osvos": (_ANY, _FIRST, 0.51, "", {_MASK: (0.813, 3), _BOX: (0.841, 1)},
              {_MASK: 0.880, _BOX: 0.841},
              "learns the object from the first frame; the most accurate on new footage"),
    "osvos-s": (_ANY, _FIRST, 0.06, "", {_MASK: (0.859, 3)},
                {_MASK: 0.912},
                "osvos that follows only the instance it started on; drops look-alikes"),
    "onavos": (_ANY, "first frame, then online", 0.11, "", {_MASK: (0.836, 1), _BOX: (0.831, 1)},
               {_MASK: 0.836, _BOX: 0.831},
               "osvos that keeps adapting while it tracks; slow"),
    "masktrack": (_ANY, _FIRST, 0.44, "", {_MASK: (0.864, 1), _BOX: (0.844, 1)},
                  {_MASK: 0.864, _BOX: 0.844},
                  "refines the previous frame's mask, learned from the first frame"),
    "masktrack-flow": (_ANY, _FIRST, 0.35, "", {_MASK: (0.868, 1), _BOX: (0.840, 1)},
                       {_MASK: 0.868, _BOX: 0.840},
                       "masktrack that also sees the optical flow"),
    # box-only baselines: speed from "Box tracking" (DAVIS fold 0 as boxes, against flow in the
    # same queue), J&F of the filled box from the same section
    "csrt": ((_BOX, _MASK, _CLICKS), _NO, 0.43, "", {_BOX: (0.307, 1)}, {_BOX: 0.307},
             "OpenCV's CSRT box tracker (needs OpenCV contrib); its mask is the filled box"),
    "kcf": ((_BOX, _MASK, _CLICKS), _NO, 0.59, "", {_BOX: (0.284, 1)}, {_BOX: 0.284},
            "OpenCV's KCF box tracker (needs OpenCV contrib); its mask is the filled box"),
}

#: held-out J&F differences up to this size are run-to-run noise (BENCHMARKS.md, one-shot family)
_TIE_JF = 0.01


def _speed_class(ratio: float) -> str:
    return "fast" if ratio >= 0.8 else "medium" if ratio >= 0.3 else "slow"


def _quality_text(jf: float, folds: int, init: str) -> str:
    # half up from the figure as written in BENCHMARKS.md (0.565 -> 0.57; float formatting
    # would give 0.56)
    shown = Decimal(repr(jf)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    start = "" if init == _MASK else f"{init}, "
    return f"J&F {shown} ({start}{'3 folds' if folds == 3 else 'fold 0'})"


def method_catalogue() -> list[dict[str, Any]]:
    """One entry per registered method, in :func:`available_methods` order, for choosing one.

    Keys: ``name``; ``inits``: what it can start from (``"mask"``, ``"box"``, ``"clicks"``; a
    box or clicks become the first mask through the click-to-mask network, except for the box
    trackers ``siammask``/``siammask-2b``, which reduce a mask or clicks to their box, listed
    first); ``learns``: whether it learns while tracking, as short text; ``speed`` (short text)
    and ``speed_ratio``: tracking speed against ``flow`` on the same CPU (None when not
    measured); ``quality`` (short text) and ``quality_jf``: held-out J&F on DAVIS-2016 train
    for its usual init (the mean of three folds where measured, else fold 0; None when not
    measured on DAVIS); ``summary``: one line in plain words.
    """
    out = []
    for name in available_methods():
        info = _CATALOGUE.get(name)
        if info is None:  # registered from outside segtrack: nothing measured
            out.append({"name": name, "inits": list(_ANY), "learns": "not known",
                        "speed": "not measured", "speed_ratio": None,
                        "quality": "not measured", "quality_jf": None,
                        "summary": "a method registered outside segtrack"})
            continue
        inits, learns, ratio, note, shown, _, summary = info
        if ratio is not None:
            speed = f"{_speed_class(ratio)}, {ratio:.2f}x flow" if ratio < 10 else \
                f"{_speed_class(ratio)}, {ratio:.0f}x flow"
        else:
            speed = note
        main_init = inits[0]
        if main_init in shown:
            jf, folds = shown[main_init]
            quality: str = _quality_text(jf, folds, main_init)
            quality_jf: float | None = jf
        else:
            quality, quality_jf = "not measured", None
        out.append({"name": name, "inits": list(inits), "learns": learns, "speed": speed,
                    "speed_ratio": ratio, "quality": quality, "quality_jf": quality_jf,
                    "summary": summary})
    return out


def best_method(init: str) -> str:
    """The most accurate registered method on footage no model has seen, started from a
    ``"mask"`` or a ``"box"`` (``"clicks"`` count as a box: both go through the click-to-mask
    network).

    Methods are compared on their held-out fold-0 J&F for that init, the one split every
    method was measured on (three-fold means exist for a few methods only and run lower, so
    they are not comparable with the others' fold-0 figures).  Figures within one J&F point of
    the best are a tie (run-to-run noise); the fastest of them wins.  With the figures of
    BENCHMARKS.md: ``osvos-s`` from a mask (0.912 on fold 0; 0.859 over three folds, osvos
    0.880 / 0.813) and ``osvos`` from a box (0.841, tied with masktrack's 0.844 and
    masktrack-flow's 0.840, and faster).
    """
    key = str(init).strip().lower()
    if key == _CLICKS:
        key = _BOX
    if key not in (_MASK, _BOX):
        raise InputError(f"init '{init}': expected mask, box or clicks")
    scored = {name: _CATALOGUE[name][5][key] for name in available_methods()
              if name in _CATALOGUE and key in _CATALOGUE[name][5]}
    top = max(scored.values())
    tied = [n for n, v in scored.items() if v >= top - _TIE_JF]
    return max(tied, key=lambda n: (_CATALOGUE[n][2] or 0.0, scored[n]))
