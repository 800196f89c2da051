"""Copy a trained weight file into ``src/segtrack/weights/`` under a committed name and write its
manifest: the training run's manifest with the file entry renamed (sha256 and size recomputed)
plus the given note and benchmark figures.

    python scripts/commit_weights.py RUN_DIR/rts.pt rts-fold0-static --note "..." \
        --bench 'rts_mask=0.7493' --bench-command 'rts_mask=segtrack bench ...'
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from segtrack.training.common import sha256_file

WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "segtrack" / "weights"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("weights")
    p.add_argument("name", help="committed stem, e.g. rts-fold0-static")
    p.add_argument("--note", default="")
    p.add_argument("--bench", action="append", default=[], metavar="KEY=J&F")
    p.add_argument("--bench-command", action="append", default=[], metavar="KEY=COMMAND")
    a = p.parse_args()
    src = Path(a.weights)
    man = json.loads(src.with_name(src.stem + ".manifest.json").read_text())
    dst = WEIGHTS / f"{a.name}.pt"
    shutil.copyfile(src, dst)
    man["files"] = [{"file": dst.name, "bytes": dst.stat().st_size, "sha256": sha256_file(dst)}]
    if a.note:
        man["note"] = a.note
    if a.bench:
        man["benchmarks"] = {k: float(v) for k, v in (b.split("=", 1) for b in a.bench)}
    if a.bench_command:
        man["bench_commands"] = dict(b.split("=", 1) for b in a.bench_command)
    (WEIGHTS / f"{a.name}.manifest.json").write_text(json.dumps(man, indent=2, default=str) + "\n")
    print(dst, man["files"][0]["sha256"][:16])


if __name__ == "__main__":
    main()
