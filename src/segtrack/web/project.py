"""On-disk project store of the browser workbench (issue 8).

A project folder holds every session of the workbench, so that closing the browser (or the
server) and reopening restores everything::

    <project>/project.json                     marker {"segtrack_project": 1}
    <project>/uploads/<id>/...                 uploaded videos / frames
    <project>/sessions/<sid>/session.json      source, frame names, method, objects, keyframes
    <project>/sessions/<sid>/frames/           frames decoded from a video source (JPEG)
    <project>/sessions/<sid>/masks/<obj>/<i>.png   one 1-bit PNG per object and frame
    <project>/sessions/<sid>/export/           DAVIS PNGs, boxes.json, overlay video, COCO RLE

Several browser tabs (even several server processes) may edit one session: every change of
``session.json`` is a read-modify-write under an exclusive lock (``fcntl.flock`` on
``<sid>/.lock`` where available, plus a process-wide thread lock) and is written atomically
(temporary file + ``os.replace``, :func:`segtrack.io.atomic_write_bytes`); mask PNGs are written
atomically too, so a reader never sees a half-written file. Every change bumps ``rev``, which
tabs poll to notice edits made elsewhere.

Paths given by the user are resolved (symlinks followed) and refused unless they lie inside the
project folder or one of the folders the server was told to allow (:meth:`Project.check_path`).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from segtrack.errors import InputError
from segtrack.io import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, atomic_write_bytes, list_images

try:  # POSIX advisory locks; elsewhere the thread lock alone serialises one process
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["Project", "PathRefused", "NotFound", "Conflict", "mask_to_png", "png_to_mask"]

_THREAD_LOCKS: dict[str, threading.RLock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


class PathRefused(InputError):
    """A path outside the project folder and the allowed folders."""


class NotFound(InputError):
    """A session, object, frame or file that does not exist."""


class Conflict(InputError):
    """A change that clashes with the current state (e.g. a tracking job is running)."""


def mask_to_png(mask: np.ndarray) -> bytes:
    """A bool mask as a 1-bit PNG."""
    buf = io.BytesIO()
    Image.fromarray(np.asarray(mask, dtype=bool)).save(buf, format="PNG")
    return buf.getvalue()


def png_to_mask(data: bytes, size: tuple[int, int], what: str = "mask") -> np.ndarray:
    """Decode a PNG drawn in the browser (alpha >= 128, else gray > 127) into a bool mask."""
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except Exception:  # noqa: BLE001 - any decoding failure is the user's input
        raise InputError(f"{what} is not a readable PNG image") from None
    if img.size != (size[1], size[0]):
        raise InputError(
            f"{what} is {img.size[0]}x{img.size[1]} but the frame is {size[1]}x{size[0]}"
        )
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        return np.array(img.convert("RGBA"))[..., 3] >= 128
    arr = np.array(img.convert("L"))
    return arr > 127


def _lock_for(path: Path) -> threading.RLock:
    key = str(path)
    with _THREAD_LOCKS_GUARD:
        lock = _THREAD_LOCKS.get(key)
        if lock is None:
            lock = _THREAD_LOCKS[key] = threading.RLock()
        return lock


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Exclusive lock on ``path`` (created if missing) across threads and processes."""
    tlock = _lock_for(path)
    with tlock:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=1) + "\n").encode())


def _safe_id(text: str, what: str) -> str:
    if not text or not all(c.isalnum() or c in "-_" for c in text) or len(text) > 64:
        raise NotFound(f"{what} '{text}' does not exist")
    return text


