"""Reusable pieces for training segtrack's learned methods on a CPU (RTS, LWL, later OSVOS,
MaskTrack, SiamMask ...).

* :func:`seed_everything` - one seed for Python, NumPy and torch (training is deterministic
  given ``--seed`` on one machine / thread count).
* :func:`davis_folds` / :func:`split_sequences` - K-fold cross-validation over the sequences of a
  DAVIS-style training set. Fold ``k`` of ``K`` is ``sorted(names)[k::K]``; for the 30 DAVIS-2016
  train sequences, fold 0 of 5 is :data:`DAVIS2016_TRAIN_FOLD0`.
* :class:`ClipSampler` - ordered clips of ``J`` frames of one sequence (seed 001, §5.3.5: "we
  randomly sample J frames from an annotated video sequence and sort them").
* :func:`compute_feature_cache` - run a *frozen* backbone once over many images and keep the
  features in fp16 (RAM, optionally a cache file under /tmp), so that training iterations only
  cost the heads.
* :class:`Checkpointer` - periodic atomic checkpoints (model, optimiser, scheduler, iteration,
  RNG states) and ``--resume``.
* :func:`sha256_file`, :func:`write_manifest` - the ``<name>.manifest.json`` that documents a
  committed weight file (command, data, seed, fold, metrics, sha256).
* :func:`add_common_args` - the argparse options every trainer shares.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from segtrack.errors import InputError

__all__ = [
    "DAVIS2016_TRAIN_FOLD0",
    "seed_everything",
    "davis_folds",
    "split_sequences",
    "ClipSampler",
    "compute_feature_cache",
    "Checkpointer",
    "load_or_build",
    "sha256_file",
    "write_manifest",
    "add_common_args",
    "check_data_root",
    "start_run",
    "add_static_args",
    "check_static_args",
    "static_share",
    "mixed_batch",
    "STATIC_SEED",
]

#: fold 0 of 5 over the sorted 30 DAVIS-2016 train sequences (``sorted(names)[0::5]``)
DAVIS2016_TRAIN_FOLD0: tuple[str, ...] = (
    "bear",
    "car-turn",
    "flamingo",
    "lucia",
    "paragliding",
    "stroller",
)


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python's ``random``, NumPy's global RNG and torch; return a fresh NumPy Generator."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def davis_folds(names: Iterable[str], folds: int = 5) -> list[list[str]]:
    """Split sequence names into ``folds`` folds: fold k = ``sorted(names)[k::folds]``."""
    ns = sorted(names)
    if folds < 2 or folds > len(ns):
        raise InputError(f"--folds {folds}: must be between 2 and the number of sequences")
    return [ns[k::folds] for k in range(folds)]


def split_sequences(
    names: Iterable[str], fold: int | None, folds: int = 5
) -> tuple[list[str], list[str]]:
    """(train, held-out) names: with ``fold=None`` every sequence trains and none is held out."""
    ns = sorted(names)
    if fold is None:
        return ns, []
    parts = davis_folds(ns, folds)
    if not 0 <= fold < folds:
        raise InputError(f"--fold {fold}: must be in 0..{folds - 1}")
    held = parts[fold]
    return [n for n in ns if n not in held], held


class ClipSampler:
    """Sample ordered clips of ``length`` frames from sequences of given lengths.

    Args:
        lengths: number of frames of each sequence (index = sequence id).
        length: J, frames per clip.
        max_gap: largest distance between consecutive sampled frames (``None``: anywhere in the
            sequence, as the thesis).
        weights: optional sampling weight per sequence (default: uniform over sequences).
    """

    def __init__(
        self,
        lengths: Sequence[int],
        length: int = 3,
        max_gap: int | None = None,
        weights: Sequence[float] | None = None,
    ) -> None:
        if not lengths:
            raise InputError("no training sequences")
        self.lengths = [int(n) for n in lengths]
        self.length = int(length)
        self.max_gap = max_gap
        w = np.ones(len(lengths)) if weights is None else np.asarray(weights, float)
        self.p = w / w.sum()

    def sample(self, rng: np.random.Generator) -> tuple[int, list[int]]:
        """Return ``(sequence id, sorted frame indices)``; repeats frames of short sequences."""
        s = int(rng.choice(len(self.lengths), p=self.p))
        n = self.lengths[s]
        J = self.length
        if self.max_gap is None or (J - 1) * self.max_gap >= n:
            idx = sorted(rng.choice(n, size=J, replace=n < J).tolist())
        else:
            span = min(n - 1, (J - 1) * self.max_gap)
            start = int(rng.integers(0, n - span))
            inner = sorted(rng.choice(np.arange(1, span), size=J - 2, replace=False).tolist())
            idx = [start] + [start + i for i in inner] + [start + span] if J > 1 else [start]
        return s, [int(i) for i in idx]


@torch.no_grad()
def compute_feature_cache(
    backbone: Callable[[torch.Tensor], dict[int, torch.Tensor]],
    images: Iterable[np.ndarray],
    count: int,
    strides: Sequence[int],
    batch_size: int = 8,
    dtype: torch.dtype = torch.float16,
    progress: bool = True,
    desc: str = "features",
) -> dict[int, torch.Tensor]:
    """Run a frozen ``backbone`` over ``count`` equally sized uint8 RGB images.

    Returns ``{stride: tensor (count, C, H/stride, W/stride)}`` in ``dtype`` (fp16 halves the
    RAM; the heads are trained in fp32 on these features).
    """
    from tqdm import tqdm

    out: dict[int, torch.Tensor] = {}
    batch: list[np.ndarray] = []
    done = 0
    bar = tqdm(total=count, desc=desc, unit="img", disable=not progress)

    def flush() -> None:
        nonlocal done
        x = torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).float().div_(255.0)
        feats = backbone(x)
        for s in strides:
            if s not in out:  # one allocation per stride: no concatenation copy at the end
                out[s] = torch.empty((count, *feats[s].shape[1:]), dtype=dtype)
            out[s][done:done + len(batch)] = feats[s].to(dtype)
        done += len(batch)
        bar.update(len(batch))
        batch.clear()

    for img in images:
        batch.append(img)
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    bar.close()
    if done != count:
        raise ValueError(f"compute_feature_cache: {done} images, {count} expected")
    return dict(out)


class LossLog:
    """A trainer's running loss means (momentum 0.98, non-finite values ignored): one history row
    every ``every`` steps (also printed as a JSON line when ``quiet``, for log files) and the
    progress bar's postfix.  ``history`` may be a list the checkpoint state already refers to."""

    def __init__(self, bar: Any, quiet: bool, history: list | None = None, every: int = 50):
        self.bar, self.quiet, self.every = bar, bool(quiet), int(every)
        self.history: list[dict] = history if history is not None else []
        self.run: dict[str, float] = {}

    def update(self, step: int, losses: dict[str, Any], **extra: float) -> None:
        """Record the losses of ``step`` (after it was taken); ``extra`` values are set as is."""
        for k, v in losses.items():
            v = float(v.detach()) if torch.is_tensor(v) else float(v)
            if np.isfinite(v):
                self.run[k] = 0.98 * self.run.get(k, v) + 0.02 * v
        self.run.update({k: float(v) for k, v in extra.items()})
        if step % self.every == 0:
            self.history.append({"step": step, **{k: round(v, 4) for k, v in self.run.items()}})
            if self.quiet:
                print(json.dumps(self.history[-1]), flush=True)
        self.bar.set_postfix({k: f"{v:.3f}" for k, v in self.run.items()})
        self.bar.update(1)


