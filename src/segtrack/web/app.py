"""The workbench web server: a FastAPI app serving the JSON API and the bundled front end.

``create_app(project_dir)`` builds the app; ``segtrack serve`` runs it with uvicorn. The front end
(``segtrack/web/static``: plain HTML, CSS and JavaScript, nothing fetched from a CDN) talks to:

* ``GET /api/info`` - methods, limits, project folder;
* ``GET /api/browse?path=`` - folders, videos and frame folders under the allowed folders;
* ``GET/POST /api/sessions``, ``GET/PATCH/DELETE /api/sessions/{sid}`` - open a video or frame
  folder, list, restore, rename and delete sessions, choose the method (``auto``: the best
  measured method for the object's init);
* ``POST /api/uploads``, ``PUT /api/uploads/{uid}/files/{name}``, ``POST
  /api/uploads/{uid}/open`` - upload a video or frames (raw request bodies, streamed to disk,
  size-limited while streaming, type checked by extension and leading bytes);
* ``GET /api/sessions/{sid}/frames/{i}``, ``.../labels/{i}.png``, ``.../masks/{obj}/{i}.png`` -
  frames, coloured label maps (DAVIS palette, background transparent) and single masks;
* ``POST/PATCH/DELETE /api/sessions/{sid}/objects[/{obj}]`` - objects;
* ``PUT /api/sessions/{sid}/annotations/{obj}/{i}`` - a drawn box or painted mask (keyframe);
* ``POST /api/sessions/{sid}/import`` - an existing mask for a frame: a PNG (DAVIS palette or
  0/255) or COCO RLE;
* ``POST /api/sessions/{sid}/undo``, ``.../redo`` - undo and redo the user's edits (boxes,
  strokes, clicks, imports);
* ``GET /api/sessions/{sid}/scores`` - the tracker's per-frame confidence of tracked masks;
* ``POST /api/sessions/{sid}/segment`` - click-to-segment: clicks and/or a box on a frame to a
  mask with :class:`segtrack.interactive.Segmenter` (optionally correcting the object's current
  mask), stored as a keyframe like a painted mask (a box alone: like a drawn box);
* ``POST /api/sessions/{sid}/track``, ``GET /api/jobs/{id}``, ``GET /api/jobs/{id}/events``
  (server-sent events, one per tracked frame), ``POST /api/jobs/{id}/cancel``;
* ``POST /api/sessions/{sid}/export``, ``GET /api/sessions/{sid}/export/{path}``,
  ``GET /api/sessions/{sid}/export.zip`` (everything the last export wrote, in one zip).

Errors are JSON ``{"detail": "<one line>"}`` with 400 (bad input), 403 (path outside the
project and allowed folders), 404, 409 (a job is running), 413 (upload too large), 415 (upload
of a file type that is not a video or image) or 503 (click-to-segment without its weights).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import math
import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from segtrack.errors import InputError
from segtrack.io import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from segtrack.web.jobs import JobManager
from segtrack.web.project import Conflict, NotFound, PathRefused, Project, png_to_mask

__all__ = ["create_app", "serve_in_background", "sniff_type"]

STATIC = Path(__file__).resolve().parent / "static"
DEFAULT_MAX_UPLOAD = 512 * 1024 * 1024


class TooLarge(InputError):
    """An upload over the size limit."""


class BadType(InputError):
    """An upload that is not a video or an image."""


class Unavailable(InputError):
    """A feature whose model cannot be loaded (click-to-segment without its weights)."""


def sniff_type(head: bytes) -> str | None:
    """``"image"``/``"video"`` from a file's first bytes (JPEG, PNG, BMP, MP4/MOV, AVI, MKV)."""
    if head.startswith(b"\xff\xd8\xff") or head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image"
    if head.startswith(b"BM") and len(head) >= 6:
        return "image"
    if len(head) >= 12 and head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip"):
        return "video"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "video"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video"
    return None


class OpenBody(BaseModel):
    path: str
    name: str | None = None
    reuse: bool = False


class ImportBody(BaseModel):
    # checked by the endpoint (one-line 400 messages)
    index: Any = None
    oid: Any = None
    png: Any = None  # base64 PNG (optionally a data: URL)
    rle: Any = None  # a COCO RLE {"size": [h, w], "counts": ...}, or a list of them / of COCO
    # annotations ({"segmentation": rle, "track_id": id})
    name: Any = None  # the file's name, for messages


