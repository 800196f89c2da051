"""LossLog (the running loss means every trainer reports) and the per-process model cache."""

from __future__ import annotations

import json

import pytest
import torch

from segtrack.models.shared import shared
from segtrack.training.common import LossLog


class _Bar:
    def __init__(self) -> None:
        self.n, self.postfix = 0, {}

    def update(self, k: int) -> None:
        self.n += k

    def set_postfix(self, d: dict) -> None:
        self.postfix = d


def test_losslog_running_means_history_and_nonfinite(capsys):
    bar, history = _Bar(), []
    log = LossLog(bar, quiet=True, history=history, every=2)
    log.update(1, {"seg": torch.tensor(1.0), "cls": 2.0})
    log.update(2, {"seg": torch.tensor(3.0), "cls": float("nan")}, skipped=1)
    # first value starts the mean; then 0.98 * 1 + 0.02 * 3; NaN ignored
    assert log.run["seg"] == pytest.approx(1.04)
    assert log.run["cls"] == pytest.approx(2.0)
    assert history == [{"step": 2, "seg": 1.04, "cls": 2.0, "skipped": 1.0}]  # same list object
    assert json.loads(capsys.readouterr().out.strip()) == history[0]
    assert bar.n == 2 and bar.postfix["seg"] == "1.040"


def test_shared_builds_once_per_key():
    calls = []

    def build():
        calls.append(1)
        return object()

    a = shared(("test-shared", 1), build)
    assert shared(("test-shared", 1), build) is a and len(calls) == 1
    assert shared(("test-shared", 2), build) is not a and len(calls) == 2


def test_checkpointer_resume_needs_a_checkpoint(tmp_path):
    import numpy as np

    from segtrack.errors import InputError
    from segtrack.training.common import Checkpointer

    ck = Checkpointer(tmp_path / "run")
    with pytest.raises(InputError, match="--resume: no checkpoint in"):
        ck.resume()
    rng = np.random.default_rng(0)
    ck.save(7, {"history": [{"step": 5}]}, rng)
    expected = rng.integers(1 << 30)
    rng2 = np.random.default_rng(123)
    st = ck.resume(rng2)
    assert st["step"] == 7 and st["history"] == [{"step": 5}]
    assert rng2.integers(1 << 30) == expected  # generator state restored


def test_load_or_build_keys_the_cache(tmp_path):
    from segtrack.training.common import load_or_build

    path = tmp_path / "c.pt"
    calls = []

    def build(v):
        def f():
            calls.append(v)
            return {"x": torch.full((3,), float(v))}
        return f

    a = load_or_build(path, "fold0", build(0))
    assert calls == [0] and path.is_file() and not list(tmp_path.glob("*.tmp"))
    b = load_or_build(path, "fold0", build(1))  # same key: read back, not rebuilt
    assert calls == [0] and torch.equal(b["x"], a["x"])
    c = load_or_build(path, "fold1", build(1))  # another fold: rebuilt and replaced
    assert calls == [0, 1] and float(c["x"][0]) == 1.0
    assert float(load_or_build(path, "fold1", build(2))["x"][0]) == 1.0
    assert load_or_build(None, "k", build(3))["key"] == "k" and calls == [0, 1, 3]


def test_semseg_trainer_resumes_to_the_same_weights(tmp_path, monkeypatch):
    """A semseg run interrupted after a checkpoint and continued with ``--resume`` ends with
    the weights of an uninterrupted run (``--resume`` used to start over)."""
    import torch

    from segtrack.training import semseg

    args = ["--data", "synthetic", "--videos", "1", "--test-videos", "1", "--batch", "2",
            "--seed", "0", "--iters", "4", "--checkpoint-every", "0", "--quiet",
            "--cache", str(tmp_path / "cache.pt")]
    assert semseg.main([*args, "--out", str(tmp_path / "a")]) == 0
    real = semseg.Checkpointer.maybe_save

    def stop_after_two(self, step, state_fn, rng):
        real(self, step, state_fn, rng)
        if step == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(semseg.Checkpointer, "maybe_save", stop_after_two)
    with pytest.raises(KeyboardInterrupt):
        semseg.main([*args, "--out", str(tmp_path / "b")])
    monkeypatch.setattr(semseg.Checkpointer, "maybe_save", real)
    assert semseg.main([*args, "--out", str(tmp_path / "b"), "--resume"]) == 0
    sa = torch.load(tmp_path / "a" / "semseg-synth.pt", weights_only=False)["head"]
    sb = torch.load(tmp_path / "b" / "semseg-synth.pt", weights_only=False)["head"]
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_static_holdout_leaves_the_evaluation_photographs_out():
    import argparse

    from conftest import DAVIS_ROOT

    from segtrack.data.static import load_static_sets, split_static
    from segtrack.training.common import add_static_args, check_static_args

    static = DAVIS_ROOT.parent / "static-masks"
    if not static.is_dir():
        pytest.skip(f"{static} not present")
    p = argparse.ArgumentParser()
    add_static_args(p, "clips", 100, 0.3)
    every = check_static_args(p.parse_args(["--static", str(static)]), "clips")
    kept = check_static_args(p.parse_args(["--static", str(static), "--static-holdout"]), "clips")
    held = split_static(load_static_sets([static]))[1]
    assert len(every) == len(kept) + len(held) and held
    assert not set(map(str, (s.image for s in kept))) & set(map(str, (s.image for s in held)))