class Project:
    """A project folder with sessions; see the module docstring for the layout."""

    def __init__(self, root: str | os.PathLike, allow: list[str | os.PathLike] | None = None):
        root_path = Path(root).expanduser()
        if root_path.exists() and not root_path.is_dir():
            raise InputError(f"project folder '{root}' is an existing file")
        root_path.mkdir(parents=True, exist_ok=True)
        self.root = root_path.resolve()
        marker = self.root / "project.json"
        if not marker.exists():
            _write_json(marker, {"segtrack_project": 1})
        (self.root / "sessions").mkdir(exist_ok=True)
        (self.root / "uploads").mkdir(exist_ok=True)
        self.allowed: list[Path] = [self.root]
        for a in allow or []:
            self.allow(a)

    # -- paths --------------------------------------------------------------------------------
    def allow(self, path: str | os.PathLike) -> Path:
        """Allow opening files under ``path`` (a folder, or a video file)."""
        p = Path(path).expanduser().resolve()
        if p not in self.allowed:
            self.allowed.append(p)
        return p

    def check_path(self, path: str | os.PathLike) -> Path:
        """The resolved ``path`` if it lies inside an allowed folder, else :class:`PathRefused`.

        Relative paths are taken relative to the project folder.
        """
        text = str(path).strip()
        if not text or "\x00" in text:
            raise InputError(f"path {text!r} is empty or invalid")
        p = Path(text).expanduser()
        if not p.is_absolute():
            p = self.root / p
        p = p.resolve()
        for a in self.allowed:
            if p == a or p.is_relative_to(a):
                return p
        raise PathRefused(f"path '{text}' is outside the project folder and the allowed folders")

    def session_dir(self, sid: str) -> Path:
        d = self.root / "sessions" / _safe_id(sid, "session")
        if not (d / "session.json").is_file():
            raise NotFound(f"session '{sid}' does not exist")
        return d

    # -- sessions -----------------------------------------------------------------------------
    def list_sessions(self) -> list[dict[str, Any]]:
        out = []
        for d in sorted((self.root / "sessions").iterdir()):
            try:
                s = json.loads((d / "session.json").read_text())
            except (OSError, ValueError):
                continue
            out.append({k: s.get(k) for k in ("id", "name", "source", "num_frames", "updated")})
        out.sort(key=lambda s: s.get("updated") or 0, reverse=True)
        return out

    def find_session(self, source: str | os.PathLike) -> str | None:
        """Id of the most recent session on ``source`` (resolved path), if any."""
        src = str(Path(source).resolve())
        for s in self.list_sessions():
            if s["source"] == src:
                return s["id"]
        return None

    def create_session(self, source: str | os.PathLike, name: str | None = None) -> dict:
        """A new session on a video file or frame folder (must pass :meth:`check_path`)."""
        src = self.check_path(source)
        if not src.exists():
            raise NotFound(f"'{source}' does not exist")
        sid = uuid.uuid4().hex[:12]
        d = self.root / "sessions" / sid
        d.mkdir(parents=True)
        try:
            info = self._index_frames(src, d)
        except BaseException:
            shutil.rmtree(d, ignore_errors=True)
            raise
        now = time.time()
        session = {
            "id": sid,
            "name": name or src.name,
            "source": str(src),
            "kind": info["kind"],
            "frames_dir": info["frames_dir"],
            "frame_files": info["frame_files"],
            "frame_names": [Path(f).stem for f in info["frame_files"]],
            "num_frames": len(info["frame_files"]),
            "height": info["height"],
            "width": info["width"],
            "fps": info["fps"],
            "method": "flow",
            "objects": {},
            "next_object": 1,
            "keyframes": {},
            "created": now,
            "updated": now,
            "rev": 1,
        }
        _write_json(d / "session.json", session)
        return session

    def _index_frames(self, src: Path, d: Path) -> dict[str, Any]:
        from segtrack.io import read_image

        if src.is_dir():
            files = list_images(src)
            if not files:
                raise InputError(f"folder '{src}' holds no {'/'.join(IMAGE_EXTENSIONS)} frames")
            img = read_image(files[0])
            return {"kind": "folder", "frames_dir": str(src),
                    "frame_files": [f.name for f in files], "height": int(img.shape[0]),
                    "width": int(img.shape[1]), "fps": None}
        if src.suffix.lower() not in VIDEO_EXTENSIONS:
            raise InputError(
                f"'{src}' is neither a frame folder nor a video ({', '.join(VIDEO_EXTENSIONS)})"
            )
        # decode the video once into JPEG frames: random access for scrubbing and tracking
        # backwards, which video decoders do not give reliably
        import cv2

        from segtrack.io import open_source

        source = open_source(src)
        out = d / "frames"
        out.mkdir()
        names = []
        for fr in source:
            ok, buf = cv2.imencode(".jpg", cv2.cvtColor(fr.image, cv2.COLOR_RGB2BGR),
                                   [cv2.IMWRITE_JPEG_QUALITY, 95])
            if not ok:  # pragma: no cover
                raise InputError(f"cannot re-encode frame {fr.index} of '{src}'")
            name = f"{fr.index:05d}.jpg"
            (out / name).write_bytes(buf.tobytes())
            names.append(name)
        if not names:
            raise InputError(f"video '{src}' has no decodable frame")
        h, w = source.frame_size or (0, 0)
        return {"kind": "video", "frames_dir": str(out), "frame_files": names,
                "height": int(h), "width": int(w), "fps": source.fps}

    def load(self, sid: str) -> dict[str, Any]:
        d = self.session_dir(sid)
        return json.loads((d / "session.json").read_text())

    @contextlib.contextmanager
    def edit(self, sid: str) -> Iterator[dict[str, Any]]:
        """Read-modify-write of a session under its lock; bumps ``rev`` and ``updated``."""
        d = self.session_dir(sid)
        with file_lock(d / ".lock"):
            s = json.loads((d / "session.json").read_text())
            yield s
            s["rev"] = int(s.get("rev", 0)) + 1
            s["updated"] = time.time()
            _write_json(d / "session.json", s)

    def lock(self, sid: str):
        """The session's lock (for writers of several files that must stay consistent)."""
        return file_lock(self.session_dir(sid) / ".lock")

    # -- frames -------------------------------------------------------------------------------
    def frame_path(self, s: dict[str, Any], index: int) -> Path:
        if not 0 <= int(index) < int(s["num_frames"]):
            raise NotFound(f"frame {index} is outside the session's {s['num_frames']} frames")
        return Path(s["frames_dir"]) / s["frame_files"][int(index)]

    def read_frame(self, s: dict[str, Any], index: int) -> np.ndarray:
        from segtrack.io import read_image

        return read_image(self.frame_path(s, index))

    # -- objects ------------------------------------------------------------------------------
    def add_object(self, sid: str, name: str | None = None) -> dict[str, Any]:
        with self.edit(sid) as s:
            used = {int(k) for k in s["objects"]}
            oid = next((k for k in range(int(s.get("next_object", 1)), 256) if k not in used),
                       None)
            if oid is None:
                oid = next((k for k in range(1, 256) if k not in used), None)
            if oid is None:
                raise Conflict("a session holds at most 255 objects")
            obj = {"id": oid, "name": (name or f"object {oid}")[:80], "hidden": False}
            s["objects"][str(oid)] = obj
            s["next_object"] = oid + 1
        return obj

    def update_object(self, sid: str, oid: int, name: str | None = None,
                      hidden: bool | None = None) -> dict[str, Any]:
        with self.edit(sid) as s:
            obj = s["objects"].get(str(int(oid)))
            if obj is None:
                raise NotFound(f"object {oid} does not exist")
            if name is not None:
                if not name.strip():
                    raise InputError("object name must not be empty")
                obj["name"] = name.strip()[:80]
            if hidden is not None:
                obj["hidden"] = bool(hidden)
        return obj

    def delete_object(self, sid: str, oid: int) -> None:
        d = self.session_dir(sid)
        with self.edit(sid) as s:
            if s["objects"].pop(str(int(oid)), None) is None:
                raise NotFound(f"object {oid} does not exist")
            s["keyframes"].pop(str(int(oid)), None)
            shutil.rmtree(d / "masks" / str(int(oid)), ignore_errors=True)

    # -- masks --------------------------------------------------------------------------------
    def mask_path(self, sid: str, oid: int, index: int) -> Path:
        return self.session_dir(sid) / "masks" / str(int(oid)) / f"{int(index):05d}.png"

    def read_mask(self, sid: str, oid: int, index: int) -> np.ndarray | None:
        p = self.mask_path(sid, oid, index)
        try:
            with Image.open(p) as img:
                return np.array(img.convert("1"), dtype=bool)
        except FileNotFoundError:
            return None

    def write_mask(self, sid: str, oid: int, index: int, mask: np.ndarray) -> None:
        p = self.mask_path(sid, oid, index)
        p.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(p, mask_to_png(mask))

    def remove_mask(self, sid: str, oid: int, index: int) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.mask_path(sid, oid, index))

    def set_keyframe(self, sid: str, oid: int, index: int, mask: np.ndarray,
                     box: list[float] | None = None) -> dict[str, Any]:
        """Store the user's mask (or box, with the mask it stands for) of an object on a frame."""
        with self.edit(sid) as s:
            if str(int(oid)) not in s["objects"]:
                raise NotFound(f"object {oid} does not exist")
            self.frame_path(s, index)  # range check
            kf = s["keyframes"].setdefault(str(int(oid)), {})
            if mask.any():
                self.write_mask(sid, oid, index, mask)
                kf[str(int(index))] = {"type": "box" if box is not None else "mask",
                                       "box": box}
            else:  # erasing everything removes the object from that frame
                self.remove_mask(sid, oid, index)
                kf.pop(str(int(index)), None)
            return {"frame": int(index), "object": int(oid), "area": int(mask.sum())}

    def labels(self, s: dict[str, Any], index: int, include_hidden: bool = False,
               exclude: int | None = None) -> np.ndarray:
        """uint8 label map of a frame: objects drawn in increasing id order (later on top)."""
        lab = np.zeros((int(s["height"]), int(s["width"])), np.uint8)
        for key in sorted(s["objects"], key=int):
            obj = s["objects"][key]
            if (obj.get("hidden") and not include_hidden) or int(key) == exclude:
                continue
            m = self.read_mask(s["id"], int(key), index)
            if m is not None and m.shape == lab.shape:
                lab[m] = int(key)
        return lab

    def frames_with_masks(self, s: dict[str, Any], oid: int) -> list[int]:
        d = self.root / "sessions" / s["id"] / "masks" / str(int(oid))
        if not d.is_dir():
            return []
        return sorted(int(p.stem) for p in d.glob("*.png") if p.stem.isdigit())

    # -- exports ------------------------------------------------------------------------------
    def export(self, sid: str, formats: list[str]) -> list[str]:
        """Write the requested exports to ``<sid>/export``; returns paths relative to it.

        ``davis``: one DAVIS palette PNG per frame (``davis/<frame name>.png``, all objects,
        hidden ones included); ``boxes``: ``boxes.json`` as written by ``segtrack track``;
        ``overlay``: ``overlay.mp4`` (visible objects); ``coco``: ``coco_rle.json``, COCO
        annotations with compressed RLE segmentations (one image per frame, one category per
        object, ``track_id`` = object id).
        """
        from segtrack.io import BoxesWriter, MaskWriter, OverlayWriter
        from segtrack.io.coco_rle import encode
        from segtrack.trackers.base import make_prediction

        known = ("davis", "boxes", "overlay", "coco")
        bad = [f for f in formats if f not in known]
        if bad or not formats:
            raise InputError(f"export formats {bad or formats} unknown; use {', '.join(known)}")
        s = self.load(sid)
        out = self.session_dir(sid) / "export"
        out.mkdir(exist_ok=True)
        ids = sorted(int(k) for k in s["objects"])
        visible = {int(k) for k, o in s["objects"].items() if not o.get("hidden")}
        written: list[str] = []
        masks = MaskWriter(out / "davis") if "davis" in formats else None
        boxes = BoxesWriter(out / "boxes.json") if "boxes" in formats else None
        overlay = None
        if "overlay" in formats:
            overlay = OverlayWriter(out / "overlay.mp4", fps=s.get("fps") or 25.0,
                                    frame_size=(int(s["height"]), int(s["width"])))
        coco: dict[str, Any] = {
            "info": {"description": f"segtrack workbench export of {s['name']}"},
            "images": [], "annotations": [],
            "categories": [{"id": o, "name": s["objects"][str(o)]["name"]} for o in ids],
        }
        try:
            for i in range(int(s["num_frames"])):
                name = s["frame_names"][i]
                preds = {}
                for o in ids:
                    m = self.read_mask(sid, o, i)
                    if m is not None and m.any():
                        preds[o] = make_prediction(m)
                if masks is not None:
                    masks.write(name, self.labels(s, i, include_hidden=True))
                if boxes is not None:
                    boxes.add(i, name, preds)
                if overlay is not None:
                    image = self.read_frame(s, i)
                    overlay.write(image, {o: p for o, p in preds.items() if o in visible})
                if "coco" in formats:
                    coco["images"].append({"id": i + 1, "file_name": s["frame_files"][i],
                                           "frame_index": i, "height": int(s["height"]),
                                           "width": int(s["width"])})
                    for o, p in preds.items():
                        coco["annotations"].append({
                            "id": len(coco["annotations"]) + 1, "image_id": i + 1,
                            "category_id": o, "track_id": o, "iscrowd": 0,
                            "segmentation": encode(p.mask), "area": int(p.mask.sum()),
                            "bbox": [float(v) for v in p.box]})
        except BaseException:
            for w in (boxes, overlay):
                if w is not None:
                    w.abort()
            raise
        if masks is not None:
            written.append("davis/")
        if boxes is not None:
            written.append(boxes.close().name)
        if overlay is not None:
            written.append(overlay.close().name)
        if "coco" in formats:
            _write_json(out / "coco_rle.json", coco)
            written.append("coco_rle.json")
        return written