class SessionPatch(BaseModel):
    name: str | None = None
    method: str | None = None


class ObjectBody(BaseModel):
    name: str | None = None
    hidden: bool | None = None


class AnnotationBody(BaseModel):
    box: list[float] | None = None
    mask_png: str | None = None  # base64 PNG (optionally a data: URL)


class SegmentBody(BaseModel):
    # loosely typed on purpose: every field is checked by the endpoint, so that bad input gets
    # a one-line 400 message rather than a validation error list
    index: Any = None
    oid: Any = None
    points: Any = None
    labels: Any = None
    box: Any = None
    correct: Any = False


MAX_CLICKS = 200


def _whole(value: Any, what: str) -> int:
    """``value`` as an int (integral floats accepted, booleans refused)."""
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value) or value != int(value)):
        raise InputError(f"{what} must be a whole number, got {value!r}")
    return int(value)


def _check_labels(labels: Any) -> list[int] | None:
    if labels is None:
        return None
    if not isinstance(labels, list):
        raise InputError("labels must be a list of 1 (object) and 0 (background)")
    out = []
    for lab in labels:
        if isinstance(lab, bool) or not isinstance(lab, (int, float)) or lab not in (0, 1):
            raise InputError(f"label {lab!r} must be 1 (object) or 0 (background)")
        out.append(int(lab))
    return out


class TrackBody(BaseModel):
    frame: int
    objects: list[int]
    direction: str = "both"
    method: str | None = None
    params: dict[str, Any] | None = None


class ExportBody(BaseModel):
    formats: list[str] = ["davis", "boxes", "overlay", "coco"]


