"""One instance per process of each loaded network (weights read once, shared by every tracker
of a run: several objects, several videos)."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import TypeVar

T = TypeVar("T")

_SHARED: dict[Hashable, object] = {}


def shared(key: Hashable, build: Callable[[], T]) -> T:
    """The object stored under ``key``, built by ``build()`` the first time it is asked for."""
    if key not in _SHARED:
        _SHARED[key] = build()
    return _SHARED[key]  # type: ignore[return-value]
