"""Device selection: CPU always works; CUDA only when torch sees a GPU."""

from __future__ import annotations

from segtrack.errors import InputError


def resolve_device(name: str | None) -> str:
    """Validate ``--device``; returns ``"cpu"``, ``"cuda"`` or ``"cuda:N"``."""
    dev = (name or "cpu").strip().lower()
    if dev == "cpu":
        return dev
    if dev == "cuda" or dev.startswith("cuda:"):
        try:
            import torch
        except ImportError:  # pragma: no cover - torch is a dependency
            raise InputError("device 'cuda' needs torch with CUDA support") from None
        if not torch.cuda.is_available():
            raise InputError(f"device '{name}' is not available on this machine (no CUDA GPU)")
        if ":" in dev:
            idx = dev.split(":", 1)[1]
            if not idx.isdigit() or int(idx) >= torch.cuda.device_count():
                raise InputError(f"device '{name}' does not exist")
        return dev
    raise InputError(f"device '{name}' is not supported; use cpu or cuda")