def create_app(
    project: str | os.PathLike | Project,
    allow: list[str | os.PathLike] | None = None,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD,
    device: str = "cpu",
    segment_weights: str = "",
    start_session: str | None = None,
) -> FastAPI:
    """The workbench app on a project folder; ``allow`` adds folders the page may open.

    ``segment_weights``: the click-to-segment weight file (empty: the committed default), loaded
    on the first segmentation request. ``start_session``: the session the page opens when its
    URL names none (``segtrack serve VIDEO``).
    """
    proj = project if isinstance(project, Project) else Project(project, allow=allow)
    if isinstance(project, Project):
        for a in allow or []:
            proj.allow(a)
    jobs = JobManager(proj, device=device)
    app = FastAPI(title="segtrack workbench", docs_url=None, redoc_url=None)
    app.state.project = proj
    app.state.jobs = jobs
    app.state.max_upload_bytes = int(max_upload_bytes)
    app.state.segment_weights = str(segment_weights or "")
    app.state.segmenter = None  # created by the first segmentation request
    app.state.start_session = start_session
    segment_lock = threading.Lock()  # one network call at a time

    status_of = {PathRefused: 403, NotFound: 404, Conflict: 409, TooLarge: 413, BadType: 415,
                 Unavailable: 503}

    @app.exception_handler(InputError)
    async def _input_error(request: Request, exc: InputError) -> JSONResponse:
        code = next((c for t, c in status_of.items() if isinstance(exc, t)), 400)
        return JSONResponse({"detail": str(exc)}, status_code=code)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    # -- info / browse ----------------------------------------------------------------------
    @app.get("/api/info")
    def info() -> dict[str, Any]:
        from segtrack.trackers.registry import available_methods, best_method, method_catalogue

        start = app.state.start_session
        if start:
            try:
                proj.session_dir(start)
            except NotFound:
                start = None
        return {"methods": available_methods(), "catalogue": method_catalogue(),
                "best": {k: best_method(k) for k in ("mask", "box")},
                "project": str(proj.root), "allowed": [str(a) for a in proj.allowed],
                "max_upload_bytes": app.state.max_upload_bytes,
                "image_types": list(IMAGE_EXTENSIONS), "video_types": list(VIDEO_EXTENSIONS),
                "start_session": start}

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> FileResponse:
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml",
                            headers={"Cache-Control": "max-age=86400"})

    @app.get("/api/browse")
    def browse(path: str | None = None) -> dict[str, Any]:
        if not path:
            return {"path": None, "parent": None,
                    "entries": [{"name": str(a), "path": str(a), "kind": _kind(a)}
                                for a in proj.allowed]}
        p = proj.check_path(path)
        if not p.is_dir():
            raise NotFound(f"folder '{path}' does not exist")
        entries = []
        for e in sorted(p.iterdir(), key=lambda e: e.name.lower()):
            if e.name.startswith("."):
                continue
            kind = _kind(e)
            if kind:
                entries.append({"name": e.name, "path": str(e), "kind": kind})
        parent = None
        try:
            parent = str(proj.check_path(p.parent)) if p.parent != p else None
        except PathRefused:
            pass
        return {"path": str(p), "parent": parent, "kind": _kind(p), "entries": entries[:2000]}

    # -- sessions ----------------------------------------------------------------------------
    @app.get("/api/sessions")
    def sessions() -> list[dict[str, Any]]:
        return proj.list_sessions()

    @app.post("/api/sessions")
    def open_session(body: OpenBody) -> dict[str, Any]:
        if body.reuse:
            sid = proj.find_session(proj.check_path(body.path))
            if sid:
                return _session_view(sid)
        s = proj.create_session(body.path, name=body.name)
        return _session_view(s["id"])

    def _session_view(sid: str) -> dict[str, Any]:
        s = proj.load(sid)
        job = jobs.running(sid)
        s["job"] = job.status() if job else None
        s["coverage"] = {k: proj.frames_with_masks(s, int(k)) for k in s["objects"]}
        return s

    @app.get("/api/sessions/{sid}")
    def get_session(sid: str) -> dict[str, Any]:
        return _session_view(sid)

    @app.patch("/api/sessions/{sid}")
    def patch_session(sid: str, body: SessionPatch) -> dict[str, Any]:
        if body.method is not None and body.method != "auto":
            from segtrack.trackers.registry import tracker_class

            tracker_class(body.method)
        with proj.edit(sid) as s:
            if body.name is not None and body.name.strip():
                s["name"] = body.name.strip()[:120]
            if body.method is not None:
                s["method"] = body.method
        return _session_view(sid)

    @app.delete("/api/sessions/{sid}")
    def delete_session(sid: str) -> dict[str, Any]:
        _no_job(sid)
        proj.delete_session(sid)
        if app.state.start_session == sid:
            app.state.start_session = None
        return {"deleted": sid}

    # -- uploads -----------------------------------------------------------------------------
    @app.post("/api/uploads")
    def new_upload() -> dict[str, Any]:
        _sweep_uploads(proj.root / "uploads")
        uid = uuid.uuid4().hex[:12]
        (proj.root / "uploads" / uid).mkdir(parents=True)
        return {"id": uid}

    @app.delete("/api/uploads/{uid}")
    def drop_upload(uid: str) -> dict[str, Any]:
        """Forget an upload that failed (the page calls this): its files and its folder."""
        d = _upload_dir(uid)
        if any(Path(s["source"] or "").is_relative_to(d) for s in proj.list_sessions()):
            raise Conflict("this upload is opened in a session: delete the session instead")
        shutil.rmtree(d, ignore_errors=True)
        return {"deleted": uid}

    def _upload_dir(uid: str) -> Path:
        if not uid.isalnum() or not (proj.root / "uploads" / uid).is_dir():
            raise NotFound(f"upload '{uid}' does not exist")
        return proj.root / "uploads" / uid

    @app.put("/api/uploads/{uid}/files/{name}")
    async def upload_file(uid: str, name: str, request: Request) -> dict[str, Any]:
        d = _upload_dir(uid)
        base = os.path.basename(name.replace("\\", "/"))
        ext = os.path.splitext(base)[1].lower()
        if base != name or base.startswith(".") or not base:
            raise InputError(f"upload file name '{name}' is not a plain file name")
        if ext not in IMAGE_EXTENSIONS + VIDEO_EXTENSIONS:
            raise BadType(f"upload '{name}': type '{ext or 'none'}' is not a video "
                          f"({', '.join(VIDEO_EXTENSIONS)}) or image "
                          f"({', '.join(IMAGE_EXTENSIONS)})")
        want = "video" if ext in VIDEO_EXTENSIONS else "image"
        existing = [p for p in d.iterdir() if not p.name.startswith(".")]
        used = sum(p.stat().st_size for p in existing)
        kinds = {("video" if p.suffix.lower() in VIDEO_EXTENSIONS else "image") for p in existing}
        if kinds and (kinds != {want} or want == "video"):
            raise InputError(f"upload '{name}': an upload is one video or a set of frames")
        limit = app.state.max_upload_bytes
        over = f"upload '{name}' is larger than the limit of {_size_text(limit)}"
        declared = request.headers.get("content-length")
        tmp = d / f".{base}.{uuid.uuid4().hex[:8]}.part"
        size, head = 0, b""
        try:
            if declared and declared.isdigit() and used + int(declared) > limit:
                raise TooLarge(over)
            with open(tmp, "wb") as f:
                async for chunk in request.stream():
                    size += len(chunk)
                    if used + size > limit:
                        raise TooLarge(over)
                    if len(head) < 16:
                        head += chunk[: 16 - len(head)]
                    f.write(chunk)
            if sniff_type(head) != want:
                raise BadType(f"upload '{name}' does not hold {want} data of type '{ext}'")
            os.replace(tmp, d / base)
        finally:
            if tmp.exists():
                tmp.unlink()
        return {"name": base, "size": size}

    @app.post("/api/uploads/{uid}/open")
    def open_upload(uid: str) -> dict[str, Any]:
        d = _upload_dir(uid)
        files = [p for p in d.iterdir() if not p.name.startswith(".")]
        if not files:
            shutil.rmtree(d, ignore_errors=True)
            raise InputError("the upload holds no file")
        videos = [p for p in files if p.suffix.lower() in VIDEO_EXTENSIONS]
        src = videos[0] if videos else d
        try:
            s = proj.create_session(src, name=src.name if videos else f"upload {uid}")
        except InputError as e:
            shutil.rmtree(d, ignore_errors=True)
            # name the uploaded files, not the server folder they were stored in
            raise InputError(str(e).replace(str(d) + os.sep, "").replace(
                f"'{proj.display(d)}'", "the upload").replace(str(d), "the upload")) from None
        return _session_view(s["id"])

    # -- frames and masks --------------------------------------------------------------------
    @app.get("/api/sessions/{sid}/frames/{index}")
    def frame(sid: str, index: int) -> FileResponse:
        s = proj.load(sid)
        p = proj.frame_path(s, index)
        return FileResponse(p, headers={"Cache-Control": "max-age=3600"})

    @app.get("/api/sessions/{sid}/labels/{index}.png")
    def labels(sid: str, index: int, exclude: int | None = None) -> Response:
        from PIL import Image

        from segtrack.io import davis_palette

        s = proj.load(sid)
        proj.frame_path(s, index)
        lab = proj.labels(s, index, exclude=exclude)
        img = Image.fromarray(lab, mode="L")
        img.putpalette(davis_palette().tobytes())
        buf = io.BytesIO()
        img.save(buf, format="PNG", transparency=0)
        return Response(buf.getvalue(), media_type="image/png",
                        headers={"Cache-Control": "no-store"})

    @app.get("/api/sessions/{sid}/masks/{oid}/{index}.png")
    def mask(sid: str, oid: int, index: int) -> Response:
        p = proj.mask_path(sid, oid, index)
        if not p.is_file():
            raise NotFound(f"object {oid} has no mask on frame {index}")
        return FileResponse(p, headers={"Cache-Control": "no-store"})

    # -- objects -----------------------------------------------------------------------------
    def _no_job(sid: str) -> None:
        if jobs.running(sid) is not None:
            raise Conflict("a tracking job is running on this session: cancel it or wait")

    @app.post("/api/sessions/{sid}/objects")
    def add_object(sid: str, body: ObjectBody) -> dict[str, Any]:
        return proj.add_object(sid, body.name)

    @app.patch("/api/sessions/{sid}/objects/{oid}")
    def patch_object(sid: str, oid: int, body: ObjectBody) -> dict[str, Any]:
        return proj.update_object(sid, oid, name=body.name, hidden=body.hidden)

    @app.delete("/api/sessions/{sid}/objects/{oid}")
    def delete_object(sid: str, oid: int) -> dict[str, Any]:
        _no_job(sid)
        proj.delete_object(sid, oid)
        return {"deleted": oid}

    @app.put("/api/sessions/{sid}/annotations/{oid}/{index}")
    def annotate(sid: str, oid: int, index: int, body: AnnotationBody) -> dict[str, Any]:
        from segtrack.geometry import box_to_mask
        from segtrack.trackers.base import check_box

        _no_job(sid)
        s = proj.load(sid)
        size = (int(s["height"]), int(s["width"]))
        if (body.box is None) == (body.mask_png is None):
            raise InputError("annotation needs exactly one of 'box' and 'mask_png'")
        if body.box is not None:
            box = list(check_box(body.box, size, what="box"))
            m = box_to_mask(box, size)
            if not m.any():
                raise InputError(f"box {body.box} covers no pixel centre")
            return proj.set_keyframe(sid, oid, index, m, box=box, what="box")
        text = body.mask_png
        if text.startswith("data:"):
            text = text.split(",", 1)[-1]
        try:
            data = base64.b64decode(text, validate=True)
        except ValueError:
            raise InputError("mask_png is not base64 data") from None
        m = png_to_mask(data, size, what="mask_png")
        return proj.set_keyframe(sid, oid, index, m, what="paint")

    @app.post("/api/sessions/{sid}/import")
    def import_mask(sid: str, body: ImportBody) -> dict[str, Any]:
        from segtrack.io import read_mask_bytes
        from segtrack.io.coco_rle import decode

        _no_job(sid)
        s = proj.load(sid)
        index = _whole(body.index, "index")
        proj.frame_path(s, index)
        oid = None if body.oid is None else _whole(body.oid, "object id")
        size = (int(s["height"]), int(s["width"]))
        name = str(body.name)[:120] if isinstance(body.name, str) and body.name else "mask"
        if (body.png is None) == (body.rle is None):
            raise InputError("import needs exactly one of a PNG mask and a COCO RLE")
        if body.png is not None:
            if not isinstance(body.png, str):
                raise InputError(f"mask '{name}' is not base64 PNG data")
            text = body.png.split(",", 1)[-1] if body.png.startswith("data:") else body.png
            try:
                data = base64.b64decode(text, validate=True)
            except ValueError:
                raise InputError(f"mask '{name}' is not base64 PNG data") from None
            masks = read_mask_bytes(data, size, name=name)
            from PIL import Image

            mode = Image.open(io.BytesIO(data)).mode
            binary = mode not in ("P", "PA") and set(masks) == {1}
        else:
            items = body.rle if isinstance(body.rle, list) else [body.rle]
            if not items or len(items) > 255:
                raise InputError(f"'{name}' holds no RLE (or more than 255)")
            masks, binary = {}, len(items) == 1 and "track_id" not in items[0]
            for k, item in enumerate(items, start=1):
                if not isinstance(item, dict):
                    raise InputError(f"'{name}': item {k} is not a COCO RLE object")
                rle = item.get("segmentation", item)
                ident = item.get("track_id", item.get("category_id", k))
                try:
                    m = decode(rle)
                except Exception:  # noqa: BLE001 - any malformed RLE is the user's input
                    raise InputError(f"'{name}': item {k} is not a valid COCO RLE (it needs "
                                     "'size': [height, width] and 'counts')") from None
                if m.shape != size:
                    raise InputError(f"'{name}': the RLE is {m.shape[1]}x{m.shape[0]} but the "
                                     f"frame is {size[1]}x{size[0]}")
                ident = _whole(ident, f"'{name}': object id of item {k}")
                masks[ident] = masks[ident] | m if ident in masks else m
        done = proj.import_masks(sid, index, masks, oid=oid, binary=binary)
        return {"frame": index, "objects": done}

    @app.post("/api/sessions/{sid}/undo")
    def undo(sid: str) -> dict[str, Any]:
        _no_job(sid)
        return proj.undo(sid)

    @app.post("/api/sessions/{sid}/redo")
    def redo(sid: str) -> dict[str, Any]:
        _no_job(sid)
        return proj.undo(sid, redo=True)

    @app.get("/api/sessions/{sid}/scores")
    def scores(sid: str) -> dict[str, Any]:
        return proj.scores(sid)

    # -- click-to-segment --------------------------------------------------------------------
    def _segmenter():
        """The app's Segmenter (call under ``segment_lock``); loaded once, on first use."""
        if app.state.segmenter is None:
            from segtrack.interactive import Segmenter

            try:
                app.state.segmenter = Segmenter(device=device, weights=app.state.segment_weights)
            except InputError as e:
                raise Unavailable(f"click-to-segment is not available: {e}") from None
            except Exception:  # noqa: BLE001 - a damaged or incompatible weight file
                name = app.state.segment_weights or "the default weights"
                raise Unavailable(f"click-to-segment is not available: the weights '{name}' "
                                  "could not be loaded") from None
        return app.state.segmenter

    @app.post("/api/sessions/{sid}/segment")
    def segment(sid: str, body: SegmentBody) -> dict[str, Any]:
        from segtrack.geometry import mask_to_box
        from segtrack.interactive import check_points
        from segtrack.trackers.base import check_box

        _no_job(sid)
        s = proj.load(sid)
        index = _whole(body.index, "index")
        proj.frame_path(s, index)  # range check
        oid = None if body.oid is None else _whole(body.oid, "object id")
        if oid is not None and str(oid) not in s["objects"]:
            raise NotFound(f"object {oid} does not exist")
        if not isinstance(body.correct, bool) and body.correct is not None:
            raise InputError(f"correct must be true or false, got {body.correct!r}")
        size = (int(s["height"]), int(s["width"]))
        labels = _check_labels(body.labels)
        points = body.points
        if points is not None and not isinstance(points, list):
            raise InputError("points must be a list of pairs x,y")
        if points and len(points) > MAX_CLICKS:
            raise InputError(f"{len(points)} points: at most {MAX_CLICKS} per request")
        try:
            clicks = check_points(points, labels, size, what="point")
        except InputError:
            raise
        except (TypeError, ValueError):
            raise InputError("points must be a list of pairs of numbers x,y") from None
        box = list(check_box(body.box, size, what="box")) if body.box is not None else None
        if not clicks and box is None:
            raise InputError("nothing to segment: click on the object or draw a box")
        prev = proj.read_mask(sid, oid, index) if body.correct and oid is not None else None
        if prev is not None and (prev.shape != size or not prev.any()):
            prev = None
        image = proj.read_frame(s, index)
        with segment_lock:
            seg = _segmenter()
            mask = seg.segment(image, box=box, points=[(x, y) for x, y, _ in clicks] or None,
                               labels=[int(p) for _, _, p in clicks] or None, mask=prev)
        if not mask.any():
            raise InputError("the segmentation found no object there: click inside the object "
                             "or draw a larger box")
        created = oid is None
        if created:
            oid = int(proj.add_object(sid)["id"])
        # a box alone is kept as a box keyframe (as a drawn box, the network's mask instead of
        # the filled box), so tracking starts from the box as `segtrack track --box` does;
        # clicks (or a correction) make a mask keyframe, as a painted mask
        as_box = box if not clicks and prev is None else None
        out = proj.set_keyframe(sid, oid, index, mask, box=as_box,
                                what="box" if as_box is not None else "clicks")
        out.update(box=[float(v) for v in mask_to_box(mask)],
                   keyframe="box" if as_box is not None else "mask", created=created,
                   clicks=len(clicks), corrected=prev is not None)
        return out

    # -- tracking jobs -----------------------------------------------------------------------
    @app.post("/api/sessions/{sid}/track")
    def track(sid: str, body: TrackBody) -> dict[str, Any]:
        job = jobs.start(sid, body.objects, body.frame, body.direction, body.method,
                         body.params)
        return job.status()

    def _job(jid: str):
        job = jobs.get(jid)
        if job is None:
            raise NotFound(f"job '{jid}' does not exist")
        return job

    @app.get("/api/jobs/{jid}")
    def job_status(jid: str) -> dict[str, Any]:
        return _job(jid).status()

    @app.post("/api/jobs/{jid}/cancel")
    def job_cancel(jid: str) -> dict[str, Any]:
        job = _job(jid)
        jobs.cancel(jid)
        return job.status()

    @app.get("/api/jobs/{jid}/events")
    async def job_events(jid: str) -> StreamingResponse:
        job = _job(jid)

        async def stream():
            sent, said = 0, None
            while True:
                n = len(job.events)
                finished = job.finished
                now = (job.state, job.message)
                if n > sent or finished or now != said:  # new frames, or "loading" -> "running"
                    said = now
                    st = job.status()
                    st["frames"] = job.events[sent:n]
                    sent = n
                    yield f"data: {json.dumps(st)}\n\n"
                    if finished:
                        return
                await asyncio.sleep(0.05)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store"})

    # -- exports -----------------------------------------------------------------------------
    @app.post("/api/sessions/{sid}/export")
    def export(sid: str, body: ExportBody) -> dict[str, Any]:
        _no_job(sid)
        files = proj.export(sid, body.formats)
        return {"folder": str(proj.session_dir(sid) / "export"), "files": files}

    @app.get("/api/sessions/{sid}/export.zip")
    def export_zip(sid: str) -> FileResponse:
        p = proj.export_zip(sid)
        return FileResponse(p, media_type="application/zip",
                            filename=f"{proj.file_stem(sid)}-segtrack.zip")

    @app.get("/api/sessions/{sid}/export/{path:path}")
    def export_file(sid: str, path: str) -> FileResponse:
        base = (proj.session_dir(sid) / "export").resolve()
        p = (base / path).resolve()
        if not p.is_relative_to(base):
            raise PathRefused(f"path '{path}' is outside the session's export folder")
        if not p.is_file():
            raise NotFound(f"export file '{path}' does not exist")
        return FileResponse(p, filename=p.name)

    return app


