"""Background tracking jobs of the workbench: forward and backward propagation, progress, cancel.

A job tracks one or more objects of a session from a start frame, where each object has a mask
(drawn by the user, or tracked earlier) or a box keyframe. Forward tracking feeds frames
``start+1, start+2, ...`` to the method's online tracker; backward tracking feeds
``start-1, start-2, ...`` (the same tracker, frames in reverse order). Each object stops before
its next keyframe in that direction, so re-propagating from a corrected frame never overwrites
another correction. Several objects share one :class:`~segtrack.trackers.multi.MultiObjectTracker`
and overlaps are resolved as in :func:`segtrack.track_video`.

Masks are written to the project as they are computed; the job's ``events`` list (frame index
per step) is what the server streams to the browser, which then fetches and draws the mask.
"""

from __future__ import annotations

import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from typing import Any

from segtrack.errors import InputError, SegtrackError
from segtrack.web.project import Conflict, Project

__all__ = ["Job", "JobManager"]

DIRECTIONS = ("both", "forward", "backward")


@dataclass
class Job:
    """State of one tracking job (read by the server, written by the job's thread)."""

    id: str
    session: str
    objects: list[int]
    start: int
    direction: str
    method: str
    params: dict[str, Any] = field(default_factory=dict)
    state: str = "queued"  # queued, loading, running, done, cancelled, error
    message: str = ""
    total: int = 0
    done: int = 0
    current: int = -1
    events: list[int] = field(default_factory=list)  # frame indices in the order computed
    track_seconds: float = 0.0  # tracker time only (as `segtrack track` reports it)
    started_at: float = 0.0
    finished_at: float = 0.0
    cancel_event: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def finished(self) -> bool:
        return self.state in ("done", "cancelled", "error")

    def status(self) -> dict[str, Any]:
        end = self.finished_at or time.time()
        wall = max(end - self.started_at, 1e-9) if self.started_at else 0.0
        return {
            "id": self.id, "session": self.session, "objects": self.objects,
            "start": self.start, "direction": self.direction, "method": self.method,
            "state": self.state, "message": self.message, "total": self.total,
            "done": self.done, "current": self.current,
            "wall_seconds": wall, "track_seconds": self.track_seconds,
            "fps": self.done / wall if wall else 0.0,
            "track_fps": self.done / self.track_seconds if self.track_seconds else 0.0,
        }


