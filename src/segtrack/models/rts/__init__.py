"""RTS / LWL networks (seed 001, chapter 5): heads on a frozen pretrained backbone.

:func:`save_heads` / :func:`load_heads` store only the learned heads (fp16 by default, with the
architecture config); the frozen backbone's weights come from its pip package.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from segtrack.errors import InputError
from segtrack.models.rts.net import RTSConfig, RTSNet

__all__ = ["RTSConfig", "RTSNet", "save_heads", "load_heads", "default_weights",
           "resolve_weights"]


def default_weights(method: str) -> Path:
    """Path of the committed weight file of ``method`` ("rts" or "lwl")."""
    return Path(__file__).resolve().parents[2] / "weights" / f"{method}.pt"


def resolve_weights(spec: str) -> Path:
    """A weight file given as a path, or as the name of a committed file (``"rts-fold0"`` ->
    ``weights/rts-fold0.pt``)."""
    p = Path(spec)
    if p.is_file():
        return p
    named = default_weights(spec.removesuffix(".pt"))
    return named if named.is_file() else p


def save_heads(net: RTSNet, path: str | os.PathLike, half: bool = True, **meta) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    state = {
        k: (v.half() if half and v.is_floating_point() else v).clone()
        for k, v in net.state_dict().items()
    }
    torch.save({"config": net.config_dict(), "state_dict": state, "meta": meta}, p)
    return p


def load_heads(path: str | os.PathLike, device: str = "cpu") -> RTSNet:
    """Load heads saved by :func:`save_heads` (fp32 on ``device``, eval mode)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(
            f"weights '{p}': no such file "
            "(train them with `segtrack train rts --data DIR --out DIR`)"
        )
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
        cfg = RTSConfig(**obj["config"])
        net = RTSNet(cfg)
        net.load_state_dict({k: v.float() for k, v in obj["state_dict"].items()})
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"weights '{p}': not an RTS weight file ({msg})") from None
    return net.to(device).eval()
