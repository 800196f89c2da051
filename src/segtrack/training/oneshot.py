"""``segtrack train osvos | masktrack | masktrack-flow``: the parent networks of the one-shot
family (seed 002 "One-shot VOS - Parent Network: trained on DAVIS training set"; seed 002
"MaskTrack: training inputs can be simulated").

Data: the DAVIS-2016 train sequences outside ``--fold`` (default: none held out; fold 0 = bear,
car-turn, flamingo, lucia, paragliding, stroller), every ``--step``-th frame at the network size
(short side 256).  The EfficientNet-Lite0 backbone is frozen, so its five taps are computed once
(:func:`~segtrack.training.common.compute_feature_cache`) and every iteration only costs the
head.  Loss: OSVOS' class-balanced cross-entropy (:func:`~segtrack.models.oneshot.balanced_bce`)
at stride 2.  Augmentation on the cached features: horizontal flips; for MaskTrack the previous
mask is simulated afresh at every iteration from the frame's annotation
(:func:`~segtrack.data.lucid.simulate_previous_mask`: affine jitter, non-rigid deformation,
dilation/erosion, blobs/boxes).  MaskTrack+Flow adds the DIS flow magnitude between the frame and
its predecessor.  Score: mean IoU on frames of the held-out fold (MaskTrack: with simulated
previous masks, fixed seed).  Deterministic given ``--seed`` and one thread.

``python -m segtrack.training.oneshot bench ...`` runs ``bench_davis`` for one configuration and
adds the fine-tuning seconds per video (what BENCHMARKS reports).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from segtrack.training.common import (
    STATIC_SEED,
    Checkpointer,
    add_common_args,
    add_static_args,
    check_data_root,
    check_static_args,
    compute_feature_cache,
    load_or_build,
    mixed_batch,
    split_sequences,
    start_run,
    write_manifest,
)

KINDS = {"osvos": 0, "masktrack": 1, "masktrack-flow": 2}

#: what each trainer's parent network is, for its --help
_PARENT = {
    "osvos": "the parent network of osvos (and of onavos, which starts from it)",
    "masktrack": "the parent network of masktrack (it also sees the previous frame's mask)",
    "masktrack-flow": "the parent network of masktrack-flow (previous mask and optical flow)",
}


def davis_samples(root: str, names: list[str], step: int, short_side: int, flow: bool,
                  ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray | None]]:
    """(images at network size, masks at stride 2, flow magnitudes at stride 2 or None)."""
    from segtrack.eval.datasets import load_davis
    from segtrack.models.oneshot import dis_flow, flow_magnitude, net_size, resize

    imgs, masks, flows = [], [], []
    for seq in load_davis(root, sequences=names):
        h, w = seq.read_image(0).shape[:2]
        size = net_size(h, w, short_side)
        half = (size[0] // 2, size[1] // 2)
        for t in range(0, len(seq), step):
            lab = seq.read_labels(t)
            if lab is None:
                continue
            im = resize(seq.read_image(t), size)
            imgs.append(im)
            masks.append(resize(lab > 0, half))
            if flow:
                other = resize(seq.read_image(t - 1 if t > 0 else 1), size)
                fl = dis_flow(other, im) if t > 0 else -dis_flow(im, other)
                flows.append(resize(flow_magnitude(fl), half))
            else:
                flows.append(None)
    return imgs, masks, flows


def static_samples(photos: list, count: int, distractors: float, size: tuple[int, int],
                   quiet: bool) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """(images, masks at stride 2, flow magnitudes at stride 2) of ``count`` frames synthesised
    from photographs: frame 1 of a two-frame clip (:mod:`segtrack.data.static`, object pasted on
    another photo, with a similar distractor in a share ``distractors`` of them), its flow
    magnitude from frame 0 (for MaskTrack+Flow); frames are ``size`` (H, W), the network size
    of the video frames they are mixed with."""
    from tqdm import tqdm

    from segtrack.data.static import ClipParams, StaticClipMaker
    from segtrack.models.oneshot import dis_flow, flow_magnitude, resize

    params = ClipParams(frames=2, canvas=(int(size[0]), int(size[1])), p_distractor=distractors)
    maker = StaticClipMaker(photos, params)
    half = (size[0] // 2, size[1] // 2)
    imgs, masks, flows = [], [], []
    for i in tqdm(range(count), desc="static frames", disable=quiet):
        clip = maker.numbered(i, STATIC_SEED)
        prev, im = clip.frames
        imgs.append(im)
        masks.append(resize(clip.masks[1], half))
        flows.append(resize(flow_magnitude(dis_flow(prev, im)), half))
    return imgs, masks, flows


def _extra(kind: int, masks: list[np.ndarray], flows: list, rng: np.random.Generator,
           ) -> torch.Tensor | None:
    from segtrack.data.lucid import simulate_previous_mask
    from segtrack.models.oneshot import extra_tensor

    if kind == 0:
        return None
    prev = [simulate_previous_mask(m, rng) for m in masks]
    return extra_tensor(prev, flows if kind == 2 else None)


@torch.no_grad()
def evaluate(net, feats: dict[int, torch.Tensor], masks: list[np.ndarray], flows: list,
             kind: int, seed: int = 1234) -> dict:
    """Mean IoU (threshold 0.5 at stride 2) over the given cached frames."""
    rng = np.random.default_rng(seed)
    ious = []
    for i in range(len(masks)):
        f = {s: v[i:i + 1].float() for s, v in feats.items()}
        logit = net.head(f, _extra(kind, masks[i:i + 1], flows[i:i + 1], rng))[0, 0]
        pred = (logit > 0).numpy()
        gt = masks[i]
        union = (pred | gt).sum()
        ious.append(1.0 if union == 0 else float((pred & gt).sum() / union))
    return {"mIoU": float(np.mean(ious)) if ious else float("nan"), "frames": len(ious)}


def train(kind_name: str, argv: list[str] | None, prog: str = "") -> int:
    from segtrack.models.oneshot import (
        STRIDES,
        OneShotConfig,
        OneShotNet,
        balanced_bce,
        save_oneshot,
    )

    kind = KINDS[kind_name]
    p = argparse.ArgumentParser(
        prog=f"segtrack train {prog or kind_name}",
        description=f"Train {_PARENT[kind_name]} on a DAVIS-style data set (and optionally "
                    "frames made from photographs); each video later fine-tunes it on its "
                    "first frame. The backbone stays frozen.")
    add_common_args(p)
    p.add_argument("--step", type=int, default=2, help="use every STEP-th training frame")
    p.add_argument("--short-side", type=int, default=256,
                   help="short side of the network input in pixels")
    p.add_argument("--batch", type=int, default=4, help="frames per iteration")
    p.add_argument("--lr", type=float, default=3e-3, help="learning rate")
    p.add_argument("--name", default=kind_name, help="weight file stem")
    add_static_args(p, "frames", 1500, 0.3)
    a = p.parse_args(argv)
    photos = check_static_args(a, "frames")
    rng, out, t0 = start_run(a.seed, a.out)
    from segtrack.eval.datasets import load_davis

    root = check_data_root(a.data)
    all_names = [s.name for s in load_davis(root)]
    fold = a.fold  # None: every sequence trains (the committed defaults)
    train_names, held = split_sequences(all_names, fold, a.folds)
    cfg = OneShotConfig(kind=kind_name, extra=kind, short_side=a.short_side)
    net = OneShotNet(cfg)
    flow = kind == 2
    cache = Path(a.cache) if a.cache else None
    key = hashlib.sha256(json.dumps(
        [str(root.resolve()), train_names, held, a.step, a.short_side]).encode()).hexdigest()[:16]

    def build() -> dict:
        imgs, masks, flows = davis_samples(str(root), train_names, a.step, a.short_side, True)
        himgs, hmasks, hflows = davis_samples(str(root), held, 10, a.short_side, True)
        print(f"{len(imgs)} training frames, {len(himgs)} held-out ({time.time() - t0:.0f}s)",
              flush=True)
        feats = compute_feature_cache(net.backbone, imgs, len(imgs), STRIDES, batch_size=4,
                                      progress=not a.quiet)
        hfeats = compute_feature_cache(net.backbone, himgs, len(himgs), STRIDES, batch_size=4,
                                       progress=not a.quiet) if himgs else {}
        return {"feats": feats, "masks": masks, "flows": flows, "hfeats": hfeats,
                "hmasks": hmasks, "hflows": hflows, "train": train_names, "held": held}

    doc = load_or_build(cache, key, build)
    static = None
    if photos:
        size = tuple(2 * int(v) for v in doc["masks"][0].shape[:2])  # the network input size
        skey = json.dumps([[str(q.image) for q in photos], a.static_frames,
                           a.static_distractors, size])
        static = doc.get("static")
        if static is None or static.get("key") != skey:
            simgs, smasks, sflows = static_samples(photos, a.static_frames,
                                                   a.static_distractors, size, a.quiet)
            sfeats = compute_feature_cache(net.backbone, simgs, len(simgs), STRIDES,
                                           batch_size=4, progress=not a.quiet, desc="static")
            static = {"key": skey, "feats": sfeats, "masks": smasks, "flows": sflows}
            doc["static"] = static
            if cache is not None:
                tmp = cache.with_suffix(".tmp")
                torch.save(doc, tmp)
                tmp.replace(cache)
    feats, masks, flows = doc["feats"], doc["masks"], doc["flows"]
    print(f"features ready ({time.time() - t0:.0f}s)", flush=True)
    targets = torch.from_numpy(np.stack(masks)).float()[:, None]
    if static is not None:
        s_targets = torch.from_numpy(np.stack(static["masks"])).float()[:, None]
    head = net.head.train()
    opt = torch.optim.AdamW(head.parameters(), lr=a.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.lr, total_steps=a.iters,
                                                pct_start=0.1)
    ck = Checkpointer(out, a.checkpoint_every)
    start = 0
    log: list[tuple[int, float]] = []
    if a.resume:
        st = ck.load(rng)
        if st is not None:
            head.load_state_dict(st["head"])
            opt.load_state_dict(st["opt"])
            sched.load_state_dict(st["sched"])
            start, log = st["step"], st["log"]
    n = len(masks)
    run = 0.0
    for it in range(start, a.iters):
        if static is None:
            b, sb = rng.choice(n, size=a.batch, replace=False), []
        else:
            b, sb = mixed_batch(rng, n, len(static["masks"]), a.batch, it, a)
        bt = torch.from_numpy(b)
        f = {s: feats[s][bt].float() for s in STRIDES}
        y = targets[bt]
        bm, bf = [masks[i] for i in b], [flows[i] for i in b]
        if len(sb):  # photograph frames (all of them during the static stage)
            st = torch.from_numpy(sb)
            f = {s: torch.cat([f[s], static["feats"][s][st].float()]) for s in STRIDES}
            y = torch.cat([y, s_targets[st]])
            bm += [static["masks"][i] for i in sb]
            bf += [static["flows"][i] for i in sb]
        ex = _extra(kind, bm, bf if flow else [], rng)
        if rng.random() < 0.5:
            f = {s: v.flip(-1) for s, v in f.items()}
            y = y.flip(-1)
            ex = ex.flip(-1) if ex is not None else None
        logits = head(f, ex)
        loss = balanced_bce(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        run = loss.item() if it == start else 0.98 * run + 0.02 * loss.item()
        if it % 100 == 0 or it == a.iters - 1:
            log.append((it, run))
            if not a.quiet:
                print(f"iter {it} loss {run:.4f} ({time.time() - t0:.0f}s)", flush=True)
        ck.maybe_save(it + 1, lambda: {"head": head.state_dict(), "opt": opt.state_dict(),
                                       "sched": sched.state_dict(), "log": log}, rng)
    net.eval()
    metrics = evaluate(net, doc["hfeats"], doc["hmasks"], doc["hflows"], kind) if held else {}
    metrics["train_frames"] = n
    if static is not None:
        metrics["static_frames"] = len(static["masks"])
    print(json.dumps(metrics), flush=True)
    wpath = out / f"{a.name}.pt"
    save_oneshot(wpath, net)
    cmd = f"segtrack train {kind_name} " + " ".join(argv or [])
    write_manifest(out / f"{a.name}.manifest.json", [wpath], command=cmd, seed=a.seed,
                   iters=a.iters, batch=a.batch, lr=a.lr, step=a.step, data=str(a.data),
                   fold=fold, folds=a.folds, held_out=held, train_sequences=train_names,
                   metrics=metrics, loss_log=log, train_seconds=time.time() - t0,
                   config=asdict(cfg),
                   static=None if static is None else {
                       "dirs": a.static, "frames": len(static["masks"]),
                       "static_iters": a.static_iters, "ratio": a.static_ratio,
                       "distractors": a.static_distractors},
                   note="head only (fp16); the frozen ImageNet EfficientNet-Lite0 is not included")
    print(f"wrote {wpath}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``segtrack train osvos``."""
    return train("osvos", argv)


