"""Shared fixtures: the DAVIS-2016 train data beside the repo (skipped where absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

DAVIS_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "davis2016-train"


@pytest.fixture
def davis_root() -> Path:
    if not (DAVIS_ROOT / "JPEGImages" / "480p").is_dir():
        pytest.skip(f"DAVIS-2016 train data not found at {DAVIS_ROOT}")
    return DAVIS_ROOT
