"""``segtrack train convlstm``: offline training of the pixel-wise ConvLSTM tracker (seed 003,
§3.3 and §5.1).

Data (§3.3): for every training video, clips of ``clip_len + 1`` frames; clip frame 0 is the
initial frame (ROI around its mask, twice the longer box side, clipped to [56, 672]); frame t's
ROI is placed from the object mask at frame t - 5 (stride-scaled), then perturbed in scale
(x U[0.9, 1.1]) and position (U[-10, 10] px). Crops go through the frozen backbone once and
their stride-16 features are cached (fp16, RAM). Step 4: in every training clip one random frame
is replaced by a frame of another video, with an empty label. Loss Eq. 2: pixel-wise cross
entropy plus ``lambda * min(beta, mean_t TV(z_t))`` with lambda = 1e-4, beta = 1000.

Alternating optimisation (§5.1): (1) local models A and B on the two halves of the training
videos; (2) the global model on ground-truth map sequences, Eq. 4 (weighted l2 between the
transformed anchor and the next map, plus ``lambda_s ||theta_t - theta_{t-1}||``), loss from
frame i = 5, input maps dilated with a shrinking kernel; (3) Algorithm 1 with model A on half 2
and model B on half 1 gives predicted map sequences; (4) the global model is updated on inputs
``{Z_0, Zhat_1, ...}``; (5) the final local model (initialised from A) is trained on all videos
with the t-5 clips plus clips whose ROIs come from the updated global model. The per-frame
baseline (:class:`~segtrack.models.convlstm.PerFrameModel`) is trained on single cached frames.
DAVIS-2016 train (minus the held-out fold) plus synthetic videos
(:mod:`segtrack.data.synthetic`).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from segtrack.errors import InputError
from segtrack.models import convlstm as M
from segtrack.training.common import (
    Checkpointer,
    add_common_args,
    add_static_args,
    check_data_root,
    check_static_args,
    seed_everything,
    split_sequences,
    write_manifest,
)

LAMBDA_TV, BETA_TV = 1e-4, 1000.0
LOSS_FROM = 5  # Eq. 4: global loss from frame i = 5
#: training stages in order (§5.1 steps 1-5, then the per-frame baseline)
STAGES = ("local", "global", "crossinfer", "global2", "final", "perframe")


# ---------------------------------------------------------------------------------------------
# videos


@dataclass
class Video:
    name: str
    n: int
    hw: tuple[int, int]
    reader: object = field(repr=False)  # (i) -> (rgb uint8, bool mask)

    def load(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        ims, ms = [], []
        for i in range(self.n):
            im, m = self.reader(i)
            ims.append(im)
            ms.append(m)
        return ims, ms


def davis_videos(root: str, names: list[str]) -> list[Video]:
    from segtrack.eval.datasets import load_davis

    seqs = {s.name: s for s in load_davis(root)}
    out = []
    for n in names:
        s = seqs[n]
        im0 = s.read_image(0)

        def reader(i: int, s=s) -> tuple[np.ndarray, np.ndarray]:
            lab = s.read_labels(i)
            img = s.read_image(i)
            return img, (lab > 0) if lab is not None else np.zeros(img.shape[:2], bool)

        out.append(Video(n, len(s), im0.shape[:2], reader))
    return out


def synthetic_videos(count: int, seed: int, frames: int = 48) -> list[Video]:
    from segtrack.data.synthetic import make_video

    out = []
    for k in range(count):
        v = make_video(10_000 + seed * 1000 + k, num_frames=frames, num_objects=1 + k % 2)

        def reader(i: int, v=v) -> tuple[np.ndarray, np.ndarray]:
            img, lab = v.frame(i)
            return img, lab == 1

        out.append(Video(f"synthetic-{k}", len(v), (v.config.height, v.config.width), reader))
    return out


def static_videos(photos: list, count: int, frames: int, distractors: float) -> list[Video]:
    """``count`` videos of ``frames`` frames synthesised from photographs
    (:mod:`segtrack.data.static`; smaller per-frame steps than the 3-frame clips of RTS, as
    these are consecutive frames); each is made when first read and one is kept at a time."""
    from segtrack.data.static import ClipParams, StaticClipMaker
    from segtrack.training.common import STATIC_SEED

    params = ClipParams(frames=frames, motion=0.06, scale_step=0.03, rotate_step=3.0,
                        tps_step=0.01, bg_motion=0.01, p_distractor=distractors)
    maker = StaticClipMaker(photos, params)
    last: dict = {}

    def make(k: int):
        if last.get("k") != k:
            last.clear()
            last.update(k=k, clip=maker.numbered(k, STATIC_SEED))
        return last["clip"]

    out = []
    for k in range(count):
        def reader(i: int, k=k) -> tuple[np.ndarray, np.ndarray]:
            c = make(k)
            return c.frames[i], c.masks[i]

        out.append(Video(f"static-{k}", frames, params.canvas, reader))
    return out


# ---------------------------------------------------------------------------------------------
# step 1-2 of §3.3: ROI sequences from t - 5 locations with perturbation


def perturb(roi, rng: np.random.Generator, scale=(0.9, 1.1), shift: float = 10.0):
    cx, cy, side = roi
    return (cx + rng.uniform(-shift, shift), cy + rng.uniform(-shift, shift),
            side * rng.uniform(*scale))


def clip_rois(masks: list[np.ndarray], idx: list[int], stride: int, rng: np.random.Generator,
              hw: tuple[int, int], lag: int = 5, perturb_rois: bool = True) -> list[tuple]:
    """ROIs of a clip: frame 0 around its own mask; frame t from the mask at t - lag."""
    rois = []
    r0 = M.roi_from_mask(masks[idx[0]])
    assert r0 is not None
    prev = r0
    rois.append(M.clamp_roi(r0, hw))
    for t in idx[1:]:
        r = M.roi_from_mask(masks[max(t - lag * stride, 0)])
        prev = r if r is not None else prev
        rois.append(M.clamp_roi(perturb(prev, rng) if perturb_rois else prev, hw))
    return rois


@dataclass
class ClipCache:
    feats: torch.Tensor  # (N, T+1, C, s, s) fp16
    mfeat0: torch.Tensor  # (N, C, s, s) fp16
    labels: torch.Tensor  # (N, T+1, r, r) uint8
    video: np.ndarray  # (N,) video id

    def __len__(self) -> int:
        return int(self.feats.shape[0])

    @staticmethod
    def cat(a: ClipCache, b: ClipCache) -> ClipCache:
        return ClipCache(torch.cat([a.feats, b.feats]), torch.cat([a.mfeat0, b.mfeat0]),
                         torch.cat([a.labels, b.labels]), np.concatenate([a.video, b.video]))


def build_clips(ims, masks, vid: int, clip_specs, cfg: M.ConvLSTMConfig,
                fx: M.FeatureExtractor, mask_dilation: int = 5, flip_rng=None):
    """clip_specs: list of (frame indices, rois) -> lists of tensors for a ClipCache.
    With ``flip_rng``, half of the clips are mirrored left-right (augmentation)."""
    feats, mfeats, labels = [], [], []
    for idx, rois in clip_specs:
        crops = np.stack([M.crop_roi(ims[i], r, cfg.roi) for i, r in zip(idx, rois)])
        labs = np.stack([M.crop_roi(masks[i].astype(np.float32), r, cfg.roi) > 0.5
                         for i, r in zip(idx, rois)])
        r0 = rois[0]
        dil = M.dilate(masks[idx[0]], max(0, round(mask_dilation * r0[2] / cfg.roi)))
        dcrop = M.crop_roi(dil.astype(np.float32), r0, cfg.roi)
        if flip_rng is not None and flip_rng.random() < 0.5:
            crops, labs, dcrop = crops[:, :, ::-1], labs[:, :, ::-1], dcrop[:, ::-1]
        x = M.to_tensor_rgb(crops)
        f = fx(x)
        md = torch.from_numpy(np.ascontiguousarray(dcrop))[None, None]
        mf = fx(x[:1], md)
        feats.append(f.half())
        mfeats.append(mf[0].half())
        labels.append(torch.from_numpy(labs.astype(np.uint8)))
    return feats, mfeats, labels, [vid] * len(clip_specs)


def sample_clip_indices(n: int, length: int, rng: np.random.Generator) -> tuple[list[int], int]:
    stride = int(rng.choice([1, 2])) if n > 2 * length else 1
    span = (length - 1) * stride
    start = int(rng.integers(0, max(1, n - span)))
    return [min(start + j * stride, n - 1) for j in range(length)], stride


# ---------------------------------------------------------------------------------------------
# step 4 of §3.3 and Eq. 2


def insert_noisy_frames(feats: torch.Tensor, labels: torch.Tensor, video: np.ndarray,
                        pool: ClipCache, rng: np.random.Generator, count: int = 1
                        ) -> tuple[torch.Tensor, torch.Tensor, list[list[int]]]:
    """Replace ``count`` random frames (t >= 1) of each clip by a frame of a clip of another
    video; their labels become empty. Returns copies and the replaced positions per clip."""
    feats, labels = feats.clone(), labels.clone()
    B, T1 = feats.shape[:2]
    where: list[list[int]] = []
    for b in range(B):
        others = np.nonzero(pool.video != video[b])[0]
        pos: list[int] = []
        if len(others) and T1 > 1:
            for t in rng.choice(np.arange(1, T1), size=min(count, T1 - 1), replace=False):
                j = int(rng.choice(others))
                feats[b, t] = pool.feats[j, int(rng.integers(0, pool.feats.shape[1]))]
                labels[b, t] = 0
                pos.append(int(t))
        where.append(sorted(pos))
    return feats, labels, where


def tv_loss(p: torch.Tensor) -> torch.Tensor:
    """V of Eq. 2 per map: sum of absolute vertical and horizontal differences. (..., H, W)."""
    return ((p[..., 1:, :] - p[..., :-1, :]).abs().sum((-2, -1))
            + (p[..., :, 1:] - p[..., :, :-1]).abs().sum((-2, -1)))


def local_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. 2 for (B, T, H, W) logits: sum-over-pixels cross entropy (mean over clips and
    frames) + lambda * min(beta, mean_t V(sigmoid))."""
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none").sum((-2, -1))
    tv = tv_loss(torch.sigmoid(logits)).mean(1)
    return ce.mean() + LAMBDA_TV * torch.clamp(tv, max=BETA_TV).mean()


