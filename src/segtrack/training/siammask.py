"""``segtrack train siammask --variant 2b|3b``: offline training of SiamMask (seed 004, §3.2
"Loss function" / "Two variants", §3.3 "Training"), made to fit a shared 2-core CPU.

Data: frame pairs (exemplar frame, search frame at most ``--max-gap`` frames apart) from the
DAVIS-2016 train sequences outside ``--fold`` (boxes = min-max boxes of the masks) and from
``--synth-videos`` synthetic videos (:func:`segtrack.data.synthetic.make_video`); a fraction
``--neg-frac`` of pairs takes the search region from another video (all RoWs negative, as
SiamRPN/SiamMask's negative pairs).  Crops: SiamFC context, 127x127 exemplar jittered by up to
±8 px and 2^±1/8 in scale, 255x255 search jittered by 2^±1/4 in scale and ``--search-shift``
pixels (the seed says ±8 px; 8 px keeps every target within one RoW of the centre and a score
branch trained so never learns to localise, so the default is ±48 px, as SiamMask's released
training configuration also shifts search crops far more than exemplars).

The backbone is frozen, so the features of every pair are computed once (the "pair cache", in
RAM and in ``--cache`` so the second variant reuses it) and iterations only run the heads.

Losses (Eq. 3-5): L_3B = λ1 L_mask + λ2 L_score + λ3 L_box with λ1 = 32, λ2 = λ3 = 1; L_2B =
λ1 L_mask + λ2 L_sim.  3b: a RoW's anchor is positive at IoU >= 0.6 and negative below 0.3
(SiamRPN; between: ignored by the score loss), the RoW is positive (y_n = 1) if one of its
anchors is; score = anchor cross-entropy (positives and negatives weighted equally), box =
smooth L1 on positive anchors.  2b: SiamFC labels (positive within 16 px = 2 cells of the target
centre), class-balanced logistic loss.  L_mask: per-pixel binary logistic loss averaged over the
window, on (up to ``--masks-per-pair``) positive RoWs only.

Schedule (§3.3): linear warm-up from 1e-3 to 5e-3 over the first quarter of the iterations (the
seed: 5 of 20 epochs), then logarithmic decay to 5e-4; with Adam (default) all three values are
multiplied by ``--lr-mult`` (0.2), with ``--optim sgd`` (momentum 0.9, the seed's optimiser) they
are used as they are.  The seed trains 20 epochs on COCO + ImageNet-VID + YouTube-VOS with a
fine-tuned ResNet-50; here ``--iters`` head-only iterations on a few thousand pairs.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import shlex
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from segtrack.errors import InputError
from segtrack.models.rts.search import Crop, crop_image, crop_mask
from segtrack.models.siammask import (
    EXEMPLAR,
    SEARCH,
    SiamMaskConfig,
    SiamMaskNet,
    anchor_labels,
    build_siammask_backbone,
    context_sides,
    encode_boxes,
    make_anchors,
    save_siammask,
    siamfc_labels,
)
from segtrack.training.common import (
    STATIC_SEED,
    Checkpointer,
    LossLog,
    add_common_args,
    add_static_args,
    check_data_root,
    check_static_args,
    load_or_build,
    mixed_batch,
    split_sequences,
    start_run,
    write_manifest,
)

CACHE_SEED = 4004  # pair sampling and jitter of the cache (fixed, independent of --seed)
BOX_TRAIN_SEED = 70000  # box-tracking clips of the training photographs (the dev set: 50000)
BOX_TRAIN_FRAMES = (80, 160)  # frames per training clip
BOX_PAIRS_PER_CLIP = 6


def box_clip_pairs(dirs: list[str], data: Path, backgrounds: list[str], max_gap: int,
                   ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Endless ``(frame_z, mask_z, frame_x, mask_x)`` pairs from box-tracking clips
    (:mod:`segtrack.data.box_clips`) of the *training* photographs over frames of
    ``backgrounds``: a target among look-alikes, small to large, moving fast, hidden and
    leaving; the search frame up to ``max_gap`` frames after the exemplar's, the target
    visible on both."""
    from segtrack.data.box_clips import BoxClipMaker, BoxParams
    from segtrack.data.static import load_static_sets

    maker = BoxClipMaker(load_static_sets(dirs), data, BoxParams(frame_range=BOX_TRAIN_FRAMES),
                         objects="training", backgrounds=backgrounds)
    i = 0
    while True:
        _, it = maker.frames(i, BOX_TRAIN_SEED)
        clip = list(it)
        rng = np.random.default_rng([BOX_TRAIN_SEED, i, 1])
        seen = [j for j, (_, m) in enumerate(clip) if m.sum() >= 16]
        for _ in range(BOX_PAIRS_PER_CLIP if len(seen) > 1 else 0):
            jz = int(rng.choice(seen))
            later = [j for j in seen if jz < j <= jz + max_gap]
            if later:
                jx = int(rng.choice(later))
                yield clip[jz][0], clip[jz][1], clip[jx][0], clip[jx][1]
        i += 1
