"""``segtrack train rts`` / ``segtrack train lwl``: offline training of the RTS heads (seed 001
§5.3.5) on DAVIS-2016 train, made to fit a 2-core CPU.

What is trained: every head of :class:`segtrack.models.rts.RTSNet` (F_θ, G_θ, E_θ/W_θ, A_θ's λ_s
and step, P_θ's label/mask/weight functions, λ_c, step and initialiser, H_θ, D_θ) and the
box-to-mask network.  The EfficientNet-Lite0 backbone is frozen, so its features are computed
once ("feature cache"): every frame of every sequence is cropped ``--variants`` times around its
ground-truth target with a random (seeded) shift and scale jitter, as the tracker's search region
would be, and the stride 4/8/16 features are kept in fp16 (in RAM, and in ``--cache`` when given).

One iteration = ``--batch`` clips of J ordered frames (§5.3.5): frame 0 with its ground-truth mask
fills D_s and D_c and gives τ⁰ (``--seg-iters`` steepest-descent steps from zero) and κ⁰
(``--inst-iters`` GN steps from the initialiser); frame j >= 1 is segmented with
D_θ(T_τ^{j-1}(x_s^j) + H_θ(T_κ⁰(x_c^j))), its (detached) predicted mask is added to D_s and τ is
refined by ``--update-iters`` steps (Eq. 5.3).  Losses: Lovász hinge on the logits upsampled to
half the crop resolution (+ ``--bce`` x binary cross-entropy, a departure that speeds up the short
schedule), η x DiMP's hinge loss averaged over the iterates κ⁰_(i) (Eq. 5.4-5.5, η = 10), plus the
box-to-mask loss (Lovász + BCE) on the same frames with the ground-truth box.  Adam, step decay
x0.2 at 60 % and 85 % of the iterations (the thesis: 200 epochs, decays at 25/115/160).

``lwl`` trains the same network without conditioning and without the instance branch (η = 0):
LWL's segmentation branch alone (the baseline row of Table 5.1).
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
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from segtrack import release_memory
from segtrack.errors import InputError
from segtrack.models.rts import RTSConfig, RTSNet, save_heads
from segtrack.models.rts.learners import gaussian_label
from segtrack.models.rts.search import Crop, box_map, crop_image, crop_mask, search_side
from segtrack.training.common import (
    STATIC_SEED,
    Checkpointer,
    ClipSampler,
    LossLog,
    add_common_args,
    add_static_args,
    check_data_root,
    check_static_args,
    compute_feature_cache,
    load_or_build,
    seed_everything,
    split_sequences,
    static_share,
    write_manifest,
)
from segtrack.training.losses import hinge_cls_loss, lovasz_hinge

STRIDES = (4, 8, 16)
CACHE_SEED = 1234  # crop jitter of the feature cache (fixed, independent of --seed)


def mask_box(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(
        ys.max() - ys.min() + 1
    )


def jittered_crop(
    box: tuple[float, ...], frame_hw: tuple[int, int], rng: np.random.Generator,
    shift: float, scale: float, size: int, factor: float,
) -> Crop:
    x, y, w, h = box
    sz = math.sqrt(w * h)
    cx = x + w / 2 + rng.uniform(-shift, shift) * sz
    cy = y + h / 2 + rng.uniform(-shift, shift) * sz
    side = search_side(w, h, frame_hw, factor) * math.exp(rng.uniform(-scale, scale))
    return Crop(cx, cy, side, size)


_JITTER = [(0.1, 0.1), (0.3, 0.25), (0.2, 0.2), (0.4, 0.3)]  # (shift, scale) per variant


class _CropStore:
    """Crops, masks and boxes of the frames of many sequences, before the backbone runs."""

    def __init__(self, size: int, factor: float) -> None:
        self.size, self.factor = size, factor
        self.names: list[str] = []
        self.lengths: list[int] = []
        self.crops: list[np.ndarray] = []
        self.m4: list[np.ndarray] = []
        self.mloss: list[np.ndarray] = []
        self.boxes: list[list[float]] = []

    def add(self, name: str, frames: Iterable[tuple[np.ndarray, np.ndarray]], variants: int,
            seed: Sequence[int], jitter: int = 0) -> None:
        """One sequence of (RGB image, bool mask) frames, ``variants`` jittered crops each
        (variant v jitters as ``_JITTER[jitter + v]``)."""
        size, n = self.size, 0
        last = None
        for f, (img, mask) in enumerate(frames):
            b = mask_box(mask)
            if b is None:
                b = last if last is not None else (0.0, 0.0, img.shape[1], img.shape[0])
                empty = True
            else:
                last = b
                empty = False
            for v in range(variants):
                rng = np.random.default_rng([*seed, f, v])
                sh, sc = _JITTER[(jitter + v) % len(_JITTER)]
                crop = jittered_crop(b, img.shape[:2], rng, sh, sc, size, self.factor)
                self.crops.append(crop_image(img, crop))
                self.m4.append((crop_mask(mask, crop, size // 4) * 255 + 0.5).astype(np.uint8))
                self.mloss.append((crop_mask(mask, crop, size // 2) * 255 + 0.5).astype(np.uint8))
                cb = crop.box_to_crop(b)
                self.boxes.append([np.nan] * 4 if empty else list(cb))
            n += 1
        self.names.append(name)
        self.lengths.append(n)

    def finish(self, variants: int, backbone_name: str, quiet: bool,
               extra: dict | None = None) -> dict:
        from segtrack.models.backbones import build_backbone

        bb = build_backbone(backbone_name, pretrained=True, out_strides=STRIDES,
                            freeze_bn=True).eval()
        feats = compute_feature_cache(bb, iter(self.crops), len(self.crops), STRIDES,
                                      progress=not quiet, desc="backbone")
        obj = {
            "names": self.names, "lengths": self.lengths, "variants": variants,
            "size": self.size, "feats": feats, "m4": torch.from_numpy(np.stack(self.m4)),
            "mloss": torch.from_numpy(np.stack(self.mloss)),
            "boxes": torch.tensor(np.asarray(self.boxes, np.float32)),
            **(extra or {}),
        }
        self.crops.clear()
        release_memory()
        return obj


def build_cache(data: Path, variants: int, size: int, factor: float, backbone_name: str,
                cache_file: str | None, quiet: bool) -> dict:
    """Crops, masks, boxes and frozen-backbone features of every frame (see module doc)."""
    from tqdm import tqdm

    from segtrack.eval.datasets import load_davis
    from segtrack.io.sources import read_image

    key = hashlib.sha256(
        json.dumps(
            [str(data.resolve()), variants, size, factor, backbone_name, CACHE_SEED]
        ).encode()
    ).hexdigest()[:16]

    def build() -> dict:
        store = _CropStore(size, factor)
        for si, seq in enumerate(tqdm(load_davis(data), desc="crops", disable=quiet)):

            def frames(seq=seq):
                for f in range(len(seq.frames)):
                    img = read_image(seq.frames[f])
                    lab = seq.read_labels(f)
                    yield img, (lab > 0 if lab is not None else np.zeros(img.shape[:2], bool))

            store.add(seq.name, frames(), variants, (CACHE_SEED, si))
        return store.finish(variants, backbone_name, quiet)

    return load_or_build(cache_file, key, build)


def build_static_cache(dirs: Sequence[str], clips: int, frames: int, distractors: float,
                       size: int, factor: float, backbone_name: str, cache_file: str | None,
                       quiet: bool, holdout: bool = False) -> dict:
    """The same arrays as :func:`build_cache` for ``clips`` clips of ``frames`` frames made
    from the photographs of ``dirs`` (:mod:`segtrack.data.static`); clip i's target is photo
    ``i mod N``, each clip is a "sequence" of the cache (one crop per frame)."""
    from tqdm import tqdm

    from segtrack.data.static import (
        ClipParams,
        StaticClipMaker,
        load_static_sets,
        without_heldout,
    )

    samples = load_static_sets(dirs)
    if holdout:  # the evaluation photographs left out (the key changes with the list)
        samples = without_heldout(samples)
    params = ClipParams(frames=frames, p_distractor=distractors)
    key = hashlib.sha256(json.dumps(
        [[str(s.image) for s in samples], clips, dataclasses.asdict(params), size, factor,
         backbone_name, STATIC_SEED], default=str).encode()).hexdigest()[:16]

    def build() -> dict:
        maker = StaticClipMaker(samples, params)
        store = _CropStore(size, factor)
        kinds: dict[str, int] = {}
        for i in tqdm(range(clips), desc="static clips", disable=quiet):
            clip = maker.numbered(i, STATIC_SEED)
            d = clip.info["distractor"] or "none"
            kinds[d] = kinds.get(d, 0) + 1
            store.add(f"static{i}", zip(clip.frames, clip.masks, strict=True), 1,
                      (STATIC_SEED, 1, i), jitter=i)
        return store.finish(1, backbone_name, quiet,
                            {"photos": len(samples), "distractors": kinds})

    return load_or_build(cache_file, key, build)


MULTI_SEED = 30000  # the training multi-object clips (the held-out set: seed 20000)


def build_multi_cache(dirs: Sequence[str], data: Path, count: int, frames: int,
                      backgrounds: Sequence[str], size: int, factor: float, backbone_name: str,
                      cache_file: str | None, quiet: bool, windows: int = 2) -> dict:
    """The same arrays as :func:`build_cache` for ``count`` samples from multi-object clips
    (:class:`segtrack.data.multi.MultiClipMaker` with the *training* photographs, never an
    object of the held-out set, over frames of ``backgrounds``): 3 to 8 look-alike objects
    that move, cross and hide each other. A sample is ``frames`` consecutive frames of one
    object (``windows`` per object and clip), the others around it as distractors."""
    from tqdm import tqdm

    from segtrack.data.multi import MultiClipMaker, MultiParams
    from segtrack.data.static import load_static_sets

    samples = load_static_sets(dirs)
    params = MultiParams()
    key = hashlib.sha256(json.dumps(
        [[str(q.image) for q in samples], count, frames, sorted(backgrounds),
         dataclasses.asdict(params), size, factor, backbone_name, MULTI_SEED, windows],
        default=str).encode()).hexdigest()[:16]

    def build() -> dict:
        maker = MultiClipMaker(samples, data, params, objects="training",
                               backgrounds=backgrounds)
        store = _CropStore(size, factor)
        n = i = 0
        bar = tqdm(total=count, desc="multi-object clips", disable=quiet)
        while n < count:
            clip = maker.clip(i, MULTI_SEED)
            rng = np.random.default_rng([MULTI_SEED, i, 1])
            labels = np.stack(clip.labels)
            for k in sorted(clip.layers):
                seen = (labels == k).reshape(len(labels), -1).sum(1) >= 64
                starts = [j for j in range(len(labels) - frames + 1) if seen[j]]
                for j0 in rng.permutation(starts)[:windows] if starts else []:
                    if n >= count:
                        break
                    j0 = int(j0)
                    store.add(f"multi{i}_{k}_{j0}",
                              [(clip.frames[j], labels[j] == k) for j in range(j0, j0 + frames)],
                              1, (MULTI_SEED, i, k, j0), jitter=n)
                    n += 1
                    bar.update(1)
            i += 1
        bar.close()
        return store.finish(1, backbone_name, quiet, {"clips": i})

    return load_or_build(cache_file, key, build)


class Batcher:
    """Draws training clips from the cache."""

    def __init__(self, cache: dict, train_names: list[str], J: int, max_gap: int | None) -> None:
        self.cache = cache
        names = cache["names"]
        starts = np.concatenate([[0], np.cumsum(cache["lengths"])[:-1]])
        self.seq_ids = [names.index(n) for n in train_names]
        self.starts = [int(starts[i]) for i in self.seq_ids]
        self.lengths = [int(cache["lengths"][i]) for i in self.seq_ids]
        self.sampler = ClipSampler(self.lengths, J, max_gap)
        self.V = cache["variants"]
        self.valid = ~torch.isnan(cache["boxes"][:, 0])

    def draw(self, rng: np.random.Generator, B: int) -> torch.Tensor:
        """Row indices (B, J) into the cache arrays; frame 0 of each clip has a target."""
        rows = []
        while len(rows) < B:
            s, idx = self.sampler.sample(rng)
            r = [(self.starts[s] + f) * self.V + int(rng.integers(self.V)) for f in idx]
            if bool(self.valid[r[0]]):
                rows.append(r)
        return torch.tensor(rows)


def _gather(cache: dict, rows: torch.Tensor) -> dict:
    flat = rows.reshape(-1)
    out = {s: cache["feats"][s][flat].float() for s in STRIDES}
    out["m4"] = cache["m4"][flat].float().div(255).unsqueeze(1)
    out["mloss"] = cache["mloss"][flat].float().div(255)
    out["boxes"] = cache["boxes"][flat]
    return out


def clip_loss(net: RTSNet, batch: dict, B: int, J: int, args, rng_t: torch.Generator) -> dict:
    """Losses of one batch of clips (Eq. 5.3-5.5 + box-to-mask)."""
    cfg = net.cfg
    f16 = batch[16]
    xs = net.seg_features(f16).unflatten(0, (B, J))
    use_inst = args.eta > 0 or cfg.conditioning
    size = float(cfg.crop_size)
    H16 = f16.shape[-1]
    cell = size / H16
    boxes = batch["boxes"].view(B, J, 4)
    valid = ~torch.isnan(boxes[..., 0])
    bx = torch.nan_to_num(boxes, nan=0.0) / cell  # in cells
    centers = bx[..., :2] + bx[..., 2:] / 2
    sigma = (0.25 * torch.sqrt(bx[..., 2] * bx[..., 3])).clamp_min(0.5)
    m4 = batch["m4"].view(B, J, 1, *batch["m4"].shape[-2:])
    mloss = batch["mloss"].view(B, J, *batch["mloss"].shape[-2:])
    feats = {s: batch[s].unflatten(0, (B, J)) for s in STRIDES}

    losses = {}
    E0, W0 = net.label_enc(m4[:, 0], xs[:, 0])
    mem_x, mem_e, mem_w = [xs[:, 0]], [E0], [W0]
    tau = net.seg_learner(xs[:, :1], E0[:, None], W0[:, None], num_iter=args.seg_iters)
    iterates = None
    if use_inst:
        xc = net.cls_features(f16).unflatten(0, (B, J))
        iterates = net.inst_learner(xc[:, :1], centers[:, :1], bx[:, 0], num_iter=args.inst_iters)
    seg_l, cls_l = 0.0, 0.0
    for j in range(1, J):
        sc = None
        if iterates is not None:
            y = gaussian_label(centers[:, j : j + 1], sigma[:, j : j + 1], xc.shape[-2:])[:, 0]
            y = y * valid[:, j, None, None]
            per_it = [hinge_cls_loss(net.inst_learner.apply(k, xc[:, j : j + 1])[:, 0], y)
                      for k in iterates]
            cls_l = cls_l + torch.stack(per_it).mean()
            sc = net.inst_learner.apply(iterates[-1], xc[:, j : j + 1])
        xm = net.seg_learner.apply(tau, xs[:, j : j + 1])[:, 0]
        fj = {s: feats[s][:, j] for s in STRIDES}
        logits = net.decode(xm, fj, sc)
        up = F.interpolate(logits, size=mloss.shape[-2:], mode="bilinear", align_corners=False)
        gt = (mloss[:, j] > 0.5).float()
        seg_l = seg_l + lovasz_hinge(up[:, 0], gt) + args.bce * F.binary_cross_entropy_with_logits(
            up[:, 0], mloss[:, j]
        )
        if j < J - 1:
            pm = torch.sigmoid(logits.detach())
            Ej, Wj = net.label_enc(pm, xs[:, j])
            mem_x.append(xs[:, j])
            mem_e.append(Ej)
            mem_w.append(Wj)
            tau = net.seg_learner(
                torch.stack(mem_x, 1), torch.stack(mem_e, 1), torch.stack(mem_w, 1), tau=tau,
                num_iter=args.update_iters,
            )
    losses["seg"] = seg_l / (J - 1)
    if iterates is not None:
        losses["cls"] = cls_l / (J - 1)
    # box-to-mask (ground-truth box with a little edge noise)
    if args.b2m_weight > 0:
        n4 = batch["m4"].shape[-1]
        # frame 0 of every clip only (keeps the iteration cheap)
        bvalid = torch.zeros(B, J, dtype=torch.bool)
        bvalid[:, 0] = valid[:, 0]
        bvalid = bvalid.reshape(-1)
        if bool(bvalid.any()):
            b = torch.nan_to_num(batch["boxes"], nan=0.0) / 4.0  # stride-4 pixels
            noise = (torch.rand(b.shape, generator=rng_t) - 0.5) * 2 * args.box_noise
            wh = b[:, 2:].repeat(1, 2)
            b = b + noise * wh
            maps = torch.stack([torch.from_numpy(box_map(tuple(r.tolist()), n4)) for r in b])
            sel = bvalid.nonzero()[:, 0]
            fb = {s: batch[s][sel] for s in STRIDES}
            lg = net.b2m(fb, maps[sel].unsqueeze(1))
            up = F.interpolate(lg, size=batch["mloss"].shape[-2:], mode="bilinear",
                               align_corners=False)[:, 0]
            tgt = batch["mloss"][sel]
            losses["b2m"] = lovasz_hinge(up, (tgt > 0.5).float()) + 0.5 * (
                F.binary_cross_entropy_with_logits(up, tgt)
            )
    total = losses["seg"] + args.eta * losses.get("cls", 0.0) + args.b2m_weight * losses.get(
        "b2m", 0.0
    )
    losses["total"] = total
    return losses


def build_parser(method: str) -> argparse.ArgumentParser:
    what = ("the RTS heads (segmentation and instance branches, decoder) and its box-to-mask "
            "network" if method == "rts" else "LWL, the RTS segmentation branch alone")
    p = argparse.ArgumentParser(
        prog=f"segtrack train {method}",
        description=f"Train {what} on a DAVIS-style data set (and optionally clips made from "
                    "photographs); the backbone stays frozen, so its features are computed once.",
    )
    add_common_args(p)
    p.add_argument("--batch", type=int, default=8, help="clips per iteration")
    p.add_argument("--frames", type=int, default=3, help="frames per clip")
    p.add_argument("--max-gap", type=int, default=15, help="max frame gap within a clip")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate (default: 1e-3)")
    p.add_argument("--eta", type=float, default=10.0 if method == "rts" else 0.0,
                   help="weight of the instance-branch loss (0 leaves that branch out)")
    p.add_argument("--bce", type=float, default=0.25,
                   help="weight of the cross-entropy added to the Lovász loss")
    p.add_argument("--b2m-weight", type=float, default=1.0,
                   help="weight of the box-to-mask loss (0: do not train that network)")
    p.add_argument("--box-noise", type=float, default=0.03,
                   help="jitter of the boxes given to the box-to-mask network")
    p.add_argument("--seg-iters", type=int, default=5,
                   help="optimiser steps of the segmentation learner on the first frame")
    p.add_argument("--update-iters", type=int, default=3,
                   help="steps of the segmentation learner after each later frame")
    p.add_argument("--inst-iters", type=int, default=5,
                   help="optimiser steps of the instance learner on the first frame")
    p.add_argument("--variants", type=int, default=2, help="jittered crops per frame in the cache")
    p.add_argument("--crop-size", type=int, default=288,
                   help="side of the search region in pixels")
    p.add_argument("--search-factor", type=float, default=4.0,
                   help="search region side as a multiple of the target size")
    p.add_argument("--backbone", default="efficientnet-lite0",
                   choices=["efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"],
                   help="frozen ImageNet backbone (lite1/lite2 need their pip packages)")
    p.add_argument("--tune-stride16", default="none", choices=["none", "static", "all"],
                   help="also train the backbone's last (stride-16) stage, from ImageNet, "
                        "during the photograph stage only or throughout; saved in the weights")
    p.add_argument("--tune-lr", type=float, default=1e-4,
                   help="learning rate of the tuned backbone stage")
    add_static_args(p, "clips", 4000, 0.3)
    p.add_argument("--static-cache", default=None,
                   help="feature cache file of the photograph clips (default: none, in RAM)")
    p.add_argument("--static-multi", type=int, default=0, metavar="N",
                   help="also N samples from multi-object clips made from the photographs "
                        "(3-8 look-alikes crossing and hiding each other; default: none)")
    p.add_argument("--static-multi-share", type=float, default=0.5,
                   help="share of the photograph samples of a batch that are multi-object")
    p.add_argument("--static-multi-cache", default=None,
                   help="feature cache file of the multi-object samples (default: none, in RAM)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    p.add_argument("--max-minutes", type=float, default=0.0,
                   help="stop after this many minutes (0: no limit)")
    return p


def train(method: str, argv: list[str]) -> int:
    args = build_parser(method).parse_args(argv)
    if args.tune_stride16 == "static" and not (args.static and args.static_iters > 0):
        raise InputError("--tune-stride16 static: needs --static DIR and --static-iters > 0")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    data = check_data_root(args.data)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = seed_everything(args.seed)
    rng_t = torch.Generator().manual_seed(args.seed)
    check_static_args(args, "clips")  # before the long feature caches
    if args.static_multi and not args.static:
        raise InputError("--static-multi: needs --static DIR (the photographs to cut from)")
    if args.static_multi < 0:
        raise InputError(f"--static-multi {args.static_multi}: must be at least 0")
    if not 0.0 <= args.static_multi_share <= 1.0:
        raise InputError(
            f"--static-multi-share {args.static_multi_share}: must be between 0 and 1")
    t0 = time.time()
    cache = build_cache(data, args.variants, args.crop_size, args.search_factor,
                        args.backbone, args.cache, args.quiet)
    static = None
    if args.static:
        static = build_static_cache(args.static, args.static_clips, args.frames,
                                    args.static_distractors, args.crop_size,
                                    args.search_factor, args.backbone,
                                    args.static_cache, args.quiet,
                                    holdout=args.static_holdout)
    train_names, held = split_sequences(cache["names"], args.fold, args.folds)
    multi = None
    if args.static_multi:
        multi = build_multi_cache(args.static, data, args.static_multi, args.frames,
                                  train_names, args.crop_size, args.search_factor,
                                  args.backbone, args.static_multi_cache, args.quiet)
    t_cache = time.time() - t0
    ch = {k: v.shape[1] for k, v in cache["feats"].items()}
    cfg = RTSConfig(backbone=args.backbone, crop_size=args.crop_size,
                    conditioning=(method == "rts"), channels4=ch[4], channels8=ch[8],
                    channels16=ch[16], tuned_stride16=args.tune_stride16 != "none")
    torch.manual_seed(args.seed)
    net = RTSNet(cfg)
    if cfg.tuned_stride16:
        net.load_pretrained_stage16()
    if method == "lwl":  # the instance branch / score encoder are unused: freeze them
        for mod in (net.feat_c, net.inst_learner, net.score_enc):
            for q in mod.parameters():
                q.requires_grad_(False)
    params = [q for q in net.parameters() if q.requires_grad]
    tuned = {id(q) for q in net.stage16.parameters()} if cfg.tuned_stride16 else set()
    opt = torch.optim.Adam([
        {"params": [q for q in params if id(q) not in tuned]},
        *([{"params": [q for q in params if id(q) in tuned], "lr": args.tune_lr}]
          if tuned else []),
    ], lr=args.lr)
    sched = torch.optim.lr_scheduler.MultiStepLR(
        opt, [int(0.6 * args.iters), int(0.85 * args.iters)], gamma=0.2
    )
    ck = Checkpointer(out, args.checkpoint_every)
    step = 0
    history: list[dict] = []
    if args.resume:
        st = ck.resume(rng)
        net.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        sched.load_state_dict(st["scheduler"])
        rng_t.set_state(st["torch_gen"])
        step = int(st["step"])
        history = st.get("history", [])
    batcher = Batcher(cache, train_names, args.frames, args.max_gap)
    static_batcher = None if static is None else Batcher(static, static["names"], args.frames,
                                                         None)
    multi_batcher = None if multi is None else Batcher(multi, multi["names"], args.frames, None)

    def state() -> dict:
        return {"model": net.state_dict(), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(), "torch_gen": rng_t.get_state(),
                "history": history}

    from tqdm import tqdm

    net.train()
    bar = tqdm(total=args.iters, initial=step, desc=f"train {method}", disable=args.quiet)
    t_train = time.time()
    log = LossLog(bar, args.quiet, history)
    n_skipped = 0
    while step < args.iters:
        if args.max_minutes and (time.time() - t_train) / 60 > args.max_minutes:
            break
        if static_batcher is None:
            batch = _gather(cache, batcher.draw(rng, args.batch))
        else:  # photograph clips only in the static stage, then mixed in at --static-ratio
            n_static = static_share(rng, args.batch, step, args)
            parts = []
            n_multi = 0 if multi is None else int(rng.binomial(n_static,
                                                               args.static_multi_share))
            if n_multi:
                parts.append(_gather(multi, multi_batcher.draw(rng, n_multi)))
            if n_static - n_multi:
                parts.append(_gather(static, static_batcher.draw(rng, n_static - n_multi)))
            if args.batch - n_static:
                parts.append(_gather(cache, batcher.draw(rng, args.batch - n_static)))
            batch = {k: torch.cat([q[k] for q in parts]) for k in parts[0]}
        if cfg.tuned_stride16:  # stride-16 features from the cached stride-8 ones
            learn = args.tune_stride16 == "all" or step < args.static_iters
            with torch.set_grad_enabled(learn):
                batch[16] = net.stage16(batch[8])
        losses = clip_loss(net, batch, args.batch, args.frames, args, rng_t)
        opt.zero_grad(set_to_none=True)
        skipped = not bool(torch.isfinite(losses["total"]))
        if not skipped:
            losses["total"].backward()
            gnorm = torch.nn.utils.clip_grad_norm_(params, 10.0)
            skipped = not bool(torch.isfinite(gnorm))
        if skipped:  # never let one bad batch poison the weights
            n_skipped += 1
            opt.zero_grad(set_to_none=True)
        else:
            opt.step()
        sched.step()
        step += 1
        log.update(step, losses, skipped=n_skipped)
        ck.maybe_save(step, state, rng)
    bar.close()
    ck.save(step, state(), rng)
    train_minutes = (time.time() - t_train) / 60
    weights = save_heads(net.eval(), out / f"{method}.pt", half=True, method=method)
    cmd = "segtrack train " + method + " " + " ".join(shlex.quote(a) for a in argv)
    info = {
        "method": method, "command": cmd, "data": str(data), "train_sequences": train_names,
        "held_out": held, "fold": args.fold, "folds": args.folds, "seed": args.seed,
        "iterations": step, "args": vars(args), "cache_minutes": round(t_cache / 60, 2),
        "train_minutes": round(train_minutes, 2), "final_losses": history[-1] if history else {},
        "argv": sys.argv,
    }
    if static is not None:
        info["static"] = {"dirs": args.static, "photos": static.get("photos"),
                          "clips": len(static["names"]), "distractors": static.get("distractors")}
    if multi is not None:
        info["static"]["multi"] = {"samples": len(multi["names"]), "clips": multi.get("clips"),
                                   "seed": MULTI_SEED, "backgrounds": train_names}
    if held:
        info["b2m_iou_held_out"] = evaluate_b2m(net, data, held, args.crop_size,
                                                args.search_factor)
    write_manifest(out / f"{method}.manifest.json", [weights], **info)
    if not args.quiet:
        print(json.dumps({k: info[k] for k in ("iterations", "train_minutes", "final_losses")}
                         | {"b2m_iou_held_out": info.get("b2m_iou_held_out")}))
    return 0


@torch.no_grad()
def evaluate_b2m(net: RTSNet, data: Path, names: list[str], size: int, factor: float,
                 every: int = 5) -> float:
    """Mean full-frame IoU of the box-to-mask network on every ``every``-th annotated frame of
    ``names`` (box = min-max box of the ground-truth mask)."""
    from segtrack.eval.datasets import load_davis
    from segtrack.io.sources import read_image
    from segtrack.models.rts.infer import box_to_mask

    bb = net.build_backbone(STRIDES)
    ious = []
    for seq in load_davis(data):
        if seq.name not in names:
            continue
        for f in range(0, len(seq.frames), every):
            lab = seq.read_labels(f)
            if lab is None or not (lab > 0).any():
                continue
            gt = lab > 0
            img = read_image(seq.frames[f])
            pred = box_to_mask(net, bb, img, mask_box(gt), size, factor)
            ious.append((pred & gt).sum() / max((pred | gt).sum(), 1))
    return float(np.mean(ious)) if ious else float("nan")


def main(argv: list[str]) -> int:
    """``segtrack train rts``."""
    return train("rts", argv)


def main_lwl(argv: list[str]) -> int:
    """``segtrack train lwl``."""
    return train("lwl", argv)
