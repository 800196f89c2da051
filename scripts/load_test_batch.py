"""Load test of ``segtrack batch`` (issue 9): throughput local vs Ray, and a killed Ray worker.

1. writes ``--n`` short synthetic videos (``segtrack.batch.synthetic``) and their manifest;
2. runs the plain sequential loop (``engine="local"``) and times it;
3. runs the same manifest on a local Ray instance with ``--workers`` CPUs and, once
   ``--kill-after`` videos are finished, SIGKILLs one Ray worker process that is executing a
   task (found by its process title ``ray::_ray_entry`` under /proc);
4. checks that every output is complete (done-marker, one PNG per frame, boxes.json with every
   frame, no staging folder left) and identical to the sequential run's masks;
5. prints and writes a JSON report (``--report``).

Not a unit test; run once, results go to notes/bench_batch.md. Example::

    nice -n 10 python3 scripts/load_test_batch.py --root /tmp/segtrack_load --n 200 \\
        --report /tmp/segtrack_load/report.json
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def _ray_task_workers() -> list[int]:
    """PIDs of this user's Ray worker processes currently executing ``_ray_entry``."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cmd.startswith("ray::_ray_entry"):
            pids.append(int(d.name))
    return sorted(pids)


def _steady(stamps: list[float]) -> float:
    """Videos/min between the first and the last finished video (start-up excluded)."""
    if len(stamps) < 2 or stamps[-1] <= stamps[0]:
        return 0.0
    return 60.0 * (len(stamps) - 1) / (stamps[-1] - stamps[0])


def _check_outputs(out: Path, names: list[str], frames: int, ref: Path | None) -> dict:
    from segtrack.batch.runner import DONE_FILE, STAGE_PREFIX

    bad: list[str] = []
    differ: list[str] = []
    for name in names:
        d = out / name
        pngs = sorted(d.glob("*.png"))
        try:
            boxes = json.loads((d / "boxes.json").read_text())["frames"]
            done = json.loads((d / DONE_FILE).read_text())
        except (OSError, ValueError, KeyError):
            bad.append(name)
            continue
        if len(pngs) != frames or len(boxes) != frames or done.get("frames") != frames:
            bad.append(name)
            continue
        if ref is not None:
            for p in pngs:
                if not filecmp.cmp(p, ref / name / p.name, shallow=False):
                    differ.append(name)
                    break
    leftovers = [p.name for p in out.iterdir() if p.name.startswith(STAGE_PREFIX)]
    return {"complete": len(names) - len(bad), "incomplete": bad, "differ_from_local": differ,
            "staging_left": leftovers}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", required=True, help="scratch folder (inputs and outputs)")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--kill-after", type=int, default=None,
                    help="kill a worker after this many videos (default n/3)")
    ap.add_argument("--skip-local", action="store_true")
    ap.add_argument("--no-kill", action="store_true", help="Ray run without killing a worker")
    ap.add_argument("--report", help="write the JSON report here")
    args = ap.parse_args(argv)

    from segtrack.batch import read_manifest, run_batch
    from segtrack.batch.synthetic import make_synthetic_batch

    root = Path(args.root)
    inputs = root / "inputs"
    manifest = inputs / "manifest.csv"
    t = time.perf_counter()
    if not manifest.is_file():
        make_synthetic_batch(inputs, args.n, frames=args.frames, height=args.height,
                             width=args.width)
    gen_s = time.perf_counter() - t
    names = [tk.name for tk in read_manifest(manifest)]
    report: dict = {"n": len(names), "frames": args.frames,
                    "size": [args.height, args.width], "workers": args.workers,
                    "generate_seconds": gen_s, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                    "uptime_before": subprocess.run(["uptime"], capture_output=True,
                                                    text=True).stdout.strip()}

    out_local = root / "out_local"
    if not args.skip_local:
        import shutil

        shutil.rmtree(out_local, ignore_errors=True)
        stamps: list[float] = []
        s = run_batch(manifest, out_local, engine="local", quiet=True,
                      on_result=lambda r: stamps.append(time.perf_counter()))
        report["local"] = {k: s[k] for k in ("done", "failed", "wall_seconds", "videos_per_min")}
        report["local"]["steady_videos_per_min"] = _steady(stamps)
        print(f"local: {s['done']} done in {s['wall_seconds']:.1f} s = "
              f"{s['videos_per_min']:.1f} videos/min (steady "
              f"{report['local']['steady_videos_per_min']:.1f})", flush=True)

    out_ray = root / "out_ray"
    import shutil

    shutil.rmtree(out_ray, ignore_errors=True)
    kill_after = args.kill_after if args.kill_after is not None else max(1, len(names) // 3)
    kills: list[dict] = []
    finished = [0]

    ray_stamps: list[float] = []

    def on_result(rec: dict) -> None:
        finished[0] += 1
        ray_stamps.append(time.perf_counter())
        if finished[0] == kill_after and not kills and not args.no_kill:
            pids = _ray_task_workers()
            if pids:
                pid = pids[0]
                os.kill(pid, signal.SIGKILL)  # a Ray worker this run started
                kills.append({"pid": pid, "after_videos": finished[0],
                              "busy_workers_seen": len(pids)})
                print(f"killed Ray worker pid {pid} after {finished[0]} videos", flush=True)
            else:
                kills.append({"pid": None, "after_videos": finished[0], "busy_workers_seen": 0})
                print("no busy Ray worker found to kill", flush=True)

    s = run_batch(manifest, out_ray, engine="ray", workers=args.workers, quiet=True,
                  on_result=on_result)
    retried = [r["name"] for r in s["tasks"] if r.get("attempts", 1) > 1]
    report["ray"] = {k: s[k] for k in ("done", "failed", "wall_seconds", "videos_per_min",
                                       "stale_partials", "retried")}
    report["ray"]["retried_tasks"] = retried
    report["ray"]["steady_videos_per_min"] = _steady(ray_stamps)
    report["kill"] = kills
    report["check"] = _check_outputs(out_ray, names, args.frames,
                                     None if args.skip_local else out_local)
    report["uptime_after"] = subprocess.run(["uptime"], capture_output=True,
                                            text=True).stdout.strip()
    print(f"ray: {s['done']} done, {s['failed']} failed in {s['wall_seconds']:.1f} s = "
          f"{s['videos_per_min']:.1f} videos/min (steady "
          f"{report['ray']['steady_videos_per_min']:.1f}); retried {retried}", flush=True)
    print(json.dumps(report["check"]), flush=True)
    if args.report:
        Path(args.report).write_text(json.dumps(report, indent=2) + "\n")
    ok = (report["check"]["complete"] == len(names) and not report["check"]["staging_left"]
          and not report["check"]["differ_from_local"] and s["failed"] == 0)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