def main_onavos(argv: list[str] | None = None) -> int:
    """``segtrack train onavos``: OnAVOS starts from the OSVOS parent, so this trains that."""
    return train("osvos", argv, prog="onavos")


def main_masktrack(argv: list[str] | None = None) -> int:
    """``segtrack train masktrack``."""
    return train("masktrack", argv)


def main_masktrack_flow(argv: list[str] | None = None) -> int:
    """``segtrack train masktrack-flow``."""
    return train("masktrack-flow", argv)


def bench(argv: list[str] | None = None) -> int:
    """One benchmark configuration: ``bench_davis`` + fine-tuning seconds per video (JSON)."""
    from segtrack.eval.runner import bench_davis
    from segtrack.params import parse_param_args
    from segtrack.trackers import oneshot

    p = argparse.ArgumentParser(prog="python -m segtrack.training.oneshot bench")
    p.add_argument("root")
    p.add_argument("method")
    p.add_argument("--sequences", default="")
    p.add_argument("--param", action="append", default=[])
    p.add_argument("--out", default=None, help="append the JSON summary to this file")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    import cv2

    cv2.setNumThreads(a.threads)
    seqs = [s for s in a.sequences.split(",") if s] or None
    oneshot.FINETUNE_LOG.clear()
    t0 = time.time()
    s = bench_davis(a.root, a.method, sequences=seqs, params=parse_param_args(a.param),
                    quiet=True)
    ft = list(oneshot.FINETUNE_LOG)
    res = {"method": a.method, "params": a.param, "JF": s["JF"], "J": s["J_M"], "F": s["F_M"],
           "fps": s["fps"], "finetune_seconds": ft,
           "finetune_mean": float(np.mean(ft)) if ft else 0.0, "wall": time.time() - t0,
           "per_sequence": {r["sequence"]: r["JF"] for r in s.get("sequences", {}).values()}}
    line = json.dumps(res, default=float)
    print(line)
    if a.out:
        with open(a.out, "a") as fh:
            fh.write(line + "\n")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "bench":
        sys.exit(bench(sys.argv[2:]))
    sys.exit(main(sys.argv[1:]))