def train_local(model, cache: ClipCache, ids: np.ndarray, iters: int, args, rng, log,
                tag: str, ckpt=None, start: int = 0, opt=None):
    model.train()
    opt = opt or torch.optim.Adam(model.parameters(), lr=args.lr)
    t0 = time.time()
    for it in range(start, iters):
        b = rng.choice(ids, size=args.batch)
        feats = cache.feats[b].float()
        labels = cache.labels[b]
        feats, labels, _ = insert_noisy_frames(feats, labels, cache.video[b], cache, rng,
                                               args.noisy_frames)
        logits = model(feats[:, 0], cache.mfeat0[b].float(), feats[:, 1:])
        loss = local_loss(logits, labels[:, 1:].float())
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        if it % 50 == 0 or it == iters - 1:
            log(f"[{tag}] it {it}/{iters} loss {loss.item():.1f} ({time.time() - t0:.0f}s)")
        if ckpt is not None:
            ckpt(it)
    model.eval()
    return model


def train_perframe(model, cache: ClipCache, iters: int, args, rng, log):
    """Per-frame baseline on single cached ROI frames, Eq. 2 loss.

    Its own learning rate (``--perframe-lr``, 3e-4) and gradient clipping: at the local
    model's 1e-3 it stays at the constant prior (probabilities never above 0.5; measured on
    8 DAVIS videos, 300-1500 iterations: IoU 0 at 1e-3, 0.8 on training clips at 3e-4)."""
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=args.perframe_lr)
    N, T1 = cache.feats.shape[:2]
    for it in range(iters):
        i = rng.integers(0, N, size=4 * args.batch)
        t = rng.integers(0, T1, size=4 * args.batch)
        logits = model(cache.feats[i, t].float())[:, 0]
        ce = F.binary_cross_entropy_with_logits(logits, cache.labels[i, t].float(),
                                                reduction="none").sum((-2, -1)).mean()
        loss = ce + LAMBDA_TV * torch.clamp(tv_loss(torch.sigmoid(logits)), max=BETA_TV).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        if it % 100 == 0 or it == iters - 1:
            log(f"[perframe] it {it}/{iters} loss {loss.item():.1f}")
    model.eval()
    return model


