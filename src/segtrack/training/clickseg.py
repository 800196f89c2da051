"""``segtrack train clickseg``: the click/box-to-mask network (:mod:`segtrack.models.clickseg`)
on photographs with object masks and DAVIS frames.

RITM's training scheme, at CPU scale:

* a sample is a square crop around the object (its box jittered, 1.2-2.0 x its size, the
  whole frame in a quarter of the click samples) - what the network sees at test time after
  a box or a zoom-in;
* half of the samples are *box* samples (the box jittered by 6 % of its sides, drawn into the
  box map), half *click* samples: the first click drawn near the object's interior point
  farthest from its boundary, sometimes a few random extra positive and negative clicks;
* **iterative sampling**: for 0-3 rounds (random per batch) the current network predicts
  without gradients, the clicker adds one click per sample on its largest error and the
  prediction becomes the previous-mask input; then the training step;
* loss: binary cross-entropy + soft IoU at crop resolution; AdamW, the backbone at a tenth of
  the learning rate, cosine decay; BatchNorm statistics frozen.

Every fifth photograph of each set and kind is held out (:func:`segtrack.eval.interactive.
heldout_photos`) and is what ``segtrack bench-segment`` reports; DAVIS frames come from the
sequences outside ``--fold`` (default fold 0, so the held-out DAVIS figures of the trackers
started from a box stay honest).  Budgets are iterations; resumable with ``--resume``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from segtrack.errors import InputError
from segtrack.interactive.clicker import next_click
from segtrack.interactive.crops import crop, guide_maps, region_around, whole_image
from segtrack.training.common import (
    Checkpointer,
    LossLog,
    add_common_args,
    check_data_root,
    split_sequences,
    start_run,
    write_manifest,
)

NAME = "clickseg"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="segtrack train clickseg",
        description="Train the box- and click-to-mask network on photographs with object "
                    "masks and DAVIS frames.")
    add_common_args(p, data_required=False)
    p.set_defaults(iters=3000, fold=0)
    p.add_argument("--static", action="append", default=[], metavar="DIR", required=True,
                   help="photographs with object masks (repeatable); every fifth of each set "
                        "and kind is held out for evaluation")
    p.add_argument("--davis-step", type=int, default=4, help="every Nth DAVIS frame")
    p.add_argument("--batch", type=int, default=8, help="samples per iteration")
    p.add_argument("--lr", type=float, default=5e-4, help="learning rate")
    p.add_argument("--backbone-lr", type=float, default=0.1,
                   help="backbone learning rate as a fraction of --lr")
    p.add_argument("--size", type=int, default=320, help="crop side the network sees")
    p.add_argument("--box-share", type=float, default=0.5, help="share of box samples")
    p.add_argument("--max-rounds", type=int, default=3,
                   help="most iterative click rounds before a training step")
    p.add_argument("--threads", type=int, default=2, help="torch threads for this run")
    p.add_argument("--stop-at", type=int, default=0,
                   help="stop after this iteration of the --iters schedule and write the "
                        "weights (continue later with --resume and without --stop-at)")
    p.add_argument("--eval-images", type=int, default=0,
                   help="at the end, score this many held-out photographs (0: none)")
    return p


# ------------------------------------------------------------------------------------------
# data
def load_items(static_dirs: list[str], data: str | None, fold: int | None, folds: int,
               step: int, quiet: bool) -> tuple[list, dict]:
    """[(RGB uint8, bool mask, source)] of the training photographs and DAVIS frames; a
    description."""
    from tqdm import tqdm

    from segtrack.data.static import load_static_sets, read_static
    from segtrack.eval.interactive import heldout_photos

    photos, held = heldout_photos(load_static_sets(static_dirs))
    items = [(*read_static(s), s.source) for s in tqdm(photos, desc="photographs",
                                                       disable=quiet)]
    desc: dict = {"photos": len(photos), "photos_held_out": len(held), "static": static_dirs}
    if data:
        from segtrack.eval.datasets import load_davis
        from segtrack.io.sources import read_image

        root = check_data_root(data)
        seqs = {s.name: s for s in load_davis(root)}
        train, held_seq = split_sequences(list(seqs), fold, folds)
        n = 0
        for name in tqdm(train, desc="DAVIS", disable=quiet):
            seq = seqs[name]
            for f in range(0, len(seq.frames), step):
                lab = seq.read_labels(f)
                if lab is None or not (lab > 0).any():
                    continue
                items.append((read_image(seq.frames[f]), lab > 0, "davis"))
                n += 1
        desc.update(davis=str(data), davis_frames=n, davis_step=step, fold=fold, folds=folds,
                    davis_train=train, davis_held_out=held_seq)
    return items, desc


#: share of the samples drawn from each source (others share what is left equally): the
#: 80 COCO categories more than the two people sets, which hold 1,000 of the 1,650 photographs
SOURCE_SHARE = {"coco-mval": 0.4, "ccp-persons": 0.15, "human-seg": 0.15, "davis": 0.3}


def source_weights(sources: list[str]) -> np.ndarray:
    """Sampling probability of each item so that each source gets its :data:`SOURCE_SHARE`
    (renormalised over the sources present; unknown sources share equally)."""
    names = sorted(set(sources))
    known = sum(SOURCE_SHARE.get(n, 0.0) for n in names)
    rest = [n for n in names if n not in SOURCE_SHARE]
    share = {n: SOURCE_SHARE.get(n, 0.0) for n in names}
    for n in rest:
        share[n] = max(1.0 - known, 0.25) / len(rest)
    count = {n: sources.count(n) for n in names}
    w = np.array([share[s] / count[s] for s in sources])
    return w / w.sum()


class Sampler:
    """Training crops, their ground truth and their initial guidance (box, clicks)."""

    def __init__(self, items: list, size: int, box_share: float, expand: float) -> None:
        self.items, self.S, self.box_share, self.expand = items, size, box_share, expand
        self.p = source_weights([it[2] for it in items])

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, tuple | None,
                                                      list]:
        """(crop RGB uint8 (S, S, 3), ground truth bool (S, S), box (x0, y0, x1, y1) in crop
        pixels or None, clicks [(x, y, positive)] in crop pixels)."""
        S = self.S
        for _ in range(50):
            img, m, _ = self.items[int(rng.choice(len(self.items), p=self.p))]
            if rng.random() < 0.5:
                img, m = img[:, ::-1], m[:, ::-1]
            ys, xs = np.nonzero(m)
            x0, x1, y0, y1 = xs.min(), xs.max() + 1.0, ys.min(), ys.max() + 1.0
            w, h = x1 - x0, y1 - y0
            box = None
            if rng.random() < self.box_share:
                j = rng.normal(0.0, 0.06, 4)
                b = (x0 + j[0] * w, y0 + j[2] * h, x1 + j[1] * w, y1 + j[3] * h)
                if b[2] - b[0] < 2 or b[3] - b[1] < 2:
                    continue
                r = region_around(*b, self.expand * math.exp(rng.normal(0.0, 0.08)))
                s = S / r.side
                box = ((b[0] - r.x0) * s, (b[1] - r.y0) * s, (b[2] - r.x0) * s,
                       (b[3] - r.y0) * s)
            elif rng.random() < 0.25:
                r = whole_image(m.shape)
            else:
                j = rng.normal(0.0, 0.1, 4)
                r = region_around(x0 + j[0] * w, y0 + j[1] * h, x1 + j[2] * w, y1 + j[3] * h,
                                  rng.uniform(1.2, 2.0))
            gt = crop(m, r, S, fill=0.0) > 0.5
            if gt.sum() < 16:
                continue
            x = _colour_jitter(rng, crop(img, r, S))
            clicks = [] if box is not None else self._initial_clicks(rng, gt)
            return x, gt, box, clicks
        raise InputError("training data: no usable object masks")

    @staticmethod
    def _initial_clicks(rng: np.random.Generator, gt: np.ndarray) -> list:
        c = next_click(gt, None, rng, spread=0.5)
        clicks = [(c.x, c.y, True)]
        if rng.random() < 0.3:  # a few random extra clicks, as RITM's multi-point sampler
            inner = cv2.erode(gt.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
            ring = (cv2.dilate(gt.astype(np.uint8), np.ones((41, 41), np.uint8)) > 0) & ~(
                cv2.dilate(gt.astype(np.uint8), np.ones((11, 11), np.uint8)) > 0)
            for where, n, pos in ((inner, int(rng.integers(0, 3)), True),
                                  (ring, int(rng.integers(0, 4)), False)):
                yy, xx = np.nonzero(where)
                for k in rng.choice(len(yy), size=min(n, len(yy)), replace=False):
                    clicks.append((float(xx[k]), float(yy[k]), pos))
        return clicks


def _colour_jitter(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    """Brightness, contrast and saturation jitter of +-20 %."""
    f = x.astype(np.float32)
    mean = f.mean()
    f = (f - mean) * rng.uniform(0.8, 1.2) + mean * rng.uniform(0.8, 1.2)
    grey = f.mean(axis=2, keepdims=True)
    f = grey + (f - grey) * rng.uniform(0.8, 1.2)
    return np.clip(f, 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------------------
# training
def _losses(logits: torch.Tensor, gt: torch.Tensor) -> dict[str, torch.Tensor]:
    bce = F.binary_cross_entropy_with_logits(logits, gt)
    p = torch.sigmoid(logits)
    inter = (p * gt).sum((1, 2, 3))
    union = (p + gt - p * gt).sum((1, 2, 3)).clamp_min(1.0)
    soft_iou = 1.0 - (inter / union).mean()
    return {"bce": bce, "iou": soft_iou, "total": bce + soft_iou}


def _batch_guides(S: int, radius: float, clicks: list, prev: np.ndarray | None,
                  boxes: list) -> torch.Tensor:
    return torch.from_numpy(np.stack([
        guide_maps(S, clicks[i], radius, None if prev is None else prev[i], boxes[i])
        for i in range(len(clicks))]))


def main(argv: list[str] | None = None) -> int:
    from tqdm import tqdm

    from segtrack.models.clickseg import ClickSegConfig, ClickSegNet, save_clickseg

    a = build_parser().parse_args(argv)
    if a.batch < 1 or a.iters < 1 or a.size < 64 or a.davis_step < 1 or a.max_rounds < 0 \
            or a.stop_at < 0:
        raise InputError("--batch, --iters, --davis-step must be >= 1, --size >= 64, "
                         "--max-rounds and --stop-at >= 0")
    if not 0.0 <= a.box_share <= 1.0:
        raise InputError(f"--box-share {a.box_share}: must be between 0 and 1")
    rng0, out, t0 = start_run(a.seed, a.out, a.threads)
    items, desc = load_items(a.static, a.data, a.fold, a.folds, a.davis_step, a.quiet)
    cfg = ClickSegConfig(size=a.size)
    net = ClickSegNet(cfg, pretrained=True)
    back = list(net.backbone.parameters())
    ids = {id(q) for q in back}
    rest = [q for q in net.parameters() if id(q) not in ids]
    opt = torch.optim.AdamW([{"params": rest, "lr": a.lr},
                             {"params": back, "lr": a.lr * a.backbone_lr}], weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: min(1.0, (i + 1) / 100) * 0.5 * (1 + math.cos(math.pi * i / a.iters)))
    ck = Checkpointer(out, a.checkpoint_every)
    history: list = []
    start = 0
    if a.resume:
        st = ck.restore(rng0, net, opt, sched)
        history, start = st["history"], int(st["step"])
    sampler = Sampler(items, cfg.size, a.box_share, cfg.box_expand)
    S, radius = cfg.size, cfg.disk_radius
    bar = tqdm(total=a.iters, initial=start, desc="clickseg", disable=a.quiet)
    log = LossLog(bar, a.quiet, history)
    net.train()
    end = min(a.iters, a.stop_at) if a.stop_at > 0 else a.iters
    for step in range(start, end):
        rng = np.random.default_rng([a.seed, step])  # the batch depends on (seed, step) only
        smp = [sampler.sample(rng) for _ in range(a.batch)]
        x = torch.from_numpy(np.stack([s[0] for s in smp])).permute(0, 3, 1, 2).float() / 255
        gt_np = np.stack([s[1] for s in smp])
        boxes = [s[2] for s in smp]
        clicks = [list(s[3]) for s in smp]
        prev = None
        rounds = int(rng.choice(a.max_rounds + 1, p=_round_probs(a.max_rounds)))
        for _ in range(rounds):  # iterative sampling: clicks on the current errors
            with torch.no_grad():
                prob = torch.sigmoid(net(x, _batch_guides(S, radius, clicks, prev, boxes)))
            prev = prob[:, 0].numpy()
            for i in range(a.batch):
                c = next_click(gt_np[i], prev[i] > 0.5, rng, spread=0.3)
                if c is not None:
                    clicks[i].append((c.x, c.y, c.positive))
        g = _batch_guides(S, radius, clicks, prev, boxes)
        losses = _losses(net(x, g), torch.from_numpy(gt_np[:, None].astype(np.float32)))
        opt.zero_grad()
        losses["total"].backward()
        opt.step()
        sched.step()
        log.update(step + 1, losses, rounds=rounds)
        ck.maybe_save(step + 1, lambda: ck.training_state(net, opt, sched, history=history),
                      None)
    bar.close()
    ck.save(max(end, start), ck.training_state(net, opt, sched, history=history))
    net.eval()
    wpath = save_clickseg(net, out / f"{NAME}.pt")
    metrics: dict = {}
    if a.eval_images:
        metrics = evaluate_heldout(str(wpath), a.static, a.eval_images, a.quiet)
        print(json.dumps(metrics))
    cmd = "segtrack train clickseg " + " ".join(argv if argv is not None else sys.argv[3:])
    write_manifest(out / f"{NAME}.manifest.json", [wpath], method=NAME,
                   command=cmd.replace(" --resume", ""), seed=a.seed,
                   iterations=max(end, start), schedule_iterations=a.iters, args=vars(a),
                   config=cfg.__dict__,
                   train_minutes=round((time.time() - t0) / 60, 2), metrics=metrics,
                   final_losses=history[-1] if history else None, **desc)
    print(f"wrote {wpath}")
    return 0


def _round_probs(n: int) -> list[float]:
    """No iterative round in 40 % of the batches, 1..n rounds equally likely otherwise."""
    if n == 0:
        return [1.0]
    return [0.4] + [0.6 / n] * n


def evaluate_heldout(weights: str, static_dirs: list[str], limit: int, quiet: bool) -> dict:
    """Box mIoU and NoC@85/90 of ``weights`` on the first ``limit`` held-out photographs."""
    from segtrack.eval.interactive import run_benchmark

    return run_benchmark(static_dirs, None, (), ["clickseg"], limit=limit, quiet=quiet,
                         weights=weights)
