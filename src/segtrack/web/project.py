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

HISTORY_LIMIT = 100  # undoable edits kept per session

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


def _common_size(files: list[Path], name: str) -> tuple[int, int]:
    """(height, width) shared by every image of a frame folder; InputError otherwise.

    Reads only the image headers, so that a folder of unrelated photographs is refused when it
    is opened rather than half-way through tracking.
    """
    sizes: dict[tuple[int, int], str] = {}
    for f in files:
        try:
            with Image.open(f) as img:
                size = (int(img.height), int(img.width))
        except Exception:  # noqa: BLE001 - any unreadable image
            raise InputError(f"folder '{name}': '{f.name}' is not a readable image") from None
        sizes.setdefault(size, f.name)
        if len(sizes) > 1:
            (h0, w0), first = next(iter(sizes.items()))
            raise InputError(
                f"folder '{name}' is not a video: its images differ in size ('{first}' is "
                f"{w0}x{h0}, '{f.name}' is {size[1]}x{size[0]}); a frame folder holds frames "
                "of one size")
    return next(iter(sizes))


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

    def __init__(self, root: str | os.PathLike, allow: list[str | os.PathLike] | None = None,
                 base: str | os.PathLike | None = None):
        #: relative paths the user types are taken relative to this folder (where the server
        #: was started), as on the command line
        self.base = Path(base if base is not None else os.getcwd()).expanduser().resolve()
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

        Relative paths are taken relative to :attr:`base` (the folder the server was started
        in), as on the command line.
        """
        text = str(path).strip()
        if not text or "\x00" in text:
            raise InputError(f"path {text!r} is empty or invalid")
        p = Path(text).expanduser()
        if not p.is_absolute():
            p = self.base / p
        p = p.resolve()
        for a in self.allowed:
            if p == a or p.is_relative_to(a):
                return p
        raise PathRefused(f"path '{text}' is outside the project folder and the allowed folders")

    def display(self, path: str | os.PathLike) -> str:
        """``path`` as shown to the user: relative to the project folder when inside it."""
        p = Path(path)
        try:
            rel = p.resolve().relative_to(self.root)
        except (ValueError, OSError):
            return str(p)
        return str(rel) if str(rel) != "." else p.name

    def session_dir(self, sid: str) -> Path:
        d = self.root / "sessions" / _safe_id(sid, "session")
        if not (d / "session.json").is_file():
            raise NotFound(f"session '{sid}' does not exist")
        return d

    # -- sessions -----------------------------------------------------------------------------
    def list_sessions(self) -> list[dict[str, Any]]:
        out = []
        for d in sorted((self.root / "sessions").iterdir()):
            if d.name.startswith("."):
                continue  # a session being deleted
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
            "method": "auto",
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
        if src.is_dir():
            files = list_images(src)
            if not files:
                raise InputError(f"folder '{self.display(src)}' holds no "
                                 f"{'/'.join(IMAGE_EXTENSIONS)} frames")
            h, w = _common_size(files, self.display(src))
            return {"kind": "folder", "frames_dir": str(src),
                    "frame_files": [f.name for f in files], "height": h, "width": w,
                    "fps": None}
        if src.suffix.lower() not in VIDEO_EXTENSIONS:
            raise InputError(
                f"'{self.display(src)}' is neither a frame folder nor a video "
                f"({', '.join(VIDEO_EXTENSIONS)})"
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
            raise InputError(f"video '{self.display(src)}' has no decodable frame")
        h, w = source.frame_size or (0, 0)
        return {"kind": "video", "frames_dir": str(out), "frame_files": names,
                "height": int(h), "width": int(w), "fps": source.fps}

    def delete_session(self, sid: str) -> None:
        """Remove a session with its masks, decoded frames and exports (and its upload, when no
        other session uses it); the user's own video or frame folder is never touched."""
        d = self.session_dir(sid)
        s = self.load(sid)
        with file_lock(d / ".lock"):
            trash = d.with_name(f".deleted-{sid}-{uuid.uuid4().hex[:6]}")
            os.replace(d, trash)  # atomic: the session is gone at once, files follow
        shutil.rmtree(trash, ignore_errors=True)
        src = Path(s.get("source", ""))
        uploads = self.root / "uploads"
        if src.is_relative_to(uploads) and src != uploads:
            up = uploads / src.relative_to(uploads).parts[0]
            if not any(o["source"] and Path(o["source"]).is_relative_to(up)
                       for o in self.list_sessions()):
                shutil.rmtree(up, ignore_errors=True)

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
    def add_object(self, sid: str, name: str | None = None,
                   oid: int | None = None) -> dict[str, Any]:
        """A new object (the next free id, or ``oid`` when it is free)."""
        with self.edit(sid) as s:
            used = {int(k) for k in s["objects"]}
            if oid is not None:
                if not 1 <= int(oid) <= 255 or int(oid) in used:
                    raise Conflict(f"object id {oid} is taken or outside 1..255")
            else:
                oid = next((k for k in range(int(s.get("next_object", 1)), 256)
                            if k not in used), None)
            if oid is None:
                oid = next((k for k in range(1, 256) if k not in used), None)
            if oid is None:
                raise Conflict("a session holds at most 255 objects")
            obj = {"id": oid, "name": (name or f"object {oid}")[:80], "hidden": False}
            s["objects"][str(oid)] = obj
            s["next_object"] = max(int(s.get("next_object", 1)), oid + 1)
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
            cur = self.scores(sid)
            if cur.pop(str(int(oid)), None) is not None:
                _write_json(self._scores_path(sid), cur)

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
                     box: list[float] | None = None, what: str = "edit") -> dict[str, Any]:
        """Store the user's mask (or box, with the mask it stands for) of an object on a frame.

        An empty mask removes the object from that frame. The change can be undone
        (:meth:`undo`); ``what`` names it there.
        """
        self.apply_edit(sid, [(int(oid), int(index), mask, box)], what=what)
        return {"frame": int(index), "object": int(oid), "area": int(np.count_nonzero(mask))}

    def import_masks(self, sid: str, index: int, masks: dict[int, np.ndarray],
                     oid: int | None = None, binary: bool = False) -> list[dict[str, Any]]:
        """Store imported masks on a frame as keyframes, as one undoable edit.

        ``masks`` maps the file's object ids (palette indices; 1 for a binary mask) to masks.
        A ``binary`` mask (0/255 image, one RLE) becomes the mask of ``oid``, or of a new object
        when ``oid`` is None; a label map's ids (a DAVIS palette PNG, RLEs with track ids)
        become the session's objects of the same ids (created where missing).
        """
        s = self.load(sid)
        self.frame_path(s, index)
        size = (int(s["height"]), int(s["width"]))
        for m in masks.values():
            if m.shape != size:
                raise InputError(f"the mask is {m.shape[1]}x{m.shape[0]} but the frame is "
                                 f"{size[1]}x{size[0]}")
        masks = {int(k): m for k, m in masks.items() if m.any()}
        if not masks:
            raise InputError("the imported mask is empty")
        if oid is not None and str(int(oid)) not in s["objects"]:
            raise NotFound(f"object {oid} does not exist")
        if binary:
            mask = np.logical_or.reduce(list(masks.values()))
            targets = {int(oid if oid is not None else self.add_object(sid)["id"]): mask}
        else:
            targets = {}
            for k, m in masks.items():
                if str(k) not in s["objects"]:
                    self.add_object(sid, oid=k)
                targets[k] = m
        self.apply_edit(sid, [(o, int(index), m, None) for o, m in targets.items()],
                        what="import")
        return [{"object": o, "frame": int(index), "area": int(m.sum())}
                for o, m in sorted(targets.items())]

    # -- edits, undo and redo -----------------------------------------------------------------
    def _snapshot(self, sid: str, s: dict[str, Any], oid: int, index: int) -> dict[str, Any]:
        """The object's current mask file (copied into the history) and keyframe entry."""
        src = self.mask_path(sid, oid, index)
        snap: dict[str, Any] = {"mask": None,
                                "kf": s["keyframes"].get(str(oid), {}).get(str(index))}
        if src.is_file():
            name = f"{uuid.uuid4().hex[:16]}.png"
            dst = self.session_dir(sid) / "history" / name
            dst.parent.mkdir(exist_ok=True)
            shutil.copyfile(src, dst)
            snap["mask"] = name
        return snap

    def _restore(self, sid: str, s: dict[str, Any], oid: int, index: int,
                 snap: dict[str, Any]) -> None:
        if str(oid) not in s["objects"]:
            return  # the object was deleted since
        kf = s["keyframes"].setdefault(str(oid), {})
        if snap["mask"]:
            data = (self.session_dir(sid) / "history" / snap["mask"]).read_bytes()
            p = self.mask_path(sid, oid, index)
            p.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(p, data)
        else:
            self.remove_mask(sid, oid, index)
        if snap["kf"] is not None:
            kf[str(index)] = snap["kf"]
        else:
            kf.pop(str(index), None)
        self._drop_score(sid, oid, index)

    def apply_edit(self, sid: str, changes: list[tuple[int, int, np.ndarray, Any]],
                   what: str = "edit") -> None:
        """Apply ``(object, frame, mask, box or None)`` changes as ONE undoable edit."""
        with self.edit(sid) as s:
            for oid, index, _m, _b in changes:
                if str(int(oid)) not in s["objects"]:
                    raise NotFound(f"object {oid} does not exist")
                self.frame_path(s, index)  # range check
            entry: dict[str, Any] = {"what": what, "changes": []}
            for oid, index, mask, box in changes:
                before = self._snapshot(sid, s, oid, index)
                kf = s["keyframes"].setdefault(str(int(oid)), {})
                if mask.any():
                    self.write_mask(sid, oid, index, mask)
                    kf[str(int(index))] = {"type": "box" if box is not None else "mask",
                                           "box": box}
                else:  # erasing everything removes the object from that frame
                    self.remove_mask(sid, oid, index)
                    kf.pop(str(int(index)), None)
                self._drop_score(sid, oid, index)
                after = self._snapshot(sid, s, oid, index)
                entry["changes"].append({"object": int(oid), "frame": int(index),
                                         "before": before, "after": after})
            history = s.setdefault("history", [])
            history.append(entry)
            for old in history[: max(0, len(history) - HISTORY_LIMIT)]:
                self._forget(sid, old)
            del history[: max(0, len(history) - HISTORY_LIMIT)]
            for old in s.get("redo", []):
                self._forget(sid, old)
            s["redo"] = []

    def _forget(self, sid: str, entry: dict[str, Any]) -> None:
        for c in entry["changes"]:
            for snap in (c["before"], c["after"]):
                if snap["mask"]:
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(self.session_dir(sid) / "history" / snap["mask"])

    def undo(self, sid: str, redo: bool = False) -> dict[str, Any]:
        """Undo (or redo) the last edit; returns what changed and what can be undone next."""
        with self.edit(sid) as s:
            src, dst = ("redo", "history") if redo else ("history", "redo")
            stack = s.setdefault(src, [])
            if not stack:
                raise Conflict(f"nothing to {'redo' if redo else 'undo'}")
            entry = stack.pop()
            for c in entry["changes"]:
                self._restore(sid, s, c["object"], c["frame"], c["after" if redo else "before"])
            s.setdefault(dst, []).append(entry)
            state = {"what": entry["what"],
                     "frames": sorted({c["frame"] for c in entry["changes"]}),
                     "objects": sorted({c["object"] for c in entry["changes"]}),
                     "can_undo": bool(s.get("history")), "can_redo": bool(s.get("redo"))}
        return state

    # -- per-frame scores of tracked masks ------------------------------------------------------
    def _scores_path(self, sid: str) -> Path:
        return self.session_dir(sid) / "scores.json"

    def scores(self, sid: str) -> dict[str, dict[str, float]]:
        """``{object: {frame: score}}`` of the tracked (not user-drawn) masks."""
        try:
            return json.loads(self._scores_path(sid).read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def add_scores(self, sid: str, scores: dict[int, dict[int, float]]) -> None:
        """Merge tracked frames' scores (the tracker's confidence, 0..1) into the session."""
        if not scores:
            return
        with self.lock(sid):
            cur = self.scores(sid)
            for oid, per in scores.items():
                d = cur.setdefault(str(int(oid)), {})
                for i, v in per.items():
                    d[str(int(i))] = round(float(v), 4)
            _write_json(self._scores_path(sid), cur)

    def _drop_score(self, sid: str, oid: int, index: int) -> None:
        cur = self.scores(sid)
        if cur.get(str(int(oid)), {}).pop(str(int(index)), None) is not None:
            _write_json(self._scores_path(sid), cur)

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
        ids = sorted(int(k) for k in s["objects"])
        if not ids or not any(self.frames_with_masks(s, o) for o in ids):
            raise InputError("nothing to export: the session has no object with a mask yet "
                             "(draw a box, click or paint an object, then track it)")
        out = self.session_dir(sid) / "export"
        out.mkdir(exist_ok=True)
        scores = self.scores(sid)
        visible = {int(k) for k, o in s["objects"].items() if not o.get("hidden")}
        written: list[str] = []
        masks = MaskWriter(out / "davis") if "davis" in formats else None
        boxes = BoxesWriter(out / "boxes.json") if "boxes" in formats else None
        overlay = None
        if "overlay" in formats:
            overlay = OverlayWriter(out / "overlay.mp4", fps=s.get("fps") or 25.0,
                                    frame_size=(int(s["height"]), int(s["width"])),
                                    names={o: s["objects"][str(o)]["name"] for o in ids})
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
                    if m is not None and m.any():  # drawn masks: 1, tracked: the tracker's
                        preds[o] = make_prediction(m, score=scores.get(str(o), {}).get(str(i),
                                                                                      1.0))
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
        with self.edit(sid) as s2:
            s2["last_export"] = written
        return written

    def file_stem(self, sid: str) -> str:
        """The session's name as a file name (letters, digits, ``-_.``; at most 60)."""
        name = self.load(sid)["name"]
        return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:60] or sid

    def export_zip(self, sid: str) -> Path:
        """``<sid>/export.zip``: everything the last export wrote (built atomically)."""
        import zipfile

        out = self.session_dir(sid) / "export"
        s = self.load(sid)
        files: list[Path] = []
        for name in s.get("last_export") or []:  # what the last export wrote, nothing older
            p = out / name
            if p.is_dir():
                files += sorted(f for f in p.rglob("*") if f.is_file()
                                and not f.name.startswith("."))
            elif p.is_file():
                files.append(p)
        if not files:
            raise NotFound("nothing exported yet: export first")
        top = self.file_stem(sid)
        path = self.session_dir(sid) / "export.zip"
        tmp = path.with_name(f".export.{uuid.uuid4().hex[:8]}.zip")
        try:
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
                for f in files:
                    # videos and PNGs are compressed already
                    kind = zipfile.ZIP_STORED if f.suffix in (".mp4", ".webm", ".png") \
                        else zipfile.ZIP_DEFLATED
                    z.write(f, f"{top}/{f.relative_to(out)}", compress_type=kind)
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
        return path