def _size_text(n: int) -> str:
    """A byte count for people: '512 MB', '1.5 GB', '900 KB'."""
    for unit, k in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if n >= k:
            v = n / k
            return f"{v:.0f} {unit}" if v >= 10 or v == int(v) else f"{v:.1f} {unit}"
    return f"{n} bytes"


def _sweep_uploads(root: Path, older_than: float = 3600.0) -> None:
    """Remove upload folders left empty (an upload that failed or was abandoned) for an hour."""
    import time

    now = time.time()
    try:
        for d in root.iterdir():
            if (d.is_dir() and now - d.stat().st_mtime > older_than
                    and not any(p for p in d.iterdir() if not p.name.endswith(".part"))):
                shutil.rmtree(d, ignore_errors=True)
    except OSError:
        pass


def _kind(p: Path) -> str | None:
    """``"video"``, ``"frames"`` (a folder holding images), ``"dir"`` or None."""
    try:
        if p.is_dir():
            with os.scandir(p) as it:
                for i, e in enumerate(it):
                    if os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS:
                        return "frames"
                    if i > 200:
                        break
            return "dir"
        if p.suffix.lower() in VIDEO_EXTENSIONS:
            return "video"
    except OSError:
        return None
    return None


@contextlib.contextmanager
def serve_in_background(app: FastAPI, host: str = "127.0.0.1") -> Iterator[str]:
    """Run ``app`` with uvicorn in a thread on a free local port; yields its URL (tests,
    benchmarks and screenshots of the page)."""
    import socket
    import time

    import uvicorn

    with socket.socket() as sock:
        sock.bind((host, 0))
        port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    t_end = time.time() + 20
    while not srv.started and time.time() < t_end:
        time.sleep(0.02)
    if not srv.started:
        raise RuntimeError("the workbench server did not start")
    try:
        yield f"http://{host}:{port}/"
    finally:
        srv.should_exit = True
        th.join(timeout=10)


