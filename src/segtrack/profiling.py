"""Per-stage timing of a tracking run (``segtrack bench --profile``).

Trackers and the runner wrap their steps in ``with stage("backbone"):``; when profiling is off
(the default) a stage costs one flag test.  Stages are not nested: each names the exclusive time
of one step (decode, backbone, heads, online learning, paste-back, overlap resolution, writing);
what no stage covers is reported as ``other`` by :func:`table`.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

_enabled = False
_seconds: dict[str, float] = defaultdict(float)
_calls: dict[str, int] = defaultdict(int)

#: the order stages are reported in (others follow alphabetically)
ORDER = ("decode", "crop", "backbone", "heads", "flow", "learn", "finetune", "paste",
         "post", "overlap", "write")


def enable(on: bool = True) -> None:
    """Start (or stop) accumulating stage times; clears nothing."""
    global _enabled
    _enabled = bool(on)


def enabled() -> bool:
    return _enabled


def reset() -> None:
    _seconds.clear()
    _calls.clear()


_active = [0]


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Add the wall time of the block to stage ``name`` (no-op while profiling is off, and
    inside another stage: the outer stage owns that time, e.g. ``init`` its backbone calls)."""
    if not _enabled or _active[0]:
        yield
        return
    _active[0] += 1
    t0 = time.perf_counter()
    try:
        yield
    finally:
        _seconds[name] += time.perf_counter() - t0
        _calls[name] += 1
        _active[0] -= 1


def snapshot() -> dict[str, float]:
    """Seconds accumulated per stage so far."""
    return dict(_seconds)


def table(total_seconds: float, frames: int, stages: dict[str, float] | None = None,
          ) -> dict[str, float]:
    """Milliseconds per frame of each stage, plus ``other`` (``total_seconds`` minus the stages
    inside it) and ``total``; ``total_seconds`` is the tracker time of ``frames`` tracked
    frames.  ``init`` (first-frame set-up, fine-tuning included) is reported per frame too but
    is not part of ``total``: the init frame is not a tracked frame."""
    stages = snapshot() if stages is None else stages
    n = max(int(frames), 1)
    keys = [k for k in ORDER if k in stages] + sorted(k for k in stages if k not in ORDER)
    out = {k: 1000.0 * stages[k] / n for k in keys}
    inside = sum(v for k, v in stages.items() if k not in ("decode", "write", "init"))
    out["other"] = max(1000.0 * (total_seconds - inside) / n, 0.0)
    out["total"] = 1000.0 * total_seconds / n
    return out
