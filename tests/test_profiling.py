"""Per-stage timing and init time reported by ``segtrack bench``."""

from __future__ import annotations

import json
import time

import pytest

from segtrack import profiling
from segtrack.cli import main


def test_stage_table_exclusive_and_other():
    profiling.reset()
    profiling.enable()
    try:
        with profiling.stage("backbone"):
            time.sleep(0.02)
            with profiling.stage("heads"):  # nested: owned by the outer stage
                time.sleep(0.01)
        with profiling.stage("decode"):
            time.sleep(0.01)
    finally:
        profiling.enable(False)
    snap = profiling.snapshot()
    assert "heads" not in snap and snap["backbone"] >= 0.03
    tab = profiling.table(total_seconds=0.05, frames=2, stages=snap)
    assert tab["total"] == pytest.approx(25.0)
    # decode is outside the tracker time; other = total - tracker stages
    assert tab["other"] == pytest.approx(25.0 - 1000 * snap["backbone"] / 2, abs=1e-6)
    with profiling.stage("off"):  # disabled: nothing recorded
        pass
    assert "off" not in profiling.snapshot()


def test_bench_profile_and_init_seconds(davis_root, tmp_path, capsys):
    out = tmp_path / "b.json"
    rc = main(["bench", "--dataset", "davis", "--root", str(davis_root), "--method", "flow",
               "--sequences", "bear", "--profile", "--json", str(out), "--quiet"])
    assert rc == 0
    s = json.loads(out.read_text())
    st = s["stages_ms"]
    assert st["flow"] > 0 and st["decode"] > 0 and st["total"] > 0
    assert st["total"] == pytest.approx(1000 / s["fps"], rel=1e-6)
    assert 0 <= s["init_seconds"] < 5 and s["cold_start_seconds"] > 0
    assert "ms per frame" in capsys.readouterr().out
    assert not profiling.enabled()


def test_bad_runtime_is_one_line_error(davis_root, capsys):
    rc = main(["bench", "--dataset", "davis", "--root", str(davis_root), "--method", "rts",
               "--sequences", "bear", "--param", "runtime=tensorrt", "--quiet"])
    assert rc != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "runtime" in err[0] and "tensorrt" in err[0]
