"""``segtrack train lmanet --base semseg``: LMANet's two-step training (seed 001, §4.3.5).

Step 1 (``--iters1``): the Memory (key/value projections) and Fusion layers are trained from
scratch with the encoder and the decoder frozen.  Step 2 (``--iters2``): the modules and the
decoder are trained jointly (the encoder - frozen backbone + neck - stays frozen, so its outputs
are cached once).  Clips of ``memory + 1`` consecutive frames; the loss is the cross-entropy of
the last frame.  Adam, lr 2e-4 in step 2 as the thesis (step 1 uses ``--lr1``).

``--base`` must be a method built on the encoder-decoder segmenter: ``semseg`` (the only one
whose encoder/decoder split segtrack knows).  ``--data synthetic`` (multi-class synthetic videos,
same training seeds as ``segtrack train semseg``) or a DAVIS-2016 root (2 classes, ``--fold``
held out).  At the end the held-out set is scored with and without memory (mIoU per class and
the flicker measure of :func:`segtrack.eval.evs_study.flicker`).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from segtrack.errors import InputError
from segtrack.training.common import add_common_args, start_run, write_manifest


def _sequences(a, size: tuple[int, int] | None = None, step: int = 2
               ) -> tuple[list, list, str, dict]:
    """(train sequences, test sequences) as lists of (images, labels) lists; DAVIS frames are
    resized to ``size`` (default: semseg's DAVIS training size; ``(0, 0)`` = keep 480p) and
    every ``step``-th frame is taken."""
    from segtrack.training.semseg import TEST_SEED0, synthetic_video

    if a.data == "synthetic":
        train = [list(synthetic_video(s)) for s in range(a.videos)]
        test = [list(synthetic_video(s)) for s in range(TEST_SEED0, TEST_SEED0 + a.test_videos)]
        last = TEST_SEED0 + a.test_videos - 1
        return train, test, "synth", {"data": "synthetic semantic",
                                      "train_seeds": f"0..{a.videos - 1}",
                                      "test_seeds": f"{TEST_SEED0}..{last}"}
    from segtrack.eval.datasets import load_davis
    from segtrack.training.common import check_data_root, split_sequences
    from segtrack.training.semseg import DAVIS_SIZE

    root = check_data_root(a.data)
    fold = 0 if a.fold is None else a.fold
    tr, held = split_sequences([s.name for s in load_davis(root)], fold, a.folds)

    hw = DAVIS_SIZE if size is None else size

    def load(names):
        out = []
        for seq in load_davis(root, sequences=names):
            frames = []
            for t in range(0, len(seq), step):
                im, lab = seq.read_image(t), seq.read_labels(t)
                if hw[0] > 0:
                    im = cv2.resize(im, (hw[1], hw[0]), interpolation=cv2.INTER_AREA)
                    lab = cv2.resize(lab, (hw[1], hw[0]), interpolation=cv2.INTER_NEAREST)
                frames.append((im, lab))
            out.append(frames)
        return out

    return load(tr), load(held), "davis", {"data": str(a.data), "fold": fold,
                                           "held_out": held, "frame_step": step}


def main(argv: list[str] | None = None) -> int:
    from segtrack.eval.evs_study import evaluate_video_model
    from segtrack.models.lmanet import LMAConfig, LMANet, save_lmanet
    from segtrack.models.semseg import load_semseg, resolve_weights

    p = argparse.ArgumentParser(
        prog="segtrack train lmanet",
        description="Train LMANet: memory attention modules on top of the semseg segmenter, "
                    "first alone, then together with its decoder, on synthetic videos or a "
                    "DAVIS-style data set.")
    add_common_args(p,
                    data_help="DAVIS-style training root, or synthetic (multi-class synthetic "
                              "videos)")
    p.add_argument("--base", default="semseg",
                   help="the per-frame segmenter to build on (only semseg)")
    p.add_argument("--base-weights", default="",
                   help="its weights (default: the ones shipped with segtrack)")
    p.add_argument("--memory", type=int, default=3, help="past frames kept in memory")
    p.add_argument("--radius", type=int, default=3, help="correlation radius in cells of 8 pixels")
    p.add_argument("--iters1", type=int, default=600,
                   help="iterations of step 1 (the memory modules alone)")
    p.add_argument("--iters2", type=int, default=900,
                   help="iterations of step 2 (with the decoder)")
    p.add_argument("--lr1", type=float, default=1e-3, help="learning rate of step 1")
    p.add_argument("--lr2", type=float, default=2e-4, help="learning rate of step 2")
    p.add_argument("--batch", type=int, default=4, help="clips per iteration")
    p.add_argument("--videos", type=int, default=40,
                   help="synthetic training videos (with --data synthetic)")
    p.add_argument("--test-videos", type=int, default=20,
                   help="held-out synthetic videos scored at the end")
    p.add_argument("--name", default=None,
                   help="weight file stem (default: lmanet-synth or lmanet-davis)")
    a = p.parse_args(argv)
    if a.resume:
        raise InputError("--resume: this trainer keeps no checkpoint (a run takes under an "
                         "hour); run it again without --resume")
    if a.base.strip().lower() != "semseg":
        raise InputError(f"--base {a.base}: LMANet needs an encoder-decoder segmenter; "
                         "supported: semseg")
    rng, out, t0 = start_run(a.seed, a.out)
    train, test, tag, desc = _sequences(a)
    base_path = resolve_weights(a.base_weights, f"semseg-{tag}")
    seg = load_semseg(base_path)
    model = LMANet(seg, LMAConfig(memory=a.memory, radius=a.radius))
    head = seg.head
    # cache the (frozen) encoder outputs of every training frame
    # (--cache: the backbone feature file written by `segtrack train semseg --cache`, same
    # videos in the same order, so the backbone is not run again)
    cached = torch.load(a.cache, weights_only=False) if a.cache and Path(a.cache).is_file() \
        else None
    encs, skips, labels = [], [], []
    pos = 0
    with torch.no_grad():
        for frames in train:
            if cached is not None:
                sl = slice(pos, pos + len(frames))
                e, s = head.eval().encode({k: v[sl].float() for k, v in cached.items()})
                pos += len(frames)
            else:
                x = torch.from_numpy(np.stack([im for im, _ in frames])).permute(0, 3, 1, 2)
                e, s = head.eval().encode(seg.features(x.float() / 255.0))
            encs.append(e.half())
            skips.append(s.half())
            # the loss is computed at half resolution (labels nearest-downsampled)
            labels.append(torch.from_numpy(np.stack([lab[::2, ::2] for _, lab in frames])).long())
    print(f"{len(train)} training videos encoded ({time.time() - t0:.0f}s)", flush=True)
    L = a.memory + 1
    log = []

    def batch():
        es, ss, ys = [], [], []
        for _ in range(a.batch):
            v = int(rng.integers(len(encs)))
            n = encs[v].shape[0]
            t = int(rng.integers(min(L - 1, n - 1), n))
            lo = max(0, t - L + 1)
            idx = list(range(lo, t + 1))
            idx = [idx[0]] * (L - len(idx)) + idx  # pad short clips by repeating the first
            es.append(encs[v][idx].float())
            ss.append(skips[v][idx].float())
            ys.append(labels[v][t])
        return torch.stack(es), torch.stack(ss), torch.stack(ys)

    def run(step: int, iters: int, params, lr: float) -> None:
        opt = torch.optim.Adam(params, lr=lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(iters, 1))
        for it in range(iters):
            e, s, y = batch()
            logits = model.decode_clip(e, s)
            logits = F.interpolate(logits, size=y.shape[-2:], mode="bilinear",
                                   align_corners=False)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if it % 100 == 0 or it == iters - 1:
                log.append((step, it, loss.item()))
                if not a.quiet:
                    print(f"step {step} iter {it} loss {loss.item():.4f} "
                          f"({time.time() - t0:.0f}s)", flush=True)

    for prm in head.parameters():
        prm.requires_grad_(False)
    model.lma.train()
    run(1, a.iters1, list(model.lma.parameters()), a.lr1)  # step 1: memory + fusion only
    dec = list(head.dec.parameters()) + list(head.cls.parameters())
    for prm in dec:
        prm.requires_grad_(True)
    head.dec.train()
    run(2, a.iters2, list(model.lma.parameters()) + dec, a.lr2)  # step 2: jointly with decoder
    model.eval()
    from segtrack.models.semseg import SemSeg, SemSegConfig

    doc = torch.load(base_path, map_location="cpu", weights_only=False)
    fresh = SemSeg(SemSegConfig(**doc["config"]))  # the untouched single-frame baseline
    fresh.head.load_state_dict(doc["head"])
    fresh.eval()
    metrics = {"baseline": evaluate_video_model(fresh, test, memory=False),
               "lmanet": evaluate_video_model(model, test, memory=True)}
    print(json.dumps({k: {m: v[m] for m in ("mIoU", "flicker")} for k, v in metrics.items()}))
    name = a.name or f"lmanet-{tag}"
    wpath = out / f"{name}.pt"
    save_lmanet(wpath, model)
    write_manifest(out / f"{name}.manifest.json", [wpath],
                   command="segtrack train lmanet " + " ".join(argv or []), seed=a.seed,
                   base_weights=str(base_path), memory=a.memory, radius=a.radius,
                   iters1=a.iters1, iters2=a.iters2, metrics=metrics, loss_log=log,
                   train_seconds=time.time() - t0, **desc,
                   note="neck+decoder+LMA modules; the frozen ImageNet backbone is not included")
    print(f"wrote {wpath}")
    return 0