class Checkpointer:
    """Periodic, atomic training checkpoints in ``out_dir/checkpoint.pt``.

    ``maybe_save(step, state_fn)`` saves when ``every_seconds`` have passed since the last save;
    ``state_fn()`` returns the dict to save (model/optimizer/scheduler state dicts, etc.). The RNG
    states of Python, NumPy and torch are added, and :meth:`load` restores them.
    """

    def __init__(self, out_dir: str | os.PathLike, every_seconds: float = 180.0) -> None:
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / "checkpoint.pt"
        self.every = float(every_seconds)
        self._last = time.monotonic()

    def save(
        self, step: int, state: dict[str, Any], rng: np.random.Generator | None = None
    ) -> Path:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        full = dict(state)
        full["step"] = int(step)
        full["rng"] = {
            "python": random.getstate(),
            "numpy": np.random.get_state(),
            "torch": torch.get_rng_state(),
            "generator": rng.bit_generator.state if rng is not None else None,
        }
        tmp = self.path.with_suffix(".tmp")
        torch.save(full, tmp)
        os.replace(tmp, self.path)
        self._last = time.monotonic()
        return self.path

    def maybe_save(
        self, step: int, state_fn: Callable[[], dict[str, Any]], rng: np.random.Generator | None
    ) -> bool:
        if time.monotonic() - self._last < self.every:
            return False
        self.save(step, state_fn(), rng)
        return True

    def resume(self, rng: np.random.Generator | None = None) -> dict[str, Any]:
        """:meth:`load` for ``--resume``: the saved dict, or InputError when there is none."""
        st = self.load(rng)
        if st is None:
            raise InputError(f"--resume: no checkpoint in '{self.out_dir}'")
        return st

    @staticmethod
    def training_state(model: torch.nn.Module, opt: Any, sched: Any, **extra: Any
                       ) -> dict[str, Any]:
        """The usual checkpoint dict: model, optimiser and scheduler states plus ``extra``."""
        return {"model": model.state_dict(), "opt": opt.state_dict(),
                "sched": sched.state_dict(), **extra}

    def restore(self, rng: np.random.Generator | None, model: torch.nn.Module, opt: Any,
                sched: Any) -> dict[str, Any]:
        """:meth:`resume` a :meth:`training_state` checkpoint into ``model``, ``opt`` and
        ``sched``; returns the saved dict (``step`` and the extras)."""
        st = self.resume(rng)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        sched.load_state_dict(st["sched"])
        return st

    def load(self, rng: np.random.Generator | None = None) -> dict[str, Any] | None:
        """The saved dict (RNG states restored), or None when there is no checkpoint."""
        if not self.path.is_file():
            return None
        full = torch.load(self.path, map_location="cpu", weights_only=False)
        r = full.get("rng", {})
        if r.get("python") is not None:
            random.setstate(r["python"])
        if r.get("numpy") is not None:
            np.random.set_state(r["numpy"])
        if r.get("torch") is not None:
            torch.set_rng_state(r["torch"])
        if rng is not None and r.get("generator") is not None:
            rng.bit_generator.state = r["generator"]
        return full


