"""Every committed weight file has a manifest whose sha256 and size match the file, a
`segtrack train ...` command, and stays well under the 20 MB limit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from segtrack.training.common import sha256_file

WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "segtrack" / "weights"
FILES = sorted(WEIGHTS.glob("*.pt"))


def test_weights_folder_is_not_empty():
    assert FILES, f"no weight files in {WEIGHTS}"


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_weight_file_matches_a_manifest(path: Path):
    entries = []
    for m in WEIGHTS.glob("*.manifest.json"):
        doc = json.loads(m.read_text())
        entries += [(m, doc, f) for f in doc.get("files", []) if f["file"] == path.name]
    assert len(entries) == 1, f"{path.name}: {len(entries)} manifests list it"
    manifest, doc, entry = entries[0]
    assert entry["sha256"] == sha256_file(path), f"{manifest.name}: stale sha256"
    assert entry["bytes"] == path.stat().st_size
    assert path.stat().st_size < 10_000_000
    assert str(doc["command"]).startswith("segtrack train "), manifest.name