LAMBDA_MASK, LAMBDA_SCORE, LAMBDA_BOX = 32.0, 1.0, 1.0


def mask_box(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return (float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1),
            float(ys.max() - ys.min() + 1))


def jitter_crop(box: tuple[float, ...], size: int, shift_px: float, log2_scale: float,
                rng: np.random.Generator) -> Crop:
    """SiamFC crop of ``size`` around ``box`` (x, y, w, h) with a random shift of up to
    ``shift_px`` crop pixels and a scale factor in 2^±``log2_scale``."""
    x, y, w, h = box
    s_z, s_x = context_sides(w, h)
    side = (s_z if size == EXEMPLAR else s_x) * 2.0 ** rng.uniform(-log2_scale, log2_scale)
    per = side / size
    cx = x + w / 2 + rng.uniform(-shift_px, shift_px) * per
    cy = y + h / 2 + rng.uniform(-shift_px, shift_px) * per
    return Crop(cx, cy, side, size)


class _Source:
    """Frames and masks of the training videos (DAVIS sequences and synthetic videos)."""

    def __init__(self, data: Path, names: list[str], synth_videos: int) -> None:
        from segtrack.eval.datasets import load_davis

        self.davis = [s for s in load_davis(data) if s.name in names]
        self.synth = []
        if synth_videos:
            from segtrack.data.synthetic import make_video

            self.synth = [make_video(CACHE_SEED + v, num_frames=40, height=240, width=320)
                          for v in range(synth_videos)]

    def lengths(self) -> list[int]:
        return [len(s.frames) for s in self.davis] + [len(v) for v in self.synth]

    def get(self, v: int, f: int) -> tuple[np.ndarray, np.ndarray]:
        from segtrack.io.sources import read_image

        if v < len(self.davis):
            seq = self.davis[v]
            lab = seq.read_labels(f)
            img = read_image(seq.frames[f])
            m = (lab > 0) if lab is not None else np.zeros(img.shape[:2], bool)
            return img, m
        img, lab = self.synth[v - len(self.davis)].frame(f)
        return img, lab == 1


def sample_pair(src: _Source, rng: np.random.Generator, n_davis_pairs: int, k: int,
                max_gap: int, neg_frac: float):
    """Indices ``(video_z, frame_z, video_x, frame_x, negative)`` of pair ``k``."""
    lengths = src.lengths()
    nd = len(src.davis)
    v = int(rng.integers(0, nd)) if (k < n_davis_pairs or nd == len(lengths)) else int(
        rng.integers(nd, len(lengths)))
    n = lengths[v]
    fz = int(rng.integers(0, n))
    fx = int(np.clip(fz + rng.integers(-max_gap, max_gap + 1), 0, n - 1))
    neg = bool(rng.random() < neg_frac)
    vx = v
    if neg:
        vx = int(rng.integers(0, len(lengths) - 1))
        vx = vx + 1 if vx >= v else vx
        fx = int(rng.integers(0, lengths[vx]))
    return v, fz, vx, fx, neg