def serve(
    source: str | None = None,
    project: str = "segtrack-project",
    host: str = "127.0.0.1",
    port: int = 8000,
    allow: list[str] | None = None,
    max_upload_mb: float = DEFAULT_MAX_UPLOAD / 2**20,
    device: str = "cpu",
    segment_weights: str = "",
) -> int:
    """Run the workbench with uvicorn (``segtrack serve``); blocks until interrupted."""
    import uvicorn

    src = None
    if source:  # checked before anything is created, relative to the current folder
        src = Path(source).expanduser().absolute()
        if not src.exists():
            raise InputError(f"'{source}' does not exist (looked for {src})")
        if not src.is_dir() and src.suffix.lower() not in VIDEO_EXTENSIONS:
            raise InputError(f"'{source}' is neither a frame folder nor a video "
                             f"({', '.join(VIDEO_EXTENSIONS)})")
    existed = Path(project).expanduser().exists()
    proj = Project(project, allow=allow)
    url = f"http://{host}:{port}/"
    sid = None
    if src is not None:
        proj.allow(src.parent if src.is_file() else src)
        try:
            sid = proj.find_session(src) or proj.create_session(src)["id"]
        except InputError:
            if not existed:  # a failed start leaves no project folder behind
                shutil.rmtree(proj.root, ignore_errors=True)
            raise
        url += f"?session={sid}"
    app = create_app(proj, max_upload_bytes=int(max_upload_mb * 2**20), device=device,
                     segment_weights=segment_weights, start_session=sid)
    print(f"segtrack workbench on {url}  (project folder {proj.root})", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
    return 0