class JobManager:
    """Runs at most one tracking job per session, each in its own thread."""

    def __init__(self, project: Project, device: str = "cpu"):
        self.project = project
        self.device = device
        self.jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    def running(self, sid: str) -> Job | None:
        for j in self.jobs.values():
            if j.session == sid and not j.finished:
                return j
        return None

    def start(self, sid: str, objects: list[int], start: int, direction: str = "both",
              method: str | None = None, params: dict[str, Any] | None = None) -> Job:
        """Validate and start a job; InputError for bad requests, Conflict if one runs."""
        from segtrack.trackers.registry import load_tracker

        s = self.project.load(sid)
        if direction not in DIRECTIONS:
            raise InputError(f"direction '{direction}' must be one of {', '.join(DIRECTIONS)}")
        self.project.frame_path(s, start)  # range check
        objs = sorted({int(o) for o in objects})
        method = method or s.get("method") or "auto"
        if method == "auto":  # the best measured method for how the objects were given
            from segtrack.trackers.registry import best_method

            boxed = any((s["keyframes"].get(str(o), {}).get(str(start)) or {}).get("type")
                        == "box" for o in objs)
            method = best_method("box" if boxed else "mask")
        params = dict(params or {})
        load_tracker(method, device=self.device, **params)  # unknown method / bad parameter
        if not objs:
            raise InputError("no object to track: select or create one")
        for o in objs:
            if str(o) not in s["objects"]:
                raise InputError(f"object {o} does not exist")
            kf = s["keyframes"].get(str(o), {}).get(str(start))
            if not (kf and kf.get("box")) and self.project.read_mask(sid, o, start) is None:
                name = s["objects"][str(o)]["name"]
                raise InputError(f"object '{name}' has no mask or box on frame {start}")
        with self._lock:
            if self.running(sid) is not None:
                raise Conflict("a tracking job is already running on this session")
            job = Job(uuid.uuid4().hex[:12], sid, objs, int(start), direction, method, params)
            done = [k for k, j in self.jobs.items() if j.finished]
            for k in done[: max(0, len(done) - 100)]:  # keep the last 100 finished jobs
                del self.jobs[k]
            self.jobs[job.id] = job
        threading.Thread(target=self._run, args=(job,), daemon=True,
                         name=f"segtrack-job-{job.id}").start()
        return job

    def cancel(self, job_id: str) -> Job | None:
        job = self.jobs.get(job_id)
        if job is not None:
            job.cancel_event.set()
        return job

    def wait(self, job_id: str, timeout: float = 60.0) -> Job:
        """Block until the job finishes (tests, benchmarks)."""
        job = self.jobs[job_id]
        t_end = time.time() + timeout
        while not job.finished and time.time() < t_end:
            time.sleep(0.01)
        return job

    # -- the job thread -----------------------------------------------------------------------
    def _run(self, job: Job) -> None:
        job.started_at = time.time()
        job.state = "running"
        try:
            self._propagate(job)
            job.state = "cancelled" if job.cancel_event.is_set() else "done"
        except SegtrackError as e:
            job.state, job.message = "error", str(e)
        except Exception as e:  # noqa: BLE001 - reported to the page, not raised
            job.state, job.message = "error", f"{type(e).__name__}: {e}"
            traceback.print_exc()
        finally:
            job.finished_at = time.time()
            try:  # remember the method used last
                with self.project.edit(job.session) as s:
                    s["method"] = job.method
                    s["last_job"] = job.status()
            except SegtrackError:
                pass

    def _ranges(self, s: dict[str, Any], job: Job) -> list[tuple[str, list[int], dict[int, int]]]:
        """Per direction: the frames to visit and, per object, the first frame not to write."""
        n = int(s["num_frames"])
        out = []
        for d in (("forward", "backward") if job.direction == "both" else (job.direction,)):
            stops: dict[int, int] = {}
            for o in job.objects:
                keys = [int(k) for k in s["keyframes"].get(str(o), {})]
                if d == "forward":
                    stops[o] = min([k for k in keys if k > job.start], default=n)
                else:
                    stops[o] = max([k for k in keys if k < job.start], default=-1)
            if d == "forward":
                frames = list(range(job.start + 1, max(stops.values(), default=n)))
            else:
                frames = list(range(job.start - 1, min(stops.values(), default=-1), -1))
            out.append((d, frames, stops))
        return out

    def _propagate(self, job: Job) -> None:
        project, sid = self.project, job.session
        s = project.load(sid)
        ranges = self._ranges(s, job)
        job.total = sum(len(f) for _, f, _ in ranges)
        first = project.read_frame(s, job.start)
        pending: dict[int, dict[int, float]] = {}

        def flush() -> None:
            project.add_scores(sid, pending)
            pending.clear()

        inits: dict[int, dict[str, Any]] = {}
        for o in job.objects:
            kf = s["keyframes"].get(str(o), {}).get(str(job.start)) or {}
            if kf.get("type") == "box" and kf.get("box"):
                inits[o] = {"box": kf["box"]}
            else:
                inits[o] = {"mask": project.read_mask(sid, o, job.start)}
        try:
            self._directions(job, s, ranges, first, inits, pending, flush)
        finally:
            flush()

    def _directions(self, job: Job, s: dict[str, Any], ranges: list, first: Any,
                    inits: dict[int, dict[str, Any]], pending: dict[int, dict[int, float]],
                    flush: Any) -> None:
        """Track each direction of ``ranges``; scores go to ``pending``, ``flush`` saves them."""
        from segtrack.trackers.multi import MultiObjectTracker
        from segtrack.trackers.registry import load_tracker

        project, sid = self.project, job.session
        for _direction, frames, stops in ranges:
            if job.cancel_event.is_set():
                return
            job.state = "loading"
            job.message = (f"loading {job.method} and learning the object"
                           f"{'s' if len(job.objects) > 1 else ''} on frame {job.start}")
            t0 = time.perf_counter()
            multi = MultiObjectTracker(
                lambda: load_tracker(job.method, device=self.device, **job.params)
            )
            for o in job.objects:
                pred = multi.add(o, first, **inits[o])
                if "box" in inits[o]:  # the box's own mask: written once, as tracking starts
                    project.write_mask(sid, o, job.start, pred.mask)
            job.track_seconds += time.perf_counter() - t0
            job.state, job.message = "running", ""
            for i in frames:
                if job.cancel_event.is_set():
                    return
                for o in list(multi.trackers):
                    if (i >= stops[o]) if _direction == "forward" else (i <= stops[o]):
                        del multi.trackers[o]  # reached this object's next keyframe
                if not multi.trackers:
                    break
                image = project.read_frame(s, i)
                t0 = time.perf_counter()
                preds, _ = multi.step(image)
                job.track_seconds += time.perf_counter() - t0
                for o, p in preds.items():
                    if p.mask.any():
                        project.write_mask(sid, o, i, p.mask)
                    else:
                        project.remove_mask(sid, o, i)
                    if p.score is not None and p.score == p.score:  # not NaN
                        pending.setdefault(o, {})[i] = float(p.score)
                if job.done % 25 == 24:
                    flush()
                job.done += 1
                job.current = i
                job.events.append(i)
