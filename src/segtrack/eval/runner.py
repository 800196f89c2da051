"""Benchmark runner: track dataset sequences with a method and score them.

``bench_davis`` implements ``segtrack bench --dataset davis``: every sequence is streamed frame by
frame through the method (initialised from the first annotated frame's mask, or from that mask's
min-max box with ``init="box"``), scored on the fly with the DAVIS J/F measures (semi-supervised
protocol: first and last frames left out), and timed (tracker time only, decoding and scoring
excluded). ``evaluate_davis_results`` implements ``segtrack eval --dataset davis``.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Sequence as Seq
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from segtrack.errors import InputError
from segtrack.profiling import stage


def peak_memory_mb() -> float:
    """Peak resident memory of this process in MiB (Linux ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _select(seqs: list, names: Seq[str] | None) -> list:
    if not names:
        return seqs
    by_name = {s.name: s for s in seqs}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise InputError(f"unknown sequence(s): {', '.join(missing)}")
    return [by_name[n] for n in names]


def bench_sequence(
    seq: Any,
    method: str,
    *,
    init: str = "mask",
    device: str = "cpu",
    params: dict[str, Any] | None = None,
    out_dir: str | Path | None = None,
) -> tuple[dict, dict]:
    """Track and score one DAVIS sequence; returns ``(J/F result, {frames, seconds, fps})``."""
    from segtrack.api import track_video
    from segtrack.eval.davis_metrics import SequenceEvaluator
    from segtrack.geometry import mask_to_box

    gt0 = seq.read_labels(0)
    if gt0 is None:
        raise InputError(f"sequence '{seq.name}': first frame has no annotation")
    objects: dict[int, Any] = {}
    for k in np.unique(gt0):
        if k == 0:
            continue
        m = gt0 == k
        objects[int(k)] = {"mask": m} if init == "mask" else {"box": mask_to_box(m)}
    # objects that first appear later (DAVIS-2017 / YouTube-VOS style)
    starts = {k: 0 for k in objects}
    for k, f in (seq.first_frames or {}).items():
        if int(k) not in objects and f > 0:
            gtf = seq.read_labels(f)
            m = gtf == int(k)
            if m.any():
                objects[int(k)] = {"mask": m} if init == "mask" else {"box": mask_to_box(m)}
                starts[int(k)] = int(f)
    evaluator = SequenceEvaluator()
    writer = None
    if out_dir is not None:
        from segtrack.io import MaskWriter

        writer = MaskWriter(Path(out_dir) / seq.name)
    seq_time = 0.0
    init_time = 0.0
    n = 0
    t_start = time.perf_counter()
    first_tracked = None
    for res in track_video(
        list(seq.frames),
        objects=objects,
        starts=starts,
        method=method,
        device=device,
        params=params,
    ):
        i = res.frame.index
        gt = seq.read_labels(i)
        if gt is not None:
            evaluator.add(gt, res.labels, seq.read_void(i))
        if writer is not None:
            with stage("write"):
                writer.write(res.frame.name, res.labels)
        if res.started and not n:
            init_time += res.seconds
        if i > 0:  # the init frame is given, not tracked
            seq_time += res.seconds
            n += 1
            if first_tracked is None:
                first_tracked = time.perf_counter() - t_start
    timing = {"frames": n, "seconds": seq_time, "fps": n / max(seq_time, 1e-9),
              "init_seconds": init_time, "first_frame_seconds": first_tracked or 0.0}
    return evaluator.result(semi_supervised=True), timing


def _bench_ray(seqs: list, kwargs: dict, workers: int | None, address: str | None,
               bar: Any) -> dict[str, tuple[dict, dict]]:
    """One Ray task per sequence (issue 9); results keyed by sequence name."""
    from segtrack.batch.runner import ensure_ray

    started = ensure_ray(address, workers)  # InputError when Ray is missing / unreachable
    import ray

    def _one(seq: Any, kw: dict) -> tuple[dict, dict]:
        import cv2
        import torch

        cv2.setNumThreads(1)
        torch.set_num_threads(1)
        return bench_sequence(seq, **kw)

    try:
        remote = ray.remote(num_cpus=1, max_retries=2)(_one)
        refs = {remote.remote(seq, kwargs): seq.name for seq in seqs}
        out: dict[str, tuple[dict, dict]] = {}
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                try:
                    out[refs[ref]] = ray.get(ref)
                except Exception as e:  # a task's InputError arrives wrapped by Ray
                    cause = getattr(e, "cause", None)
                    if isinstance(cause, InputError):
                        raise InputError(str(cause)) from None
                    raise
                bar.update(1)
        return out
    finally:
        if started:
            ray.shutdown()


def bench_davis(
    root: str | Path,
    method: str,
    *,
    init: str = "mask",
    sequences: Seq[str] | None = None,
    device: str = "cpu",
    params: dict[str, Any] | None = None,
    out_dir: str | Path | None = None,
    quiet: bool = False,
    engine: str = "local",
    workers: int | None = None,
    address: str | None = None,
    profile: bool = False,
) -> dict[str, Any]:
    """Track and score DAVIS sequences; returns the summary dict (J_M ... JF, fps, per sequence).

    ``profile`` adds ``stages_ms``: milliseconds per tracked frame of each stage (local engine).

    ``engine="ray"`` runs one Ray task per sequence (``workers`` CPUs of a local Ray instance,
    or the cluster at ``address``); the summary is the same (``peak_memory_mb`` is then the
    driver's only).
    """
    from segtrack.eval.datasets import load_davis
    from segtrack.eval.davis_metrics import summarize

    if init not in ("mask", "box"):
        raise InputError(f"--init must be 'mask' or 'box', got '{init}'")
    if engine not in ("local", "ray"):
        raise InputError(f"--engine must be 'local' or 'ray', got '{engine}'")
    seqs = _select(load_davis(root), sequences)
    if not seqs:
        raise InputError(f"no sequences found under '{root}'")
    kwargs = {"method": method, "init": init, "device": device, "params": params,
              "out_dir": str(out_dir) if out_dir else None}
    per_seq: dict[str, dict] = {}
    timing: dict[str, dict] = {}
    from segtrack import profiling

    was_on = profiling.enabled()
    if profile and engine == "local":  # stages are timed in this process only
        profiling.reset()
        profiling.enable()
    t_wall = time.perf_counter()
    if engine == "ray":
        bar = tqdm(total=len(seqs), desc=f"bench {method} (ray)", unit="seq", disable=quiet)
        try:
            results = _bench_ray(seqs, kwargs, workers, address, bar)
        finally:
            bar.close()
        for seq in seqs:  # dataset order, as the local engine
            per_seq[seq.name], timing[seq.name] = results[seq.name]
    else:
        bar = tqdm(seqs, desc=f"bench {method}", unit="seq", disable=quiet)
        try:
            for seq in bar:
                bar.set_postfix_str(seq.name)
                per_seq[seq.name], timing[seq.name] = bench_sequence(seq, **kwargs)
        finally:
            profiling.enable(was_on)
    total_frames = sum(t["frames"] for t in timing.values())
    total_time = sum(t["seconds"] for t in timing.values())
    summary = summarize(per_seq)
    summary["fps"] = total_frames / max(total_time, 1e-9)
    summary["frames"] = total_frames
    summary["track_seconds"] = total_time
    summary["init_seconds"] = float(np.mean([t["init_seconds"] for t in timing.values()]))
    summary["first_frame_seconds"] = float(
        np.mean([t["first_frame_seconds"] for t in timing.values()]))
    summary["cold_start_seconds"] = timing[seqs[0].name]["first_frame_seconds"]
    if profile and engine == "local":
        summary["stages_ms"] = profiling.table(total_time, total_frames)
    summary["wall_seconds"] = time.perf_counter() - t_wall
    summary["engine"] = engine
    summary["peak_memory_mb"] = peak_memory_mb()
    summary["method"] = method
    summary["init"] = init
    summary["timing"] = timing
    return summary


def evaluate_davis_results(
    root: str | Path,
    results: str | Path,
    *,
    sequences: Seq[str] | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """Score result PNGs laid out as ``results/<sequence>/<frame stem>.png`` against DAVIS."""
    from segtrack.eval.datasets import load_davis
    from segtrack.eval.davis_metrics import SequenceEvaluator, summarize
    from segtrack.io import read_label_png

    results = Path(results)
    if not results.is_dir():
        raise InputError(f"results folder '{results}' does not exist")
    seqs = load_davis(root)
    if sequences:
        seqs = _select(seqs, sequences)
    else:
        seqs = [s for s in seqs if (results / s.name).is_dir()]
        if not seqs:
            raise InputError(f"results folder '{results}' holds no sequence of '{root}'")
    per_seq = {}
    for seq in tqdm(seqs, desc="eval", unit="seq", disable=quiet):
        ev = SequenceEvaluator()
        for i, fpath in enumerate(seq.frames):
            gt = seq.read_labels(i)
            if gt is None:
                continue
            rp = results / seq.name / (Path(fpath).stem + ".png")
            if not rp.exists():
                raise InputError(f"missing result '{rp}' for sequence '{seq.name}'")
            pred = read_label_png(rp)
            if pred.shape != gt.shape:
                raise InputError(
                    f"result '{rp}' is {pred.shape[1]}x{pred.shape[0]} but the annotation is "
                    f"{gt.shape[1]}x{gt.shape[0]}"
                )
            ev.add(gt, pred, seq.read_void(i))
        per_seq[seq.name] = ev.result(semi_supervised=True)
    return summarize(per_seq)


def load_box_dataset(root: str | Path, sequences: Seq[str] | None = None) -> list:
    """Detect and read an OPE dataset: OTB, LaSOT or GOT-10k (``root`` = the split folder's parent
    or the split folder itself)."""
    from segtrack.eval import datasets as ds

    r = Path(root)
    if not r.is_dir():
        raise InputError(f"dataset root '{root}' does not exist")
    if any(r.glob("*/groundtruth_rect*.txt")):
        return ds.load_otb(r, sequences)
    if any(r.glob("*/*/full_occlusion.txt")) or any(r.glob("*/full_occlusion.txt")):
        return ds.load_lasot(r, sequences)
    for split in ("val", "test", "train"):
        if (r / split).is_dir():
            return ds.load_got10k(r, split, sequences)
    if any(r.glob("*/absence.label")) or (r / "list.txt").is_file():
        return ds.load_got10k(r.parent, r.name, sequences)
    raise InputError(f"'{root}' is not an OTB, LaSOT or GOT-10k folder")


def _read_box_file(path: Path) -> np.ndarray:
    import re

    rows = []
    for ln, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            vals = [float(v) for v in re.split(r"[,\s]+", line.strip())]
        except ValueError:
            raise InputError(f"'{path}' line {ln}: not numbers: {line!r}") from None
        if len(vals) != 4:
            raise InputError(f"'{path}' line {ln}: expected 4 values x,y,w,h")
        rows.append(vals)
    return np.asarray(rows, float).reshape(-1, 4)


def evaluate_ope_results(
    root: str | Path, results: str | Path, *, sequences: Seq[str] | None = None
) -> dict[str, Any]:
    """Score ``results/<sequence>.txt`` (one ``x,y,w,h`` per frame) on OTB / LaSOT / GOT-10k."""
    from segtrack.eval.ope import evaluate_ope

    results = Path(results)
    if not results.is_dir():
        raise InputError(f"results folder '{results}' does not exist")
    seqs = load_box_dataset(root, sequences)
    if not sequences:
        seqs = [s for s in seqs if (results / f"{s.name}.txt").is_file()]
        if not seqs:
            raise InputError(f"results folder '{results}' holds no <sequence>.txt of '{root}'")
    pred, gt, visible = {}, {}, {}
    for s in seqs:
        f = results / f"{s.name}.txt"
        if not f.is_file():
            raise InputError(f"missing result '{f}' for sequence '{s.name}'")
        pred[s.name] = _read_box_file(f)
        gt[s.name] = s.boxes
        if s.absent is not None:
            visible[s.name] = ~np.asarray(s.absent, bool)
    return evaluate_ope(pred, gt, visible_by_seq=visible or None)


def evaluate_vot_results(
    root: str | Path, results: str | Path, *, sequences: Seq[str] | None = None
) -> dict[str, Any]:
    """Score VOT raw results ``results/<sequence>/<sequence>_001.txt`` (baseline experiment)."""
    from segtrack.eval.datasets import load_vot
    from segtrack.eval.vot import evaluate_vot, read_vot_results, suggest_eao_interval
    from segtrack.io.sources import read_image

    results = Path(results)
    if not results.is_dir():
        raise InputError(f"results folder '{results}' does not exist")
    seqs = load_vot(root, sequences)
    if not sequences:
        seqs = [s for s in seqs if (results / s.name / f"{s.name}_001.txt").is_file()]
        if not seqs:
            raise InputError(f"results folder '{results}' holds no VOT result of '{root}'")
    res, gt, sizes = {}, {}, {}
    for s in seqs:
        f = results / s.name / f"{s.name}_001.txt"
        if not f.is_file():
            raise InputError(f"missing result '{f}' for sequence '{s.name}'")
        res[s.name] = read_vot_results(f)
        gt[s.name] = s.polygons if s.polygons is not None else list(s.boxes)
        h, w = read_image(s.frames[0]).shape[:2]
        sizes[s.name] = (w, h)
    interval = suggest_eao_interval([len(s) for s in seqs])
    out = evaluate_vot(res, gt, sizes, interval=interval)
    out["eao_interval"] = list(interval)
    return out


def format_flat(summary: dict[str, Any]) -> str:
    """Top-level scalar scores, one per line."""
    lines = []
    for k, v in summary.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            lines.append(f"{k:>16s}  {v:.4f}" if isinstance(v, float) else f"{k:>16s}  {v}")
    return "\n".join(lines)


def timestamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")