# ---------------------------------------------------------------------------------------------
# global model, Eq. 4


def global_loss(theta: torch.Tensor, target: torch.Tensor, gamma: torch.Tensor,
                lam: float = 0.1, sharpness: float | None = None, start: int = 0) -> torch.Tensor:
    """Eq. 4 for theta (B, T, 3) vs target maps (B, T, S, S) from index ``start`` on."""
    B, T = theta.shape[:2]
    S = target.shape[-1]
    th = theta[:, start:].reshape(-1, 3)
    tg = target[:, start:].reshape(-1, S, S)
    g = gamma.repeat_interleave(T - start)
    za = M.render_anchor(th, g, S, sharpness)
    fg = (tg > 0.5).float()
    nf = fg.sum((1, 2), keepdim=True)
    nb = S * S - nf
    w = torch.where(fg > 0, 0.5 / nf.clamp(min=1), 0.5 / nb.clamp(min=1))
    l2 = (w * (za - fg) ** 2).sum((1, 2)).mean()
    smooth = (theta[:, start + 1:] - theta[:, start:-1]).norm(dim=-1).mean() if T - start > 1 \
        else theta.sum() * 0
    return l2 + lam * smooth


def make_global_batch(maps: list[torch.Tensor], gammas: list[float], ids, rng, length: int,
                      warmup: int, dil: int, pred: list[torch.Tensor] | None = None):
    xs, ys, gs = [], [], []
    for v in ids:
        z = maps[v]
        n = z.shape[0]
        stride = int(rng.choice([1, 2])) if n > 2 * length else 1
        span = length * stride
        s = int(rng.integers(0, max(1, n - span)))
        idx = [min(s + j * stride, n - 1) for j in range(length + 1)]
        src = pred[v] if pred is not None else z
        inp = torch.stack([z[idx[0]]] + [src[i] for i in idx[1:-1]])
        tgt = torch.stack([z[i] for i in idx[1:]])
        inp = torch.cat([z[idx[0]][None].expand(warmup, -1, -1), inp])
        tgt = torch.cat([z[idx[0]][None].expand(warmup, -1, -1), tgt])
        if rng.random() < 0.5:
            inp, tgt = inp.flip(-1), tgt.flip(-1)
        xs.append(inp)
        ys.append(tgt)
        gs.append(gammas[v])
    x = torch.stack(xs).float()
    if dil > 1:
        x = F.max_pool2d(x, dil, 1, dil // 2)
    return x, torch.stack(ys).float(), torch.tensor(gs, dtype=torch.float32)


def train_global(model, maps, gammas, ids, iters: int, args, rng, log, tag: str,
                 pred=None, dil_schedule=(9, 5, 3, 1)):
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    t0 = time.time()
    for it in range(iters):
        stage = min(len(dil_schedule) - 1, it * len(dil_schedule) // max(1, iters))
        dil = dil_schedule[stage]
        sharp = [6.0, 12.0, 24.0, None][min(stage, 3)]
        use_pred = pred is not None and rng.random() < 0.7
        b = rng.choice(ids, size=args.batch)
        x, y, g = make_global_batch(maps, gammas, b, rng, args.global_len, args.warmup, dil,
                                    pred if use_pred else None)
        theta = model(x, g)
        loss = global_loss(theta, y, g, args.smooth, sharp, start=args.warmup + LOSS_FROM - 5)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        if it % 50 == 0 or it == iters - 1:
            log(f"[{tag}] it {it}/{iters} dil {dil} loss {loss.item():.4f} "
                f"({time.time() - t0:.0f}s)")
    model.eval()
    return model


# ---------------------------------------------------------------------------------------------
# Algorithm 1 on training videos (step 3)


def run_algorithm1(ims, masks, cfg, local, glob, fx, beta: float, warmup: int,
                   max_frames: int):
    from segtrack.trackers.convlstm import ConvLSTMTracker

    tr = ConvLSTMTracker(mode="2stage", beta=beta, warmup=warmup)
    tr.set_models(cfg, local, glob, None, fx)
    n = min(len(ims), max_frames)
    tr.init(ims[0], mask=masks[0])
    pred = [M.frame_map(masks[0], cfg.map_size)]
    rois = [tr.roi]
    ious = []
    for i in range(1, n):
        p = tr.track(ims[i])
        pred.append(M.frame_map(p.mask, cfg.map_size) if p.mask.any() else pred[-1])
        rois.append(p.extra["roi"])
        inter = np.logical_and(p.mask, masks[i]).sum()
        uni = np.logical_or(p.mask, masks[i]).sum()
        ious.append(inter / uni if uni else 1.0)
    return np.stack(pred), rois, float(np.mean(ious)) if ious else 1.0


# ---------------------------------------------------------------------------------------------
# main


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="segtrack train convlstm",
        description="Train the pixel-wise ConvLSTM tracker (local and global models: convlstm "
                    "and convlstm-1stage) and its per-frame baseline (perframe) on a DAVIS-style "
                    "data set plus synthetic videos; the backbone stays frozen.")
    add_common_args(p)
    p.add_argument("--synthetic", type=int, default=16, help="synthetic training videos")
    p.add_argument("--clip-len", type=int, default=10, help="frames after the initial one")
    p.add_argument("--clips-per-video", type=int, default=24, help="clips per DAVIS video")
    p.add_argument("--synthetic-clips", type=int, default=12, help="clips per synthetic video")
    p.add_argument("--local-iters", type=int, default=300,
                   help="iterations of each of the two first local models")
    p.add_argument("--global-iters", type=int, default=400,
                   help="iterations of the global (attention) model")
    p.add_argument("--global-update-iters", type=int, default=200,
                   help="iterations of the global model's update on predicted maps")
    p.add_argument("--perframe-iters", type=int, default=3000,
                   help="iterations of the per-frame baseline")
    p.add_argument("--perframe-lr", type=float, default=3e-4,
                   help="learning rate of the per-frame baseline")
    p.add_argument("--redo", default="", metavar="STAGES",
                   help="with --resume: comma-separated stages to train again from scratch "
                        "(local, global, crossinfer, global2, final, perframe)")
    p.add_argument("--global-len", type=int, default=20, help="global training sequence length")
    p.add_argument("--warmup", type=int, default=4,
                   help="frames the global model sees before its output counts")
    p.add_argument("--smooth", type=float, default=0.1,
                   help="weight of the smoothness term of the global model's loss")
    p.add_argument("--beta", type=float, default=0.5,
                   help="smoothing of the attention window from frame to frame (0-1)")
    p.add_argument("--noisy-frames", type=int, default=1,
                   help="frames per clip replaced by a frame of another video")
    p.add_argument("--batch", type=int, default=4, help="clips per iteration")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate")
    p.add_argument("--roi", type=int, default=128,
                   help="side in pixels of the region the local model sees")
    p.add_argument("--map-size", type=int, default=64, help="side of the global model's input map")
    p.add_argument("--threads", type=int, default=1, help="torch threads for this run")
    p.add_argument("--max-frames", type=int, default=80,
                   help="most frames per video when predicting the maps the global model is "
                        "updated on")
    p.add_argument("--eval", action="store_true", help="score held-out sequences at the end")
    add_static_args(p, "videos", 200, None)
    p.add_argument("--static-frames", type=int, default=24, help="frames per photograph video")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    redo = [x.strip() for x in args.redo.split(",") if x.strip()]
    for stage in redo:
        if stage not in STAGES:
            raise InputError(f"--redo {stage!r}: unknown stage (use {', '.join(STAGES)})")
    if redo and not args.resume:
        raise InputError("--redo needs --resume (it retrains stages of a saved checkpoint)")
    torch.set_num_threads(max(1, args.threads))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    logf = open(out / "train.log", "a")

    def log(msg: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {msg}"
        print(line, flush=True)
        logf.write(line + "\n")
        logf.flush()

    t_start = time.time()
    command = "segtrack train convlstm " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    log(command)
    root = check_data_root(args.data)
    photos = check_static_args(args, "videos")
    from segtrack.eval.datasets import load_davis

    names = [s.name for s in load_davis(root)]
    train_names, held = split_sequences(names, args.fold, args.folds)
    rng = seed_everything(args.seed)
    cfg = M.ConvLSTMConfig(roi=args.roi, map_size=args.map_size)
    fx = M.FeatureExtractor(cfg.backbone)
    videos = davis_videos(str(root), train_names) + synthetic_videos(args.synthetic, args.seed)
    if photos:
        videos += static_videos(photos, args.static_videos, args.static_frames,
                                args.static_distractors)
    log(f"train videos: {len(train_names)} DAVIS + {args.synthetic} synthetic"
        f" + {args.static_videos if photos else 0} from photographs; held out: {held}")
    ckpt = Checkpointer(out, args.checkpoint_every)
    saved = ckpt.load(rng) if args.resume else None
    done = set(saved["done"]) if saved else set()

    # ---- caches (deterministic given the seed; rebuilt on resume) ----
    crng = np.random.default_rng(args.seed + 1)
    feats, mfeats, labels, vids = [], [], [], []
    maps, gammas = [], []
    t0 = time.time()
    for v_id, v in enumerate(videos):
        ims, ms = v.load()
        valid = [i for i in range(v.n) if ms[i].any()]
        specs = []
        n_clips = args.clips_per_video if v_id < len(train_names) else args.synthetic_clips
        for _ in range(n_clips):
            idx, stride = sample_clip_indices(v.n, args.clip_len + 1, crng)
            if not ms[idx[0]].any():
                idx[0] = valid[int(crng.integers(len(valid)))]
                idx = [idx[0]] + [max(i, idx[0]) for i in idx[1:]]
            specs.append((idx, clip_rois(ms, idx, stride, crng, v.hw)))
        f, mf, lb, vv = build_clips(ims, ms, v_id, specs, cfg, fx, flip_rng=crng)
        feats += f
        mfeats += mf
        labels += lb
        vids += vv
        maps.append(torch.from_numpy(np.stack([M.frame_map(m, cfg.map_size) for m in ms])).half())
        gammas.append(v.hw[1] / v.hw[0])
        log(f"cache {v_id + 1}/{len(videos)} {v.name} ({time.time() - t0:.0f}s)")
    cache = ClipCache(torch.stack(feats), torch.stack(mfeats), torch.stack(labels),
                      np.array(vids))
    del feats, mfeats, labels
    half1 = np.arange(0, len(videos), 2)
    half2 = np.arange(1, len(videos), 2)
    ids1 = np.nonzero(np.isin(cache.video, half1))[0]
    ids2 = np.nonzero(np.isin(cache.video, half2))[0]

    local_a, local_b = M.LocalModel(cfg), M.LocalModel(cfg)
    glob, final, perframe = M.GlobalModel(cfg), M.LocalModel(cfg), M.PerFrameModel(cfg)
    mods = {"local_a": local_a, "local_b": local_b, "global": glob, "final": final,
            "perframe": perframe}
    extra: dict = saved.get("extra", {}) if saved else {}
    if saved:
        for k, m in mods.items():
            m.load_state_dict(saved["models"][k])
        log(f"resumed after stages {sorted(done)}")
    for stage in redo:
        done.discard(stage)
        if stage == "perframe":  # fresh, seeded initialisation
            torch.manual_seed(args.seed + 3)
            mods["perframe"].load_state_dict(M.PerFrameModel(cfg).state_dict())
        log(f"stage {stage} will be trained again")

    def checkpoint(stage: str) -> None:
        done.add(stage)
        ckpt.save(0, {"done": sorted(done), "models": {k: m.state_dict() for k, m in mods.items()},
                      "extra": extra}, rng)
        log(f"stage {stage} done ({time.time() - t_start:.0f}s)")

    # step 1: local models A, B on the two halves
    if "local" not in done:
        train_local(local_a, cache, ids1, args.local_iters, args, rng, log, "local-A")
        train_local(local_b, cache, ids2, args.local_iters, args, rng, log, "local-B")
        checkpoint("local")
    # step 2: global model on ground-truth maps
    if "global" not in done:
        train_global(glob, maps, gammas, np.arange(len(videos)), args.global_iters, args, rng,
                     log, "global")
        checkpoint("global")
    # step 3: Algorithm 1 with A on half 2 and B on half 1
    if "crossinfer" not in done:
        preds, rois, ious = {}, {}, {}
        for half, model in ((half2, local_a), (half1, local_b)):
            for v_id in half:
                ims, ms = videos[v_id].load()
                pm, rr, miou = run_algorithm1(ims, ms, cfg, model, glob, fx, args.beta,
                                              args.warmup, args.max_frames)
                preds[int(v_id)] = torch.from_numpy(pm).half()
                rois[int(v_id)] = rr
                ious[videos[v_id].name] = miou
                log(f"algorithm 1 on {videos[v_id].name}: mean IoU {miou:.3f}")
        extra["preds"], extra["cross_iou"] = preds, ious
        checkpoint("crossinfer")
    preds = extra["preds"]
    pred_list = [torch.cat([preds[v], maps[v][preds[v].shape[0]:]]) for v in range(len(videos))]
    # step 4: update the global model on predicted-map inputs
    if "global2" not in done:
        train_global(glob, maps, gammas, np.arange(len(videos)), args.global_update_iters, args,
                     rng, log, "global-update", pred=pred_list, dil_schedule=(1,))
        checkpoint("global2")
    # step 5: final local model on all videos: t-5 clips + ROIs of the updated global model
    if "final" not in done:
        grng = np.random.default_rng(args.seed + 2)
        g_f, g_m, g_l, g_v = [], [], [], []
        for v_id, v in enumerate(videos):
            ims, ms = v.load()
            with torch.no_grad():
                n = pred_list[v_id].shape[0]
                z = pred_list[v_id].float()
                x = torch.cat([z[:1].expand(args.warmup, -1, -1), z])[None]
                th = glob(x, torch.tensor([gammas[v_id]]))[0, args.warmup:].numpy()
            # theta after map t-1 places frame t's ROI; smooth as Algorithm 1
            thetas = [M.roi_to_theta(M.clamp_roi(M.roi_from_mask(ms[0]) or (0, 0, 56), v.hw),
                                     v.hw)]
            for t in range(1, n):
                thetas.append(args.beta * th[t - 1] + (1 - args.beta) * thetas[-1])
            specs = []
            nc = args.clips_per_video if v_id < len(train_names) else args.synthetic_clips
            for _ in range(max(1, nc // 3)):
                idx, _s = sample_clip_indices(n, args.clip_len + 1, grng)
                if not ms[idx[0]].any():
                    continue
                r0 = M.clamp_roi(M.roi_from_mask(ms[idx[0]]), v.hw)
                rr = [r0] + [M.clamp_roi(M.theta_to_roi(thetas[i], v.hw), v.hw) for i in idx[1:]]
                specs.append((idx, rr))
            f, mf, lb, vv = build_clips(ims, ms, v_id, specs, cfg, fx)
            g_f += f
            g_m += mf
            g_l += lb
            g_v += vv
        gcache = ClipCache(torch.stack(g_f), torch.stack(g_m), torch.stack(g_l), np.array(g_v))
        full = ClipCache.cat(cache, gcache)
        log(f"global-ROI clips: {len(gcache)}")
        final.load_state_dict(local_a.state_dict())
        train_local(final, full, np.arange(len(full)), args.iters, args, rng, log, "final")
        checkpoint("final")
    if "perframe" not in done:
        train_perframe(perframe, cache, args.perframe_iters, args, rng, log)
        checkpoint("perframe")

    wpath = out / "convlstm.pt"
    metrics: dict = {"algorithm1_cross_mean_iou": extra.get("cross_iou")}
    if args.eval and held:
        ev = evaluate_held_out(str(root), held, cfg, final, glob, perframe, fx, args)
        metrics["held_out_mean_J"] = ev
        log(f"held-out mean J: {json.dumps(ev)}")
    M.save_weights(wpath, cfg, final, glob, perframe, fold=args.fold, seed=args.seed)
    write_manifest(
        out / "convlstm.manifest.json", [wpath],
        method="convlstm", command=command, data={"davis2016_train": train_names,
                                                  "synthetic_videos": args.synthetic,
                                                  "static": args.static,
                                                  "static_videos": args.static_videos
                                                  if photos else 0},
        held_out=held, fold=args.fold, folds=args.folds, seed=args.seed,
        config=asdict(cfg), args=vars(args), metrics=metrics,
        train_seconds=round(time.time() - t_start, 1),
        backbone="efficientnet-lite0 ImageNet (pip package, frozen; not in this file)",
    )
    log(f"wrote {wpath} ({wpath.stat().st_size / 1e6:.2f} MB) in {time.time() - t_start:.0f}s")
    return 0


def evaluate_held_out(root, names, cfg, local, glob, perframe, fx, args) -> dict:
    """Mean J (IoU) per mode over the held-out sequences (quick check; bench is the reference)."""
    from segtrack.trackers.convlstm import ConvLSTMTracker

    vids = davis_videos(root, names)
    out = {}
    for mode in ("2stage", "1stage", "perframe"):
        vals = []
        for v in vids:
            ims, ms = v.load()
            tr = ConvLSTMTracker(mode=mode, beta=args.beta, warmup=args.warmup)
            tr.set_models(cfg, local, glob, perframe, fx)
            tr.init(ims[0], mask=ms[0])
            for i in range(1, v.n):
                p = tr.track(ims[i])
                u = np.logical_or(p.mask, ms[i]).sum()
                vals.append(np.logical_and(p.mask, ms[i]).sum() / u if u else 1.0)
        out[mode] = float(np.mean(vals))
    return out
