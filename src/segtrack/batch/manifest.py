"""Batch manifests: one tracking task per row, read from CSV or JSON Lines (issue 9).

Columns / keys (``video`` and one of ``mask`` / ``box`` are required):

* ``video``  - video file or folder of frames (relative paths are relative to the manifest);
* ``mask``   - first-frame mask PNG (value k = object k), a ``.json`` file holding a COCO RLE
  ``{"size": [h, w], "counts": ...}``, or - JSONL only - that RLE object inline;
* ``box``    - ``x,y,w,h`` (CSV: ``"10,20,30,40"``; JSONL: a list of four numbers);
* ``frame``  - index of the frame the mask / box is on (default 0);
* ``method`` - tracking method (default ``flow``);
* ``params`` - method parameters (CSV: ``key=value;key=value``; JSONL: an object);
* ``name``   - output sub-folder (default: the video's file stem); must be unique.

Every bad row raises :class:`~segtrack.errors.InputError` naming the manifest and the row
(the CSV/JSONL line number, header = line 1 for CSV).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from segtrack.errors import InputError

__all__ = ["Task", "read_manifest", "parse_row", "COLUMNS"]

COLUMNS = ("video", "mask", "box", "frame", "method", "params", "name")
_NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


@dataclass(frozen=True)
class Task:
    """One video to track.

    Attributes:
        row: line number of the row in its manifest (for messages).
        name: output sub-folder name (unique within the manifest).
        video: absolute path of the video file / frame folder.
        mask: absolute path of a mask file, or None.
        rle: an inline COCO RLE mask (JSONL only), or None.
        box: ``(x, y, w, h)`` or None.
        frame: frame index the mask / box is given on.
        method: tracking method name.
        params: method parameters (strings or JSON values).
    """

    row: int
    name: str
    video: str
    mask: str | None = None
    rle: dict | None = None
    box: tuple[float, float, float, float] | None = None
    frame: int = 0
    method: str = "flow"
    params: dict[str, Any] = field(default_factory=dict)

    def spec(self) -> dict[str, Any]:
        """The fields that define the result (everything but the row number)."""
        d = asdict(self)
        d.pop("row")
        d["box"] = list(self.box) if self.box is not None else None
        return d

    def fingerprint(self) -> str:
        """Hash of :meth:`spec`: a done-marker only counts for the task that wrote it."""
        text = json.dumps(self.spec(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _err(src: str, row: int, msg: str) -> InputError:
    return InputError(f"manifest '{src}' row {row}: {msg}")


def _empty(v: Any) -> bool:
    return v is None or (isinstance(v, str) and not v.strip())


def _parse_box(v: Any, src: str, row: int) -> tuple[float, float, float, float]:
    if isinstance(v, str):
        parts = [p for p in re.split(r"[,\s]+", v.strip()) if p]
    elif isinstance(v, (list, tuple)):
        parts = list(v)
    else:
        raise _err(src, row, f"box {v!r}: expected four numbers x,y,w,h")
    try:
        vals = [float(p) for p in parts]
    except (TypeError, ValueError):
        raise _err(src, row, f"box {v!r}: expected four numbers x,y,w,h") from None
    if len(vals) != 4 or not all(math.isfinite(x) for x in vals):
        raise _err(src, row, f"box {v!r}: expected four finite numbers x,y,w,h")
    if vals[2] <= 0 or vals[3] <= 0:
        raise _err(src, row, f"box {v!r}: width and height must be > 0")
    return vals[0], vals[1], vals[2], vals[3]


def _parse_params(v: Any, src: str, row: int) -> dict[str, Any]:
    if _empty(v):
        return {}
    if isinstance(v, Mapping):
        return {str(k): val for k, val in v.items()}
    if not isinstance(v, str):
        raise _err(src, row, f"params {v!r}: expected key=value;key=value or an object")
    s = v.strip()
    if s.startswith("{"):
        try:
            obj = json.loads(s)
        except json.JSONDecodeError:
            raise _err(src, row, f"params {v!r}: not valid JSON") from None
        if not isinstance(obj, dict):
            raise _err(src, row, f"params {v!r}: expected a JSON object")
        return {str(k): val for k, val in obj.items()}
    out: dict[str, Any] = {}
    for item in re.split(r"[;\s]+", s):
        if not item:
            continue
        if "=" not in item:
            raise _err(src, row, f"params item {item!r}: expected key=value")
        k, val = item.split("=", 1)
        if not k.strip():
            raise _err(src, row, f"params item {item!r}: empty key")
        out[k.strip()] = val.strip()
    return out


def _parse_frame(v: Any, src: str, row: int) -> int:
    if _empty(v):
        return 0
    try:
        f = float(v)
        if not f.is_integer():
            raise ValueError
        fi = int(f)
    except (TypeError, ValueError, OverflowError):
        raise _err(src, row, f"frame {v!r}: expected a non-negative integer") from None
    if fi < 0:
        raise _err(src, row, f"frame {v!r}: expected a non-negative integer")
    return fi


def _resolve(p: str, base: Path) -> Path:
    q = Path(p).expanduser()
    return q if q.is_absolute() else (base / q)


def parse_row(
    rec: Mapping[str, Any], row: int, source: str = "<manifest>", base: Path | None = None,
    check_files: bool = True,
) -> Task:
    """Validate one manifest record and build its :class:`Task` (InputError naming the row)."""
    from segtrack.trackers.registry import available_methods

    base = base or Path.cwd()
    unknown = [k for k in rec if k not in COLUMNS]
    if unknown:
        raise _err(source, row, f"unknown column(s) {', '.join(map(repr, unknown))} "
                                f"(known: {', '.join(COLUMNS)})")
    video = rec.get("video")
    if _empty(video) or not isinstance(video, str):
        raise _err(source, row, "missing 'video'")
    vpath = _resolve(video.strip(), base)
    if check_files and not vpath.exists():
        raise _err(source, row, f"video '{video}' does not exist")
    mask_v, box_v = rec.get("mask"), rec.get("box")
    if _empty(mask_v) and _empty(box_v):
        raise _err(source, row, "give a 'mask' or a 'box'")
    if not _empty(mask_v) and not _empty(box_v):
        raise _err(source, row, "give a 'mask' or a 'box', not both")
    mask = rle = box = None
    if not _empty(mask_v):
        if isinstance(mask_v, Mapping):
            from segtrack.io import coco_rle

            try:
                coco_rle.decode(mask_v)
            except InputError as e:
                raise _err(source, row, f"inline RLE mask: {e}") from None
            rle = dict(mask_v)
        elif isinstance(mask_v, str):
            mpath = _resolve(mask_v.strip(), base)
            if check_files and not mpath.is_file():
                raise _err(source, row, f"mask '{mask_v}' does not exist")
            mask = str(mpath)
        else:
            raise _err(source, row, f"mask {mask_v!r}: expected a file path or an RLE object")
    else:
        box = _parse_box(box_v, source, row)
    frame = _parse_frame(rec.get("frame"), source, row)
    method_v = rec.get("method")
    method = "flow" if _empty(method_v) else str(method_v).strip().lower()
    if method not in available_methods():
        raise _err(source, row, f"unknown method '{method_v}'; available: "
                                f"{', '.join(available_methods())}")
    params = _parse_params(rec.get("params"), source, row)
    name_v = rec.get("name")
    if _empty(name_v):
        name = vpath.stem if vpath.suffix else vpath.name
    else:
        name = str(name_v).strip()
    if not _NAME_OK.match(name):
        raise _err(source, row, f"name {name!r} is not a plain folder name "
                                "(letters, digits, . _ + -)")
    return Task(row=row, name=name, video=str(vpath.resolve() if vpath.exists() else vpath),
                mask=mask, rle=rle, box=box, frame=frame, method=method, params=params)


def _csv_records(path: Path) -> list[tuple[int, dict[str, Any]]]:
    src = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"manifest '{src}' is not UTF-8 text") from None
    lines = text.splitlines()
    reader = csv.reader(lines)
    header: list[str] | None = None
    out = []
    for idx, cells in enumerate(reader, start=1):
        if not cells or all(not c.strip() for c in cells) or cells[0].lstrip().startswith("#"):
            continue
        if header is None:
            header = [c.strip().lower() for c in cells]
            if "video" not in header:
                raise InputError(f"manifest '{src}' row {idx}: header must name a 'video' column "
                                 f"(columns: {', '.join(COLUMNS)})")
            unknown = [h for h in header if h and h not in COLUMNS]
            if unknown:
                raise InputError(f"manifest '{src}' row {idx}: unknown column(s) "
                                 f"{', '.join(map(repr, unknown))} (known: {', '.join(COLUMNS)})")
            dup = {h for h in header if header.count(h) > 1}
            if dup:
                raise InputError(f"manifest '{src}' row {idx}: duplicate column(s) "
                                 f"{', '.join(sorted(dup))}")
            continue
        if len(cells) > len(header):
            raise _err(src, idx, f"{len(cells)} cells but the header has {len(header)} columns")
        rec = {h: c for h, c in zip(header, cells) if h}
        out.append((idx, rec))
    return out


def _jsonl_records(path: Path) -> list[tuple[int, dict[str, Any]]]:
    src = str(path)
    out = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise InputError(f"manifest '{src}' is not UTF-8 text") from None
    for idx, line in enumerate(lines, start=1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        try:
            rec = json.loads(s)
        except json.JSONDecodeError as e:
            raise _err(src, idx, f"not valid JSON ({e.msg})") from None
        if not isinstance(rec, dict):
            raise _err(src, idx, "expected a JSON object")
        out.append((idx, rec))
    return out


def read_manifest(path: str | Path, check_files: bool = True) -> list[Task]:
    """Read and validate a ``.csv`` or ``.jsonl`` / ``.ndjson`` manifest; one Task per row."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"manifest '{path}' does not exist")
    suffix = p.suffix.lower()
    if suffix == ".csv":
        records = _csv_records(p)
    elif suffix in (".jsonl", ".ndjson", ".json"):
        records = _jsonl_records(p)
    else:
        raise InputError(f"manifest '{path}': expected a .csv or .jsonl file")
    if not records:
        raise InputError(f"manifest '{path}' has no rows")
    base = p.resolve().parent
    tasks: list[Task] = []
    seen: dict[str, int] = {}
    for row, rec in records:
        t = parse_row(rec, row, str(path), base, check_files=check_files)
        if t.name in seen:
            raise _err(str(path), row, f"output name '{t.name}' is already used by row "
                                       f"{seen[t.name]} (add a unique 'name')")
        seen[t.name] = row
        tasks.append(t)
    return tasks
