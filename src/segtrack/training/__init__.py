"""Offline training of segtrack's learned methods: ``segtrack train METHOD ...``.

Each method with learned weights registers a trainer here, a function ``main(argv) -> int`` that
parses its own options with argparse (shared ones from
:func:`segtrack.training.common.add_common_args`).  Trainers are imported lazily.
"""

from __future__ import annotations

import importlib

from segtrack.errors import InputError

#: method name -> "module:function" taking argv and returning an exit code
TRAINERS: dict[str, str] = {
    "rts": "segtrack.training.rts:main",
    "lwl": "segtrack.training.rts:main_lwl",
    # issue 7 (EVS / LMANet)
    "semseg": "segtrack.training.semseg:main",
    "lmanet": "segtrack.training.lmanet:main",
    "evs": "segtrack.training.refiner:main",
    "convlstm": "segtrack.training.convlstm:main",
    # issue 5 (SiamMask; --variant 2b|3b)
    "siammask": "segtrack.training.siammask:main",
    # issue 4 (one-shot family)
    "osvos": "segtrack.training.oneshot:main",
    "onavos": "segtrack.training.oneshot:main_onavos",  # OnAVOS starts from the OSVOS parent
    "masktrack": "segtrack.training.oneshot:main_masktrack",
    "masktrack-flow": "segtrack.training.oneshot:main_masktrack_flow",
    # box and clicks to a mask (the first mask of every method started from a box)
    "clickseg": "segtrack.training.clickseg:main",
    # learned optical flow (FlowNetS / FlowNetC; --variant s|c)
    "flownet": "segtrack.training.flownet:main",
}


def run_training(method: str, argv: list[str]) -> int:
    """Run the trainer of ``method`` on the command-line arguments ``argv``."""
    key = str(method).strip().lower()
    if key not in TRAINERS:
        raise InputError(
            f"method '{method}' has no trainer; trainable: {', '.join(sorted(TRAINERS))}"
        )
    module, fn = TRAINERS[key].split(":")
    return int(getattr(importlib.import_module(module), fn)(list(argv)) or 0)
