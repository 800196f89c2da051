"""``segtrack train semseg``: the per-frame semantic segmenter (frozen EfficientNet-Lite0 + neck
and decoder, :mod:`segtrack.models.semseg`) that EVS and LMANet wrap (seed 001, §3.3.2, §4.3).

Two data sources:

* ``--data synthetic``: multi-class synthetic videos (:func:`segtrack.data.synthetic.make_video`
  with ``semantic=True``: 9 object classes + background), training seeds ``0..videos-1``,
  evaluation on held-out seeds ``10000..10000+test_videos-1`` (mIoU per class);
* ``--data DAVIS_ROOT``: DAVIS-2016 foreground/background (2 classes), trained on the sequences
  outside ``--fold`` (default 0), scored on the held-out fold (mean IoU of the foreground).

The backbone is frozen: its features are computed once (:func:`compute_feature_cache`), so each
iteration only costs the head.  Deterministic given ``--seed`` and one thread.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from segtrack.errors import InputError
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

SYNTH_SIZE = (240, 320)
DAVIS_SIZE = (256, 448)
TEST_SEED0 = 10000


def synthetic_video(seed: int, num_frames: int = 24, size: tuple[int, int] = SYNTH_SIZE):
    """The multi-class synthetic video of ``seed`` used for training and evaluation."""
    from segtrack.data.synthetic import make_video

    rng = np.random.default_rng([seed, 7])
    return make_video(
        seed, semantic=True, num_objects=int(rng.integers(2, 5)), num_frames=num_frames,
        height=size[0], width=size[1], background=str(rng.choice(["photo", "texture"])),
    )


def synthetic_frames(seeds, num_frames: int = 24) -> tuple[list[np.ndarray], list[np.ndarray],
                                                           list[tuple[int, int]]]:
    """(images, labels, (video, frame) index) over the videos of ``seeds``."""
    imgs, labs, idx = [], [], []
    for v, s in enumerate(seeds):
        for t, (im, lab) in enumerate(synthetic_video(int(s), num_frames)):
            imgs.append(im)
            labs.append(lab)
            idx.append((v, t))
    return imgs, labs, idx


def davis_frames(root: str, names: list[str], step: int = 2, size=DAVIS_SIZE):
    from segtrack.eval.datasets import load_davis

    imgs, labs, idx = [], [], []
    for v, seq in enumerate(load_davis(root, sequences=names)):
        for t in range(0, len(seq), step):
            lab = seq.read_labels(t)
            if lab is None:
                continue
            im = cv2.resize(seq.read_image(t), (size[1], size[0]), interpolation=cv2.INTER_AREA)
            imgs.append(im)
            labs.append(cv2.resize(lab, (size[1], size[0]), interpolation=cv2.INTER_NEAREST))
            idx.append((v, t))
    return imgs, labs, idx


def confusion(pred: np.ndarray, gt: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(gt.ravel().astype(np.int64) * n + pred.ravel(), minlength=n * n).reshape(
        n, n)


def iou_from_confusion(conf: np.ndarray) -> np.ndarray:
    """Per-class IoU (NaN for classes absent from both prediction and ground truth)."""
    tp = np.diag(conf).astype(float)
    denom = conf.sum(0) + conf.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, tp / np.maximum(denom, 1), np.nan)


@torch.no_grad()
def evaluate(model, images, labels, num_classes: int) -> dict:
    from segtrack.models.semseg import predict_probs

    conf = np.zeros((num_classes, num_classes), np.int64)
    for im, lab in zip(images, labels, strict=True):
        pred = predict_probs(model, im).argmax(0)
        conf += confusion(pred, lab, num_classes)
    iou = iou_from_confusion(conf)
    return {"mIoU": float(np.nanmean(iou)), "per_class_IoU": [None if np.isnan(v) else float(v)
                                                             for v in iou]}


def main(argv: list[str] | None = None) -> int:
    from segtrack.models.semseg import SemSeg, SemSegConfig, save_semseg

    p = argparse.ArgumentParser(
        prog="segtrack train semseg",
        description="Train the per-frame segmenter of semseg (also the keyframe segmenter of evs "
                    "and the base of lmanet) on synthetic videos or a DAVIS-style data set; the "
                    "backbone stays frozen.")
    add_common_args(p,
                    data_help="DAVIS-style training root, or synthetic (multi-class synthetic "
                              "videos)")
    p.add_argument("--videos", type=int, default=80, help="synthetic training videos")
    p.add_argument("--test-videos", type=int, default=20, help="held-out synthetic videos")
    p.add_argument("--batch", type=int, default=6, help="frames per iteration")
    p.add_argument("--lr", type=float, default=2e-3, help="learning rate")
    p.add_argument("--name", default=None,
                   help="weight file stem (default: semseg-synth or semseg-davis)")
    add_static_args(p, "frames", 1500, 0.3)
    a = p.parse_args(argv)
    photos = check_static_args(a, "frames")
    if photos and a.data == "synthetic":
        raise InputError("--static: photographs have one object class; use them with DAVIS data")
    rng, out, t0 = start_run(a.seed, a.out)
    if a.data == "synthetic":
        from segtrack.data.synthetic import KINDS

        names = ["background", *KINDS]
        imgs, labs, _ = synthetic_frames(range(a.videos))
        test_imgs, test_labs, _ = synthetic_frames(range(TEST_SEED0, TEST_SEED0 + a.test_videos))
        name = a.name or "semseg-synth"
        data_desc = {"data": "synthetic semantic", "train_seeds": f"0..{a.videos - 1}",
                     "test_seeds": f"{TEST_SEED0}..{TEST_SEED0 + a.test_videos - 1}"}
    else:
        from segtrack.eval.datasets import load_davis

        root = check_data_root(a.data)
        all_names = [s.name for s in load_davis(root)]
        fold = 0 if a.fold is None else a.fold
        train_names, held = split_sequences(all_names, fold, a.folds)
        names = ["background", "object"]
        imgs, labs, _ = davis_frames(str(root), train_names)
        test_imgs, test_labs, _ = davis_frames(str(root), held, step=5)
        name = a.name or "semseg-davis"
        data_desc = {"data": str(a.data), "fold": fold, "folds": a.folds, "held_out": held}
    cfg = SemSegConfig(num_classes=len(names), class_names=names)
    model = SemSeg(cfg)
    print(f"{len(imgs)} training frames, {len(test_imgs)} test frames ({time.time() - t0:.0f}s)")
    key = hashlib.sha256(json.dumps([str(a.data), data_desc]).encode()).hexdigest()[:16]
    feats = load_or_build(a.cache, key, lambda: {"feats": compute_feature_cache(
        model.backbone, imgs, len(imgs), (4, 8, 16, 32), progress=not a.quiet)})["feats"]
    # the loss is computed at half the input resolution (labels nearest-downsampled)
    labels = torch.from_numpy(np.stack([lab[::2, ::2] for lab in labs])).long()
    n_static, s_feats, s_labels = 0, None, None
    if photos:  # frame 1 of a two-frame photograph clip at the DAVIS frame size, label 1
        from segtrack.data.static import ClipParams, StaticClipMaker

        maker = StaticClipMaker(photos, ClipParams(frames=2, canvas=DAVIS_SIZE,
                                                   p_distractor=a.static_distractors))
        s_masks: list[np.ndarray] = []

        def frames():
            for i in range(a.static_frames):
                clip = maker.numbered(i, STATIC_SEED)
                s_masks.append(clip.masks[1][::2, ::2])
                yield clip.frames[1]

        s_feats = compute_feature_cache(model.backbone, frames(), a.static_frames,
                                        (4, 8, 16, 32), progress=not a.quiet, desc="static")
        s_labels = torch.from_numpy(np.stack(s_masks)).long()
        n_static = len(s_masks)
        data_desc["static"] = {"dirs": a.static, "frames": n_static,
                               "static_iters": a.static_iters, "ratio": a.static_ratio,
                               "distractors": a.static_distractors}
    print(f"features cached ({time.time() - t0:.0f}s)")
    head = model.head.train()
    opt = torch.optim.AdamW(head.parameters(), lr=a.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.lr, total_steps=a.iters,
                                                pct_start=0.1)
    n = len(imgs)
    log: list = []
    ck = Checkpointer(out, a.checkpoint_every)
    start = 0
    if a.resume:
        st = ck.restore(rng, head, opt, sched)
        log, start = st["log"], int(st["step"])

    def state() -> dict:
        return ck.training_state(head, opt, sched, log=log)

    for it in range(start, a.iters):
        if not n_static:
            b = torch.from_numpy(rng.choice(n, size=a.batch, replace=False))
            f = {s: feats[s][b].float() for s in feats}
            y = labels[b]
        else:  # photograph frames mixed in (all of them during the static stage)
            vb, sb = (torch.from_numpy(v) for v in mixed_batch(rng, n, n_static, a.batch, it, a))
            f = {s: torch.cat([feats[s][vb], s_feats[s][sb]]).float() for s in feats}
            y = torch.cat([labels[vb], s_labels[sb]])
        if rng.random() < 0.5:  # horizontal flip of features and labels
            f = {s: v.flip(-1) for s, v in f.items()}
            y = y.flip(-1)
        logits = F.interpolate(head(f), size=y.shape[-2:], mode="bilinear", align_corners=False)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if it % 200 == 0 or it == a.iters - 1:
            log.append((it, loss.item()))
            if not a.quiet:
                print(f"iter {it} loss {loss.item():.4f} ({time.time() - t0:.0f}s)", flush=True)
        ck.maybe_save(it + 1, state, rng)
    ck.save(a.iters, state(), rng)
    model.eval()
    metrics = evaluate(model, test_imgs, test_labs, cfg.num_classes)
    metrics["class_names"] = names
    print(json.dumps(metrics))
    wpath = out / f"{name}.pt"
    save_semseg(wpath, model)
    cmd = "segtrack train semseg " + " ".join(argv or [])
    write_manifest(out / f"{name}.manifest.json", [wpath], command=cmd, seed=a.seed,
                   iters=a.iters, batch=a.batch, lr=a.lr, metrics=metrics, loss_log=log,
                   train_seconds=time.time() - t0, **data_desc,
                   note="head only; the frozen ImageNet EfficientNet-Lite0 is not included")
    print(f"wrote {wpath}")
    return 0
