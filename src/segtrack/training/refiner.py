"""``segtrack train evs``: the EVS Refiner (seed 001, §3.3.5) behind a frozen segmenter.

Training samples are recorded by running the real EVS pipeline (:class:`EVSPipeline`, operating
point ``--D``, ``--S``, W and R on) with the ``semseg`` segmenter (``--base-weights``) over the
training videos: at every non-keyframe the Refiner's inputs (frame, warped low-level features,
warped probabilities, IAM attention) are stored with the ground truth.  The Refiner is then
trained on the Eq. 3.4 blend: loss = cross-entropy of ``M o P_refiner + (1 - M) o P_warped``
against the ground truth, so it only learns where the IAM lets it act.

``--data synthetic`` (multi-class, seeds 0..videos-1) or a DAVIS-2016 root (2 classes, ``--fold``
held out; the DAVIS refiner is used by the ``evs`` tracker around any base method).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from segtrack.training.common import add_common_args, start_run, write_manifest


class _Recorder:
    """Stands in for RefinerRunner inside EVSPipeline and records the refiner inputs."""

    def __init__(self, runner) -> None:
        self.runner = runner
        self.samples: list[tuple] = []
        self.current_small = None

    def lowlevel(self, small):
        return self.runner.lowlevel(small)

    def image_branch(self, small):
        self.current_small = small
        return None

    warp_features = staticmethod(lambda f, fl: _warp_features(f, fl))

    def refine(self, img_feats, feats_w, p_w, att):
        self.samples.append((self.current_small.copy(), feats_w.astype(np.float16),
                             p_w.astype(np.float16), att.astype(np.float16)))
        return p_w


def _warp_features(f, fl):
    from segtrack.models.refiner import RefinerRunner

    return RefinerRunner.warp_features(f, fl)


def main(argv: list[str] | None = None) -> int:
    from segtrack.models.refiner import Refiner, RefinerRunner, save_refiner
    from segtrack.models.semseg import load_semseg, predict_probs, resolve_weights
    from segtrack.training.lmanet import _sequences
    from segtrack.video.evs import EVSConfig, EVSPipeline, resize_to

    p = argparse.ArgumentParser(
        prog="segtrack train evs",
        description="Train the EVS refiner (R of --evs D,S,W,R) behind the frozen semseg "
                    "segmenter, on synthetic videos or a DAVIS-style data set.")
    add_common_args(p,
                    data_help="DAVIS-style training root, or synthetic (multi-class synthetic "
                              "videos)")
    p.add_argument("--base-weights", default="",
                   help="semseg weights (default: the ones shipped with segtrack)")
    p.add_argument("--D", type=float, default=0.5,
                   help="downscale of the keyframe segmentation (default: 0.5)")
    p.add_argument("--S", type=int, default=5,
                   help="a keyframe every S frames (default: 5)")
    p.add_argument("--videos", type=int, default=30,
                   help="synthetic training videos (with --data synthetic)")
    p.add_argument("--test-videos", type=int, default=0,
                   help="held-out synthetic videos scored at the end")
    p.add_argument("--batch", type=int, default=4, help="samples per iteration")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate")
    p.add_argument("--name", default=None,
                   help="weight file stem (default: evs-refiner-synth or evs-refiner-davis)")
    a = p.parse_args(argv)
    rng, out, t0 = start_run(a.seed, a.out)
    # DAVIS: full 480p frames, every frame (the tracker's operating conditions)
    train, _, tag, desc = _sequences(a, size=(0, 0), step=1)
    seg = load_semseg(resolve_weights(a.base_weights, f"semseg-{tag}"))
    net = Refiner(seg.cfg.num_classes)
    rec = _Recorder(RefinerRunner(net))
    targets = []
    for frames in train:
        pipe = EVSPipeline(lambda s: predict_probs(seg, s).transpose(1, 2, 0),
                           EVSConfig(D=a.D, S=a.S, W=True, R=True), rec)
        for t, (im, lab) in enumerate(frames):
            n = len(rec.samples)
            if t == 0:
                pipe.start(im)
            else:
                pipe.step(im)
            if len(rec.samples) > n:
                targets.append(resize_to(lab, pipe.small_size, nearest=True))
        pipe.close()
    print(f"{len(rec.samples)} refiner samples recorded ({time.time() - t0:.0f}s)", flush=True)
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=a.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(a.iters, 1))

    def t4(x):
        return torch.from_numpy(np.stack(x).astype(np.float32)).permute(0, 3, 1, 2)

    log = []
    for it in range(a.iters):
        idx = rng.choice(len(rec.samples), size=min(a.batch, len(rec.samples)), replace=False)
        smalls, feats, pws, atts = zip(*[rec.samples[i] for i in idx], strict=True)
        img = torch.from_numpy(np.stack(smalls)).permute(0, 3, 1, 2).float() / 255.0
        pw = t4(pws)
        att = t4([x[..., None] for x in atts])
        p_ref = net(net.image(img), t4(feats), pw, att)
        p = att * p_ref + (1 - att) * pw  # Eq. 3.4
        y = torch.from_numpy(np.stack([targets[i] for i in idx])).long()
        loss = F.nll_loss(torch.log(p.clamp_min(1e-6)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if it % 100 == 0 or it == a.iters - 1:
            log.append((it, loss.item()))
            if not a.quiet:
                print(f"iter {it} loss {loss.item():.4f} ({time.time() - t0:.0f}s)", flush=True)
    name = a.name or f"evs-refiner-{tag}"
    wpath = out / f"{name}.pt"
    save_refiner(wpath, net.eval())
    write_manifest(out / f"{name}.manifest.json", [wpath],
                   command="segtrack train evs " + " ".join(argv or []), seed=a.seed, D=a.D,
                   S=a.S, iters=a.iters, samples=len(rec.samples), loss_log=log,
                   train_seconds=time.time() - t0, **desc,
                   note="Refiner only; its frozen EfficientNet-Lite0 stem is not included")
    print(f"wrote {wpath}")
    return 0
