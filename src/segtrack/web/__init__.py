"""The browser workbench (issue 8): ``segtrack serve`` runs a local FastAPI app.

Open a video or frame folder (or upload one), draw a box, click on the object (click-to-segment)
or paint a mask on any frame, track forwards and backwards with any registered method while the
masks appear in the page, correct and re-propagate, and export DAVIS PNGs, ``boxes.json``, an
overlay video and COCO RLE. See
``docs/workbench.md``. Needs the ``web`` extra (``pip install segtrack[web]``).
"""

from __future__ import annotations

__all__ = ["create_app", "serve"]


def __getattr__(name: str):  # lazy: importing segtrack.web must not need fastapi
    if name in __all__:
        from segtrack.web import app

        return getattr(app, name)
    raise AttributeError(name)
