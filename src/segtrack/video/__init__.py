"""Video-level wrappers around per-frame segmenters: EVS (seed 001, ch. 3) and the LMANet memory
modules (ch. 4) live in :mod:`segtrack.video.evs` and :mod:`segtrack.models.lmanet`."""

from segtrack.video.evs import (
    EVSConfig,
    EVSPipeline,
    blend_iam,
    iam_attention,
    inconsistency_map,
    parse_evs_spec,
    warp_probs,
)

__all__ = [
    "EVSConfig",
    "EVSPipeline",
    "blend_iam",
    "iam_attention",
    "inconsistency_map",
    "parse_evs_spec",
    "warp_probs",
]