@torch.no_grad()
def build_pair_cache(src: _Source, n_davis: int, n_synth: int, search_shift: float,
                     max_gap: int, neg_frac: float, backbone, quiet: bool = False,
                     seed: int = CACHE_SEED, batch: int = 8, static=None,
                     n_static: int = 0, box_pairs: Iterator | None = None,
                     n_box: int = 0) -> dict:
    """Crops of ``n_davis + n_synth`` video pairs, then ``n_static`` pairs made from
    photographs (frames 0 and 1 of a :class:`segtrack.data.static.StaticClipMaker` clip), then
    ``n_box`` pairs from ``box_pairs`` (:func:`box_clip_pairs`), and their frozen-backbone
    features (fp16)."""
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    n_video = n_davis + n_synth
    n_static = n_static if static is not None else 0
    N = n_video + n_static + (n_box if box_pairs is not None else 0)
    z16 = torch.zeros(N, 112, 16, 16, dtype=torch.float16)
    x16 = torch.zeros(N, 112, 32, 32, dtype=torch.float16)
    x8 = torch.zeros(N, 40, 32, 32, dtype=torch.float16)
    x4 = torch.zeros(N, 24, 64, 64, dtype=torch.float16)
    xmask = torch.zeros(N, 256, 256, dtype=torch.bool)
    gt = np.full((N, 4), np.nan)
    zs: list[np.ndarray] = []
    xs: list[np.ndarray] = []
    rows: list[int] = []

    def flush() -> None:
        tz = torch.from_numpy(np.stack(zs)).permute(0, 3, 1, 2).float() / 255
        tx = torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).float() / 255
        fz, fx = backbone(tz), backbone(tx)
        r = torch.tensor(rows)
        z16[r] = fz[16].half()
        x16[r], x8[r], x4[r] = fx[16].half(), fx[8].half(), fx[4].half()
        zs.clear()
        xs.clear()
        rows.clear()

    k = static_i = 0
    bar = tqdm(total=N, desc="pair cache", disable=quiet)
    while k < N:
        if k >= n_video + n_static:
            img_z, m_z, img_x, m_x = next(box_pairs)
            neg = False
            bz = mask_box(m_z)
        elif k >= n_video:
            i, static_i = static_i, static_i + 1
            clip = static.numbered(i, STATIC_SEED)
            img_z, m_z, img_x, m_x = clip.frames[0], clip.masks[0], clip.frames[1], clip.masks[1]
            neg = False
            bz = mask_box(m_z)
            if bz is None:
                continue
        else:
            vz, fz_, vx, fx_, neg = sample_pair(src, rng, n_davis, k, max_gap, neg_frac)
            img_z, m_z = src.get(vz, fz_)
            bz = mask_box(m_z)
            if bz is None:
                continue
            img_x, m_x = (img_z, m_z) if (vx, fx_) == (vz, fz_) else src.get(vx, fx_)
        bx = mask_box(m_x)
        if bx is None:
            continue
        cz = jitter_crop(bz, EXEMPLAR, 8.0, 1.0 / 8.0, rng)
        cx = jitter_crop(bx, SEARCH, search_shift, 1.0 / 4.0, rng)
        zs.append(crop_image(img_z, cz))
        xs.append(crop_image(img_x, cx))
        mx = crop_mask(m_x, cx) > 0.5
        if not neg:
            xmask[k, :SEARCH, :SEARCH] = torch.from_numpy(mx)
            x0, y0, w, h = cx.box_to_crop(bx)
            gt[k] = (x0 + w / 2, y0 + h / 2, w, h)
        rows.append(k)
        k += 1
        bar.update(1)
        if len(rows) == batch:
            flush()
    if rows:
        flush()
    bar.close()
    return {"z16": z16, "x16": x16, "x8": x8, "x4": x4, "xmask": xmask, "gt": gt}


def pair_labels(cfg: SiamMaskConfig, gt: np.ndarray) -> dict[str, np.ndarray]:
    """Score labels (N, k, 17, 17) int8, box targets (N, k, 17, 17, 4), positive RoWs
    (N, 17, 17) bool for the cached ground-truth boxes ``gt`` (N, 4) (NaN = negative pair)."""
    anchors = make_anchors(cfg)
    N = len(gt)
    lab = np.zeros((N, cfg.k, 17, 17), np.int8)
    tgt = np.zeros((N, cfg.k, 17, 17, 4), np.float32)
    pos = np.zeros((N, 17, 17), bool)
    for n in range(N):
        g = None if np.isnan(gt[n, 0]) else gt[n]
        if cfg.variant == "3b":
            lab[n], _ = anchor_labels(anchors, g)
            pos[n] = (lab[n] == 1).any(0)
            if g is not None:
                tgt[n] = encode_boxes(anchors, np.maximum(g, [-1e9, -1e9, 1.0, 1.0]))
        else:
            lab[n, 0] = siamfc_labels(g)
            pos[n] = lab[n, 0] == 1
    return {"labels": lab, "targets": tgt, "pos": pos}


