"""Batch runner: one tracking task per manifest row, sequentially or fanned out on Ray (issue 9).

Each task tracks its video with :func:`segtrack.api.track_video` and writes what
``segtrack track`` writes (one DAVIS label PNG per frame, ``boxes.json``, ``run.json``) into a
hidden staging folder ``OUT/.segtrack-partial-<name>-<id>``. The done-marker ``done.json``
(holding the task's fingerprint) is written last, atomically, and only then is the staging
folder renamed to ``OUT/<name>``. So ``OUT/<name>/done.json`` exists only for complete
outputs; on a restart those tasks are skipped (when the fingerprint still matches the manifest
row), anything else is recomputed, and staging folders left by killed attempts are removed.

Engines: ``local`` runs the plain sequential loop in this process; ``ray`` submits one Ray task
per video (a local Ray instance with ``workers`` CPUs by default, or the cluster at
``address``). Failures that are the input's fault (:class:`~segtrack.errors.InputError`) are
final; other exceptions and dead worker processes are retried up to ``retries`` times
(Ray's ``max_retries`` / ``retry_exceptions``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from segtrack.batch.manifest import Task, read_manifest
from segtrack.errors import InputError

__all__ = [
    "DONE_FILE",
    "STAGE_PREFIX",
    "is_done",
    "run_task",
    "run_batch",
    "format_summary",
]

DONE_FILE = "done.json"
STAGE_PREFIX = ".segtrack-partial-"
_TRASH_PREFIX = ".segtrack-old-"


def _done_record(out_root: Path, name: str) -> dict | None:
    p = out_root / name / DONE_FILE
    try:
        rec = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) else None


def is_done(out_root: str | Path, task: Task, rle: bool = False) -> bool:
    """True when ``OUT/<name>/done.json`` exists and was written for this very task (and, with
    ``rle``, the run also wrote ``masks.rle.json``)."""
    rec = _done_record(Path(out_root), task.name)
    if rec is None or rec.get("fingerprint") != task.fingerprint():
        return False
    return not rle or bool(rec.get("rle"))


def _objects(task: Task, frame_size: tuple[int, int]) -> dict[int, dict]:
    from segtrack.io import read_mask_input
    from segtrack.trackers.base import check_box

    if task.rle is not None or (task.mask and task.mask.lower().endswith(".json")):
        from segtrack.io import coco_rle

        rle = task.rle
        if rle is None:
            try:
                rle = json.loads(Path(task.mask).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                raise InputError(f"mask '{task.mask}' is not a readable RLE JSON file") from None
        m = coco_rle.decode(rle)
        if m.shape != tuple(frame_size):
            raise InputError(f"RLE mask is {m.shape[1]}x{m.shape[0]} but the frame is "
                             f"{frame_size[1]}x{frame_size[0]}")
        if not m.any():
            raise InputError("RLE mask is empty")
        return {1: {"mask": m}}
    if task.mask:
        return {k: {"mask": m} for k, m in read_mask_input(task.mask, frame_size).items()}
    return {1: {"box": check_box(task.box, frame_size, what="box")}}


def _crash_hook(crash_once_dir: str | None, name: str) -> bool:
    """Fault injection for tests / the load test: True the first time ``name`` is seen."""
    if not crash_once_dir:
        return False
    flag = Path(crash_once_dir) / f"{name}.crashed"
    try:
        fd = os.open(flag, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def _publish(stage: Path, final: Path) -> None:
    """Move the complete staging folder to its final name (replacing a stale one)."""
    trash = None
    if final.exists() or final.is_symlink():
        trash = final.with_name(f"{_TRASH_PREFIX}{final.name}-{uuid.uuid4().hex[:8]}")
        os.replace(final, trash)
    os.replace(stage, final)
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)


def run_task(
    task: Task,
    out_root: str | Path,
    *,
    device: str = "cpu",
    rle: bool = False,
    crash_once_dir: str | None = None,
) -> dict[str, Any]:
    """Track one task into ``out_root/<name>``; returns ``{name, status, frames, seconds, ...}``.

    InputError (bad video / mask / box / params) propagates; so do unexpected errors (the
    caller decides about retries). ``rle`` also writes ``masks.rle.json`` (COCO RLE per frame
    and object, :class:`segtrack.io.interchange.RleWriter`). ``crash_once_dir`` (testing
    only) makes the first attempt of every task kill its own process after writing two frames.
    """
    from segtrack.api import track_video
    from segtrack.io import BoxesWriter, MaskWriter, atomic_write_bytes, guard_output, open_source
    from segtrack.trackers.registry import load_tracker

    t_start = time.perf_counter()
    out = Path(out_root)
    final = out / task.name
    protected = [Path(task.video)] + ([Path(task.mask)] if task.mask else [])
    guard_output(final, protected, is_dir=True)
    source = open_source(task.video)
    frame_size = source.frame_size
    if frame_size is None:
        raise InputError(f"cannot read a frame from '{task.video}'")
    total = getattr(source, "num_frames", None)
    if total is not None and task.frame >= total:
        raise InputError(f"frame {task.frame} is outside the video's {total} frames")
    objects = _objects(task, frame_size)
    tracker = load_tracker(task.method, device=device, **task.params)
    crash = _crash_hook(crash_once_dir, task.name)
    out.mkdir(parents=True, exist_ok=True)
    stage = out / f"{STAGE_PREFIX}{task.name}-{uuid.uuid4().hex[:8]}"
    n = 0
    track_seconds = 0.0
    rle_writer = None
    try:
        masks = MaskWriter(stage, protected=protected)
        if rle:
            from segtrack.io.interchange import RleWriter

            rle_writer = RleWriter(stage / "masks.rle.json")
        with BoxesWriter(stage / "boxes.json", protected=protected) as boxes:
            for res in track_video(source, objects=objects, method=task.method,
                                   frame=task.frame, device=device, params=task.params):
                masks.write(res.frame.name, res.labels)
                boxes.add(res.frame.index, res.frame.name, res.predictions)
                if rle_writer is not None:
                    rle_writer.add(res.frame.index, res.frame.name, res.labels)
                n += 1
                track_seconds += res.seconds
                if crash and n == 2:
                    os._exit(17)  # simulated worker death, partial output left behind
        if rle_writer is not None:
            rle_writer.close()
        from segtrack.api import init_record

        init = init_record(task.frame, mask=task.mask, box=task.box, objects=objects)
        if task.rle is not None:
            init["mask"] = "the manifest's inline COCO RLE mask"
        run = {"source": task.video, "frames": n, "track_seconds": track_seconds,
               "fps": n / max(track_seconds, 1e-9), "init_frame": task.frame, "init": init,
               "method": task.method, "params": tracker.params_dict()}
        atomic_write_bytes(stage / "run.json",
                           (json.dumps(run, indent=2, default=str) + "\n").encode())
        done = {"name": task.name, "fingerprint": task.fingerprint(), "task": task.spec(),
                "frames": n, "rle": rle, "seconds": time.perf_counter() - t_start,
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "pid": os.getpid()}
        # the marker is the last file written; the rename below publishes the folder
        atomic_write_bytes(stage / DONE_FILE,
                           (json.dumps(done, indent=2, default=str) + "\n").encode())
        _publish(stage, final)
    except BaseException:
        if rle_writer is not None:
            rle_writer.abort()
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return {"name": task.name, "row": task.row, "status": "done", "frames": n,
            "seconds": time.perf_counter() - t_start, "track_seconds": track_seconds,
            "pid": os.getpid(), "error": ""}


def _failed(task: Task, msg: str, attempts: int = 1) -> dict[str, Any]:
    return {"name": task.name, "row": task.row, "status": "failed", "frames": 0,
            "seconds": 0.0, "track_seconds": 0.0, "error": msg, "attempts": attempts}


def _guarded(task: Task, out_root: str, device: str, rle: bool,
             crash_once_dir: str | None) -> dict:
    """run_task with InputError turned into a final 'failed' record (not retried)."""
    try:
        return run_task(task, out_root, device=device, rle=rle, crash_once_dir=crash_once_dir)
    except InputError as e:
        return _failed(task, str(e))


def _ray_entry(task: Task, out_root: str, device: str, rle: bool,
               crash_once_dir: str | None) -> dict:
    """Body of one Ray task: single-threaded numerics (one task per CPU)."""
    with contextlib.suppress(Exception):
        import cv2

        cv2.setNumThreads(1)
    with contextlib.suppress(Exception):
        import torch

        torch.set_num_threads(1)
    return _guarded(task, out_root, device, rle, crash_once_dir)


def _cleanup_stages(out_root: Path) -> dict[str, int]:
    """Remove staging / trash folders left by killed attempts; returns their count per task."""
    found: dict[str, int] = {}
    if not out_root.is_dir():
        return found
    for p in out_root.iterdir():
        if p.is_dir() and (p.name.startswith(STAGE_PREFIX) or p.name.startswith(_TRASH_PREFIX)):
            if p.name.startswith(STAGE_PREFIX):
                name = p.name[len(STAGE_PREFIX):].rsplit("-", 1)[0]
                found[name] = found.get(name, 0) + 1
            shutil.rmtree(p, ignore_errors=True)
    return found


def _run_local(tasks, out_root, device, rle, retries, crash_once_dir, on_result) -> None:
    for task in tasks:
        last = ""
        for attempt in range(1, retries + 2):
            try:
                rec = run_task(task, out_root, device=device, rle=rle,
                               crash_once_dir=crash_once_dir)
                rec["attempts"] = attempt
                break
            except InputError as e:
                rec = _failed(task, str(e), attempt)
                break
            except Exception as e:  # noqa: BLE001 - retried, then reported
                last = f"{type(e).__name__}: {e}"
                rec = _failed(task, last, attempt)
        on_result(rec)


def _check_address(address: str) -> None:
    """Fail fast (InputError) when a host:port Ray address does not accept connections."""
    import socket

    hostport = address.split("://", 1)[-1]
    if address == "auto" or ":" not in hostport:
        return
    host, _, port = hostport.rpartition(":")
    try:
        port_n = int(port)
    except ValueError:
        raise InputError(f"--address '{address}': expected HOST:PORT") from None
    try:
        with socket.create_connection((host or "127.0.0.1", port_n), timeout=5):
            pass
    except OSError as e:
        raise InputError(f"--address '{address}': cannot connect to Ray ({e.strerror or e})"
                         ) from None


def ensure_ray(address: str | None, workers: int | None) -> bool:
    """Connect to the Ray cluster at ``address`` or start a local instance with ``workers``
    CPUs, unless Ray is already initialised; returns True when this call started it."""
    try:
        import ray
    except ImportError:
        raise InputError("--engine ray needs Ray: pip install 'segtrack[batch]'") from None
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                              "configure_logging": False}
    if address:
        _check_address(address)
        try:
            ray.init(address=address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise InputError(f"--address '{address}': cannot connect to Ray: {e}") from None
    else:
        ray.init(num_cpus=workers or os.cpu_count() or 1, **kwargs)
    return True


def _run_ray(tasks, out_root, device, rle, retries, crash_once_dir, on_result, started):
    import ray

    try:
        remote = ray.remote(num_cpus=1, max_retries=retries, retry_exceptions=True)(_ray_entry)
        refs = {}
        for t in tasks:
            refs[remote.remote(t, str(out_root), device, rle, crash_once_dir)] = t
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                task = refs[ref]
                try:
                    rec = ray.get(ref)
                except Exception as e:  # noqa: BLE001 - retries exhausted
                    msg = str(getattr(e, "cause", None) or e).strip().splitlines()
                    rec = _failed(task, (msg[-1] if msg else type(e).__name__)[:300],
                                  retries + 1)
                on_result(rec)
    finally:
        if started:
            ray.shutdown()


def run_batch(
    manifest: str | Path | Sequence[Task],
    out: str | Path,
    *,
    engine: str = "local",
    address: str | None = None,
    workers: int | None = None,
    retries: int = 2,
    device: str = "cpu",
    rle: bool = False,
    quiet: bool = False,
    crash_once_dir: str | None = None,
    on_result: Callable[[dict], None] | None = None,
) -> dict[str, Any]:
    """Run every task of ``manifest`` into ``out``; returns the summary dict.

    Summary keys: ``tasks`` (one record per task, manifest order: name, row, status =
    done | skipped | failed, frames, seconds, attempts, error), ``done``, ``skipped``,
    ``failed``, ``frames``, ``wall_seconds``, ``videos_per_min`` (videos processed in this run
    per wall-clock minute), ``engine``, ``workers``, ``stale_partials`` (staging folders of
    interrupted attempts found and removed), ``retried`` (tasks that needed more than one
    attempt). ``rle`` also writes COCO-RLE masks (``masks.rle.json``) per video.
    ``crash_once_dir`` is fault injection for tests (see :func:`run_task`).
    """
    from tqdm import tqdm

    if engine not in ("local", "ray"):
        raise InputError(f"--engine must be 'local' or 'ray', got '{engine}'")
    if retries < 0:
        raise InputError(f"--retries {retries} must be >= 0")
    if workers is not None and workers < 1:
        raise InputError(f"--workers {workers} must be >= 1")
    tasks = list(manifest) if not isinstance(manifest, (str, Path)) else read_manifest(manifest)
    out_root = Path(out)
    if out_root.exists() and not out_root.is_dir():
        raise InputError(f"output folder '{out}' is an existing file")
    from segtrack.io import guard_output

    protected = [t.video for t in tasks] + [t.mask for t in tasks if t.mask]
    guard_output(out_root, protected, is_dir=True)
    if isinstance(manifest, (str, Path)):
        guard_output(out_root, [manifest], is_dir=True)
    stale = sum(_cleanup_stages(out_root).values())
    records: dict[str, dict] = {}
    todo = []
    for t in tasks:
        if is_done(out_root, t, rle=rle):
            rec = _done_record(out_root, t.name) or {}
            records[t.name] = {"name": t.name, "row": t.row, "status": "skipped",
                               "frames": rec.get("frames", 0), "seconds": 0.0,
                               "track_seconds": 0.0, "attempts": 0, "error": ""}
        else:
            todo.append(t)
    t0 = time.perf_counter()  # wall time includes starting / connecting to Ray
    # connect / start Ray before creating anything (a bad --address leaves no trace)
    started = ensure_ray(address, workers) if engine == "ray" and todo else False
    bar = tqdm(total=len(tasks), initial=len(tasks) - len(todo), desc=f"batch ({engine})",
               unit="video", disable=quiet)

    def _collect(rec: dict) -> None:
        records[rec["name"]] = rec
        bar.update(1)
        if rec["status"] == "failed":
            bar.write(f"failed: {rec['name']} (row {rec['row']}): {rec['error']}")
        if on_result is not None:
            on_result(rec)

    try:
        if todo:
            out_root.mkdir(parents=True, exist_ok=True)
            if engine == "local":
                _run_local(todo, out_root, device, rle, retries, crash_once_dir, _collect)
            else:
                _run_ray(todo, out_root, device, rle, retries, crash_once_dir, _collect, started)
    finally:
        bar.close()
    wall = time.perf_counter() - t0
    killed = _cleanup_stages(out_root)  # partial outputs of attempts that died this run
    stale += sum(killed.values())
    ordered = [records.get(t.name) or _failed(t, "not run", 0) for t in tasks]
    for r in ordered:
        if r["status"] != "skipped" and "attempts" not in r:  # Ray: 1 + dead attempts seen
            r["attempts"] = 1 + killed.get(r["name"], 0)
    done = sum(r["status"] == "done" for r in ordered)
    return {
        "tasks": ordered,
        "done": done,
        "skipped": sum(r["status"] == "skipped" for r in ordered),
        "failed": sum(r["status"] == "failed" for r in ordered),
        "frames": int(sum(r["frames"] for r in ordered if r["status"] == "done")),
        "wall_seconds": wall,
        "videos_per_min": 60.0 * done / wall if wall > 0 and done else 0.0,
        "engine": engine,
        "workers": workers if engine == "ray" else 1,
        "stale_partials": stale,
        "retried": sum(r.get("attempts", 1) > 1 for r in ordered),
        "out": str(out_root),
    }


def format_summary(summary: dict[str, Any], max_rows: int = 50) -> str:
    """Plain-text table: one line per task (failed ones first), then the totals."""
    rows = sorted(summary["tasks"], key=lambda r: (r["status"] != "failed", r["row"]))
    lines = [f"{'name':24s} {'row':>5s} {'status':8s} {'frames':>6s} {'sec':>7s} "
             f"{'tries':>5s}  error"]
    for r in rows[:max_rows]:
        lines.append(f"{r['name'][:24]:24s} {r['row']:5d} {r['status']:8s} {r['frames']:6d} "
                     f"{r['seconds']:7.2f} {r.get('attempts', 1):5d}  {r['error']}")
    if len(rows) > max_rows:
        lines.append(f"... {len(rows) - max_rows} more")
    lines.append(
        f"{summary['done']} done, {summary['skipped']} skipped, {summary['failed']} failed, "
        f"{summary.get('retried', 0)} retried; "
        f"{summary['frames']} frames in {summary['wall_seconds']:.1f} s "
        f"({summary['videos_per_min']:.1f} videos/min, engine {summary['engine']})"
    )
    return "\n".join(lines)