def load_or_build(path: str | os.PathLike | None, key: str,
                  build: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """A cache dict: the file ``path`` when it exists and was built with ``key``, else
    ``build()`` (stamped with ``key`` and saved atomically to ``path`` when given).

    A file is memory-mapped, not read into memory: several trainings reading the same
    cache share one copy in the page cache, and only the rows drawn are ever touched."""
    if path and Path(path).is_file():
        obj = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
        if obj.get("key") == key:
            return obj
    obj = build()
    obj["key"] = key
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(str(path) + ".tmp")
        torch.save(obj, tmp)
        tmp.replace(path)
    return obj


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_manifest(
    path: str | os.PathLike, weight_files: Iterable[str | os.PathLike], **info: Any
) -> dict[str, Any]:
    """Write a JSON manifest: ``info`` plus name, size and sha256 of each weight file."""
    files = []
    for w in weight_files:
        p = Path(w)
        files.append({"file": p.name, "bytes": p.stat().st_size, "sha256": sha256_file(p)})
    doc = {
        **info,
        "files": files,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "written": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    Path(path).write_text(json.dumps(doc, indent=2, default=str) + "\n")
    return doc


def check_data_root(root: str | os.PathLike) -> Path:
    """A DAVIS-style root (``JPEGImages/480p`` and ``Annotations/480p``), else InputError."""
    r = Path(root)
    if not (r / "JPEGImages" / "480p").is_dir() or not (r / "Annotations" / "480p").is_dir():
        raise InputError(f"--data '{root}': not a DAVIS folder (JPEGImages/480p, Annotations/480p)")
    return r


def add_common_args(p: argparse.ArgumentParser, data_required: bool = True,
                    data_help: str = "DAVIS-style training root") -> None:
    """Options shared by every trainer."""
    p.add_argument("--data", required=data_required, help=data_help)
    p.add_argument("--out", required=True, help="output folder (checkpoints, weights, log)")
    p.add_argument("--fold", type=int, default=None, help="hold out this fold (default: none)")
    p.add_argument("--folds", type=int, default=5,
                   help="number of cross-validation folds (default: 5)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--iters", type=int, default=3000, help="training iterations")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--checkpoint-every", type=float, default=180.0,
                   help="seconds between checkpoints (default: 180)")
    p.add_argument("--cache", default=None, help="feature cache file (default: none, in RAM)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


STATIC_SEED = 4321  # clip synthesis from photographs (fixed, independent of --seed)


def add_static_args(p: argparse.ArgumentParser, unit: str, count: int,
                    ratio: float | None) -> None:
    """``--static DIR`` (repeatable) and the options of the static stage; ``unit`` names what is
    synthesised (``clips``, ``pairs``, ``frames``, ``videos``), ``--static-<unit>`` how many.
    ``ratio=None``: the trainer has no batch mixture (no ``--static-iters``/``--static-ratio``)."""
    p.add_argument("--static", action="append", default=[], metavar="DIR",
                   help=f"photographs with object masks to synthesise training {unit} from "
                        "(repeatable)")
    p.add_argument(f"--static-{unit}", type=int, default=count,
                   help=f"{unit} synthesised from the photographs")
    if ratio is not None:
        p.add_argument("--static-iters", type=int, default=0,
                       help=f"first iterations on photograph {unit} only (the static stage)")
        p.add_argument("--static-ratio", type=float, default=ratio,
                       help=f"share of photograph {unit} in each batch after the static stage")
    p.add_argument("--static-distractors", type=float, default=0.5,
                   help=f"share of photograph {unit} with a similar object next to the target")
    p.add_argument("--static-holdout", action="store_true",
                   help="leave out the photographs held out for evaluation (the click-to-mask "
                        "and multi-object benchmarks score on them); off by default so that "
                        "earlier weights' commands reproduce them")


def check_static_args(args: argparse.Namespace, unit: str) -> list:
    """The photographs of ``args.static`` (InputError on a bad folder or option), [] without."""
    if not args.static:
        return []
    from segtrack.data.static import load_static_sets, without_heldout

    photos = load_static_sets(args.static)
    if getattr(args, "static_holdout", False):
        photos = without_heldout(photos)
    if not 0.0 <= getattr(args, "static_ratio", 0.0) <= 1.0:
        raise InputError(f"--static-ratio {args.static_ratio}: must be between 0 and 1")
    if not 0.0 <= args.static_distractors <= 1.0:
        raise InputError(
            f"--static-distractors {args.static_distractors}: must be between 0 and 1")
    n = getattr(args, f"static_{unit}")
    if n < 1:
        raise InputError(f"--static-{unit} {n}: must be at least 1")
    return photos


def static_share(rng: np.random.Generator, batch: int, step: int, args: argparse.Namespace,
                 ) -> int:
    """How many of a batch's ``batch`` samples come from photographs at iteration ``step``:
    all of them in the static stage (``--static-iters``), then ``Binomial(batch,
    --static-ratio)``."""
    ratio = 1.0 if step < args.static_iters else args.static_ratio
    return int(rng.binomial(batch, ratio))


def mixed_batch(rng: np.random.Generator, n_video: int, n_static: int, batch: int, step: int,
                args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    """Indices (into the video samples, into the photograph samples) of one batch of ``batch``
    samples drawn without replacement, the split given by :func:`static_share`."""
    k = static_share(rng, batch, step, args)
    static = rng.choice(n_static, size=k, replace=False)
    video = rng.choice(n_video, size=batch - k, replace=False)
    return video.astype(np.int64), static.astype(np.int64)


def start_run(
    seed: int, out: str | os.PathLike, threads: int = 1
) -> tuple[np.random.Generator, Path, float]:
    """Common start of a training run: cap torch/OpenCV threads (the CPU is shared), seed
    everything, create the output folder. Returns ``(rng, out_dir, start_time)``."""
    import cv2

    torch.set_num_threads(int(threads))
    cv2.setNumThreads(int(threads))
    rng = seed_everything(seed)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    return rng, out_dir, time.time()
