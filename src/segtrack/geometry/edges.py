"""Sharp mask boundaries at full resolution: edge-aware refinement of upsampled probabilities.

The trackers that segment a crop at a coarse stride (RTS/LWL's decoder at stride 4, SiamMask's
mask branch on a 127-pixel window) paste their probabilities back into the frame bilinearly, so
the boundary is as coarse as one score cell (often 5-10 frame pixels).  :func:`guided_refine`
re-snaps that band to the image's edges with the colour guided filter (He, Sun and Tang,
"Guided Image Filtering", ECCV 2010 / TPAMI 2013): inside each window the output is an affine
function of the frame's colours fitted to the probabilities, so a step in the image becomes a
step in the mask.  It is a departure from the seeds (which refine with learned decoders); it
needs no training, runs only over the box of the uncertain band, and is measured in BENCHMARKS.md.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["guided_filter", "guided_refine"]


def _box(x: np.ndarray, r: int) -> np.ndarray:
    return cv2.boxFilter(x, -1, (2 * r + 1, 2 * r + 1), normalize=True,
                         borderType=cv2.BORDER_REFLECT)


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float,
                  subsample: int = 1) -> np.ndarray:
    """Colour guided filter of ``src`` (H, W) float32 with ``guide`` (H, W, 3) float32 in [0, 1];
    window (2 radius + 1)^2, regularisation ``eps`` (larger: smoother).  With ``subsample`` s > 1
    the linear coefficients are fitted on an s-times smaller image and upsampled (the "fast
    guided filter", He and Sun 2015): the output keeps the full-resolution edges of the guide."""
    full = guide.astype(np.float32, copy=False)
    H, W = src.shape
    s = max(1, int(subsample))
    if s > 1:
        size = (max(2, W // s), max(2, H // s))
        I = cv2.resize(full, size, interpolation=cv2.INTER_AREA)
        p = cv2.resize(src.astype(np.float32, copy=False), size, interpolation=cv2.INTER_AREA)
        r = max(1, int(round(radius / s)))
    else:
        I, p, r = full, src.astype(np.float32, copy=False), max(1, int(radius))
    mI = _box(I, r)  # (H, W, 3)
    mp = _box(p, r)
    cov = _box(I * p[..., None], r) - mI * mp[..., None]
    # the 3x3 colour covariance per pixel (symmetric: six distinct entries)
    idx = [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)]
    v = {ij: _box(I[..., ij[0]] * I[..., ij[1]], r) - mI[..., ij[0]] * mI[..., ij[1]]
         for ij in idx}
    a11, a12, a13 = v[0, 0] + eps, v[0, 1], v[0, 2]
    a22, a23, a33 = v[1, 1] + eps, v[1, 2], v[2, 2] + eps
    # inverse by cofactors
    c11 = a22 * a33 - a23 * a23
    c12 = a13 * a23 - a12 * a33
    c13 = a12 * a23 - a13 * a22
    c22 = a11 * a33 - a13 * a13
    c23 = a12 * a13 - a11 * a23
    c33 = a11 * a22 - a12 * a12
    det = a11 * c11 + a12 * c12 + a13 * c13
    det = np.where(np.abs(det) < 1e-12, 1e-12, det)
    x, y, z = cov[..., 0], cov[..., 1], cov[..., 2]
    a = np.stack([(c11 * x + c12 * y + c13 * z), (c12 * x + c22 * y + c23 * z),
                  (c13 * x + c23 * y + c33 * z)], -1) / det[..., None]
    b = mp - (a * mI).sum(-1)
    ma, mb = _box(a, r), _box(b, r)
    if s > 1:
        ma = cv2.resize(ma, (W, H), interpolation=cv2.INTER_LINEAR)
        mb = cv2.resize(mb, (W, H), interpolation=cv2.INTER_LINEAR)
    q = mb
    for c in range(3):
        q += ma[..., c] * full[..., c]
    return q


def guided_refine(prob: np.ndarray, image: np.ndarray, radius: int, eps: float = 1e-3,
                  band: tuple[float, float] = (0.02, 0.98), inplace: bool = False) -> np.ndarray:
    """Probabilities ``prob`` (H, W) float32, upsampled from a coarse stride, re-snapped to the
    edges of ``image`` (H, W, 3) uint8 RGB.  Only the box around the uncertain band
    (``band[0] < prob < band[1]``), grown by two radii, is filtered; elsewhere ``prob`` is
    returned as it is.  The result is clipped to [0, 1]; ``inplace`` writes it into ``prob``."""
    r = max(1, int(round(radius)))
    unsure = (prob > band[0]) & (prob < band[1])
    rows, cols = unsure.any(1), unsure.any(0)
    if not rows.any():
        return prob
    H, W = prob.shape
    m = 2 * r + 1
    y0 = max(0, int(rows.argmax()) - m)
    y1 = min(H, H - int(rows[::-1].argmax()) + m)
    x0 = max(0, int(cols.argmax()) - m)
    x1 = min(W, W - int(cols[::-1].argmax()) + m)
    guide = np.multiply(image[y0:y1, x0:x1], np.float32(1.0 / 255.0), dtype=np.float32)
    q = guided_filter(guide, prob[y0:y1, x0:x1], r, eps, subsample=max(1, r // 2))
    out = prob if inplace else prob.copy()
    np.clip(q, 0.0, 1.0, out=out[y0:y1, x0:x1])
    return out
