"""The optical flow of the flow-using methods (``flow``, ``masktrack-flow``, ``evs``): OpenCV's
DIS (the default) or a trained FlowNet (seed 002, "Optical flow with CNNs";
:mod:`segtrack.models.flownet`), chosen with ``--param flow=dis|flownet|flownet-s|flownet-c``.

Every estimator has ``calc(cur, prev) -> (H, W, 2) float32``, the *backward* flow: for each
pixel x of ``cur``, ``cur(x)`` shows what ``prev`` shows at ``x + flow(x)``.  Frames are RGB
uint8 (H, W, 3) or grey (H, W) of the same size.
"""

from __future__ import annotations

from typing import Protocol

import cv2
import numpy as np

from segtrack.errors import InputError

#: --param flow values; ``flownet`` is the variant with the lower held-out end-point error
FLOW_CHOICES = ("dis", "flownet", "flownet-s", "flownet-c")
FLOWNET_DEFAULT = "flownet-s"

DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


class FlowEstimator(Protocol):
    def calc(self, cur: np.ndarray, prev: np.ndarray) -> np.ndarray: ...


def _grey(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img


class DISFlow:
    """OpenCV's Dense Inverse Search at a preset, with optional overrides (``-1`` = keep)."""

    def __init__(self, preset: str = "ultrafast", finest_scale: int = -1, patch_size: int = -1,
                 patch_stride: int = -1, grad_iters: int = -1, var_iters: int = -1) -> None:
        if preset not in DIS_PRESETS:
            raise InputError(f"--param preset={preset}: expected one of {', '.join(DIS_PRESETS)}")
        self.dis = cv2.DISOpticalFlow_create(DIS_PRESETS[preset])
        for value, setter in ((finest_scale, self.dis.setFinestScale),
                              (patch_size, self.dis.setPatchSize),
                              (patch_stride, self.dis.setPatchStride),
                              (grad_iters, self.dis.setGradientDescentIterations),
                              (var_iters, self.dis.setVariationalRefinementIterations)):
            if value >= 0:
                setter(int(value))

    def calc(self, cur: np.ndarray, prev: np.ndarray) -> np.ndarray:
        return self.dis.calc(_grey(cur), _grey(prev), None)


def check_flow(name: str) -> str:
    """The normalised ``--param flow`` value, or an error naming the choices."""
    key = str(name).strip().lower()
    if key not in FLOW_CHOICES:
        raise InputError(f"--param flow={name}: expected one of {', '.join(FLOW_CHOICES)}")
    return key


def needs_colour(name: str) -> bool:
    """Whether the estimator looks at colour (FlowNet) or grey levels only (DIS)."""
    return check_flow(name) != "dis"


_NETS: dict = {}


def make_flow_estimator(name: str = "dis", preset: str = "ultrafast", weights: str = "",
                        device: str = "cpu", **dis_overrides: int) -> FlowEstimator:
    """The estimator ``name`` (:data:`FLOW_CHOICES`): DIS at ``preset`` (with ``dis_overrides``),
    or FlowNet with ``weights`` (default: the committed ``flownet-s.pt`` / ``flownet-c.pt``);
    loaded networks are shared between trackers."""
    key = check_flow(name)
    if key == "dis":
        return DISFlow(preset, **dis_overrides)
    from segtrack.models.flownet import FlowNetEstimator, load_flownet
    from segtrack.models.semseg import resolve_weights

    variant = FLOWNET_DEFAULT if key == "flownet" else key
    path = resolve_weights(weights, variant)
    ck = (str(path), device)
    if ck not in _NETS:
        _NETS[ck] = FlowNetEstimator(load_flownet(path), device=device)
    return _NETS[ck]
