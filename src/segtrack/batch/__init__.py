"""Batch tracking: a manifest of videos fanned out to a local loop or Ray (issue 9).

See :mod:`segtrack.batch.manifest` (CSV / JSONL manifests) and :mod:`segtrack.batch.runner`
(engines, retries, resumability, summary table).
"""

from segtrack.batch.manifest import Task, parse_row, read_manifest
from segtrack.batch.runner import DONE_FILE, format_summary, is_done, run_batch, run_task

__all__ = [
    "DONE_FILE",
    "Task",
    "format_summary",
    "is_done",
    "parse_row",
    "read_manifest",
    "run_batch",
    "run_task",
]