def balanced_logistic(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean logistic loss over positives (label 1) plus mean over negatives (label 0), halved;
    label -1 is ignored."""
    p, q = labels == 1, labels == 0
    loss = logits.new_zeros(())
    if p.any():
        loss = loss + 0.5 * F.binary_cross_entropy_with_logits(logits[p], torch.ones_like(
            logits[p]))
    if q.any():
        w = 0.5 if p.any() else 1.0
        loss = loss + w * F.binary_cross_entropy_with_logits(logits[q], torch.zeros_like(
            logits[q]))
    return loss


def batch_loss(net: SiamMaskNet, cache: dict, lab: dict, idx: np.ndarray,
               rng: np.random.Generator, masks_per_pair: int) -> dict[str, torch.Tensor]:
    cfg = net.cfg
    t = torch.from_numpy(idx)
    feats = {16: cache["x16"][t].float(), 8: cache["x8"][t].float(), 4: cache["x4"][t].float()}
    corr = net.correlate(net.template(cache["z16"][t].float()), feats[16])
    score, box = net.heads(corr)
    labels = torch.from_numpy(lab["labels"][idx]).long()
    out = {"score": balanced_logistic(score, labels)}
    if box is not None:
        p = labels == 1
        if p.any():
            tgt = torch.from_numpy(lab["targets"][idx])  # (B, k, 17, 17, 4)
            pred = box.permute(0, 1, 3, 4, 2)  # (B, k, 17, 17, 4)
            out["box"] = F.smooth_l1_loss(pred[p], tgt[p], beta=1.0 / 9.0, reduction="none"
                                          ).sum(-1).mean()
        else:
            out["box"] = corr.new_zeros(())
    # mask on (a random subset of) the positive RoWs
    bs, is_, js = [], [], []
    for r, n in enumerate(idx):
        cand = np.argwhere(lab["pos"][n])
        if len(cand) == 0:
            continue
        pick = cand[rng.permutation(len(cand))[:masks_per_pair]]
        for i, j in pick:
            bs.append(r)
            is_.append(int(i))
            js.append(int(j))
    if bs:
        b, i, j = torch.tensor(bs), torch.tensor(is_), torch.tensor(js)
        logits = net.masks(corr, feats, b, i, j)
        S = cfg.mask_size
        win = torch.stack([cache["xmask"][idx[bb], 8 * ii:8 * ii + 128, 8 * jj:8 * jj + 128]
                           for bb, ii, jj in zip(bs, is_, js)]).float()[:, None]
        win = F.interpolate(win, size=(S, S), mode="area")[:, 0]
        out["mask"] = F.binary_cross_entropy_with_logits(logits, (win > 0.5).float())
    else:
        out["mask"] = corr.new_zeros(())
    out["total"] = (LAMBDA_MASK * out["mask"] + LAMBDA_SCORE * out["score"]
                    + LAMBDA_BOX * out.get("box", corr.new_zeros(())))
    return out


def lr_at(step: int, iters: int, base: tuple[float, float, float]) -> float:
    """Seed §3.3 schedule: linear warm-up lr0 -> lr1 over the first quarter, then logarithmic
    (geometric) decay lr1 -> lr2."""
    lr0, lr1, lr2 = base
    warm = max(1, iters // 4)
    if step < warm:
        return lr0 + (lr1 - lr0) * step / warm
    frac = (step - warm) / max(1, iters - warm)
    return float(math.exp(math.log(lr1) + (math.log(lr2) - math.log(lr1)) * frac))


@torch.no_grad()
def held_out_pair_iou(net: SiamMaskNet, cache: dict, lab: dict | None = None) -> dict[str, float]:
    """On cached (held-out) pairs: IoU, inside the search crop, of the mask of the best-scoring
    RoW with the ground truth, and how often that RoW is a positive one."""
    net.eval()
    ious, hits = [], []
    for n in range(len(cache["gt"])):
        if np.isnan(cache["gt"][n, 0]):
            continue
        t = torch.tensor([n])
        feats = {16: cache["x16"][t].float(), 8: cache["x8"][t].float(),
                 4: cache["x4"][t].float()}
        corr = net.correlate(net.template(cache["z16"][t].float()), feats[16])
        score, _ = net.heads(corr)
        s = score[0].amax(0)
        i, j = divmod(int(torch.argmax(s)), s.shape[1])
        if lab is not None:
            hits.append(bool(lab["pos"][n, i, j]))
        logit = net.masks(corr, feats, torch.tensor([0]), torch.tensor([i]), torch.tensor([j]))
        prob = torch.sigmoid(logit)[None]
        prob = F.interpolate(prob, size=(128, 128), mode="bilinear", align_corners=False)[0, 0]
        pred = torch.zeros(256, 256, dtype=torch.bool)
        pred[8 * i:8 * i + 128, 8 * j:8 * j + 128] = prob > 0.5
        g = cache["xmask"][n]
        ious.append(float((pred & g).sum()) / max(float((pred | g).sum()), 1.0))
    out = {"crop_mIoU": float(np.mean(ious)) if ious else float("nan"), "pairs": len(ious)}
    if hits:
        out["best_row_positive"] = float(np.mean(hits))
    return out


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="segtrack train siammask",
        description="Train the SiamMask heads (three-branch siammask or two-branch siammask-2b) "
                    "on frame pairs from a DAVIS-style data set and synthetic videos; the "
                    "backbone stays frozen.")
    add_common_args(p)
    p.add_argument("--variant", choices=["2b", "3b"], default="3b",
                   help="3b: three branches, siammask (default); 2b: two, siammask-2b")
    p.add_argument("--no-refine", action="store_true",
                   help="a plain mask head (two 1x1 convolutions) instead of the refinement module")
    p.add_argument("--pairs", type=int, default=2000, help="DAVIS frame pairs in the cache")
    p.add_argument("--synth-pairs", type=int, default=600, help="synthetic pairs in the cache")
    p.add_argument("--synth-videos", type=int, default=30,
                   help="synthetic videos the synthetic pairs come from")
    p.add_argument("--held-pairs", type=int, default=150, help="held-out pairs to score")
    p.add_argument("--max-gap", type=int, default=25,
                   help="most frames between the two frames of a pair")
    p.add_argument("--neg-frac", type=float, default=0.15,
                   help="share of pairs whose search frame comes from another video")
    p.add_argument("--search-shift", type=float, default=48.0,
                   help="random shift of the search crop in pixels")
    p.add_argument("--batch", type=int, default=16, help="pairs per iteration")
    p.add_argument("--masks-per-pair", type=int, default=4,
                   help="most positive windows of a pair the mask loss is computed on")
    p.add_argument("--optim", choices=["adam", "sgd"], default="adam", help="optimiser")
    p.add_argument("--lr-mult", type=float, default=0.2,
                   help="with adam: factor on the paper's learning rates")
    add_static_args(p, "pairs", 3000, 0.5)
    p.add_argument("--box-pairs", type=int, default=0,
                   help="also pairs from long box-tracking clips of the training photographs "
                        "(a target among look-alikes, small, fast, hidden; needs --static), "
                        "drawn with the photograph pairs")
    p.add_argument("--threads", type=int, default=1, help="torch threads for this run")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    """``segtrack train siammask``."""
    args = parse_args(argv)
    data = check_data_root(args.data)
    rng, out, _ = start_run(args.seed, args.out, args.threads)
    from segtrack.eval.datasets import load_davis

    all_names = [s.name for s in load_davis(data)]
    train_names, held = split_sequences(all_names, args.fold, args.folds)
    method = "siammask" if args.variant == "3b" else "siammask-2b"
    backbone = build_siammask_backbone()
    t0 = time.time()
    key_items = [str(data.resolve()), train_names, args.pairs, args.synth_pairs,
                 args.synth_videos, args.search_shift, args.max_gap, args.neg_frac, CACHE_SEED]
    maker = None
    photos = check_static_args(args, "pairs")
    if photos:
        from segtrack.data.static import ClipParams, StaticClipMaker

        # a pair spans up to --max-gap video frames: larger steps than the clips of RTS
        sp = ClipParams(frames=2, motion=0.3, scale_step=0.12,
                        p_distractor=args.static_distractors)
        maker = StaticClipMaker(photos, sp)
        key_items += [[str(q.image) for q in photos], args.static_pairs,
                      dataclasses.asdict(sp), STATIC_SEED]
    if args.box_pairs < 0 or (args.box_pairs and not args.static):
        raise InputError(f"--box-pairs {args.box_pairs}: needs --static and a count >= 0")
    if args.box_pairs:
        from segtrack.data.box_clips import BoxParams

        key_items += [args.box_pairs, BOX_TRAIN_SEED, BOX_TRAIN_FRAMES, BOX_PAIRS_PER_CLIP,
                      dataclasses.asdict(BoxParams(frame_range=BOX_TRAIN_FRAMES))]
    key = hashlib.sha256(json.dumps(key_items, default=str).encode()).hexdigest()[:16]
    n_video = args.pairs + (args.synth_pairs if args.synth_videos else 0)

    def build() -> dict:
        src = _Source(data, train_names, args.synth_videos)
        return build_pair_cache(src, args.pairs, args.synth_pairs if args.synth_videos else 0,
                                args.search_shift, args.max_gap, args.neg_frac, backbone,
                                args.quiet, static=maker, n_static=args.static_pairs,
                                box_pairs=box_clip_pairs(args.static, data, train_names,
                                                         args.max_gap)
                                if args.box_pairs else None, n_box=args.box_pairs)

    cache = load_or_build(args.cache, key, build)
    t_cache = time.time() - t0
    cfg = SiamMaskConfig(variant=args.variant, refine=not args.no_refine)
    torch.manual_seed(args.seed)
    net = SiamMaskNet(cfg)
    lab = pair_labels(cfg, cache["gt"])
    params = [q for q in net.parameters() if q.requires_grad]
    base = (1e-3, 5e-3, 5e-4)
    if args.optim == "adam":
        base = tuple(v * args.lr_mult for v in base)
        opt = torch.optim.Adam(params, lr=base[0])
    else:
        opt = torch.optim.SGD(params, lr=base[0], momentum=0.9, weight_decay=1e-4)
    ck = Checkpointer(out, args.checkpoint_every)
    step = 0
    history: list[dict] = []
    if args.resume:
        st = ck.resume(rng)
        net.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        step = int(st["step"])
        history = st.get("history", [])

    def state() -> dict:
        return {"model": net.state_dict(), "optimizer": opt.state_dict(), "history": history}

    from tqdm import tqdm

    N = len(cache["gt"])
    net.train()
    bar = tqdm(total=args.iters, initial=step, desc=f"train {method}", disable=args.quiet)
    t_train = time.time()
    log = LossLog(bar, args.quiet, history)
    while step < args.iters:
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.iters, base)
        if maker is None:
            idx = rng.choice(N, size=args.batch, replace=False)
        else:  # photograph pairs only in the static stage, then mixed in at --static-ratio
            video, static = mixed_batch(rng, n_video, N - n_video, args.batch, step, args)
            idx = np.concatenate([n_video + static, video])
        losses = batch_loss(net, cache, lab, idx, rng, args.masks_per_pair)
        opt.zero_grad(set_to_none=True)
        if torch.isfinite(losses["total"]):
            losses["total"].backward()
            torch.nn.utils.clip_grad_norm_(params, 10.0)
            opt.step()
        step += 1
        log.update(step, losses)
        ck.maybe_save(step, state, rng)
    bar.close()
    ck.save(step, state(), rng)
    train_minutes = (time.time() - t_train) / 60
    net.eval()
    metrics: dict = {"train_pairs": held_out_pair_iou(net, {k: v[:300] for k, v in cache.items()
                                                             if k != "key"}, lab)}
    if held and args.held_pairs:
        src_h = _Source(data, held, 0)
        hc = build_pair_cache(src_h, args.held_pairs, 0, args.search_shift, args.max_gap, 0.0,
                              backbone, True, seed=CACHE_SEED + 1)
        metrics["held_out_pairs"] = held_out_pair_iou(net, hc, pair_labels(cfg, hc["gt"]))
    weights = save_siammask(net, out / f"{method}.pt", half=True, method=method)
    cmd = "segtrack train siammask " + " ".join(shlex.quote(a) for a in argv)
    info = {
        "method": method, "command": cmd, "data": str(data),
        "synthetic": f"{args.synth_videos} videos make_video({CACHE_SEED}+v, 40 frames, 320x240)",
        "train_sequences": train_names, "held_out": held, "fold": args.fold,
        "folds": args.folds, "seed": args.seed, "iterations": step, "args": vars(args),
        "cache_minutes": round(t_cache / 60, 2), "train_minutes": round(train_minutes, 2),
        "final_losses": history[-1] if history else {}, "metrics": metrics, "argv": sys.argv,
    }
    if maker is not None:
        info["static"] = {"dirs": args.static, "photos": len(maker),
                          "pairs": N - n_video - args.box_pairs, "box_pairs": args.box_pairs}
    write_manifest(out / f"{method}.manifest.json", [weights], **info)
    print(json.dumps({"iterations": step, "train_minutes": round(train_minutes, 2),
                      "final_losses": info["final_losses"], "metrics": metrics}), flush=True)
    return 0
