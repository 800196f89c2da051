"""``segtrack train flownet --variant s|c``: FlowNetS / FlowNetC on synthetic pairs with exact
flow (seed 002, "FlowNet: training"; :mod:`segtrack.data.flow_pairs`).

The pairs are made on the fly, pair ``i`` of a run a pure function of the seed: backgrounds are
frames of the DAVIS sequences outside ``--fold``, flying objects the photographs of ``--static``
outside the held-out photographs.  The loss is FlowNet's: the end-point error (EPE) at each
predicted resolution against the target flow divided by 20 and average-pooled to it, weighted
0.005 / 0.01 / 0.02 / 0.08 from stride 4 to stride 32.  Adam as FlowNet, but a one-cycle
schedule peaking at ``--lr`` for a CPU-sized budget (FlowNet: 1e-4 for 1.2M iterations).

At the end the EPE (pixels) on ``--test-pairs`` held-out pairs (held-out photographs over the
held-out fold's frames, another seed) is reported for the network and, in the same run, for
OpenCV's DIS at the ``ultrafast`` point the trackers use and at ``medium``.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F

from segtrack.errors import InputError
from segtrack.training.common import (
    Checkpointer,
    add_common_args,
    check_data_root,
    split_sequences,
    start_run,
    write_manifest,
)

LOSS_WEIGHTS = (0.005, 0.01, 0.02, 0.08)  # strides 4, 8, 16, 32 (FlowNet's flow2..flow5)
TEST_SEED = 777  # the held-out pairs' seed (independent of --seed)


def multiscale_epe(preds, target: torch.Tensor) -> torch.Tensor:
    """FlowNet's loss: sum_s w_s * mean EPE(pred_s, avgpool(target / 20)); ``target`` (B, 2,
    H, W) in pixels."""
    from segtrack.models.flownet import FLOW_DIV

    t = target / FLOW_DIV
    loss = target.new_zeros(())
    for w, p in zip(LOSS_WEIGHTS, preds):
        k = t.shape[-1] // p.shape[-1]
        tt = F.avg_pool2d(t, k) if k > 1 else t
        loss = loss + w * torch.linalg.vector_norm(p - tt, dim=1).mean()
    return loss


def epe(flow: np.ndarray, gt: np.ndarray) -> float:
    """Mean end-point error in pixels of (H, W, 2) flows."""
    return float(np.linalg.norm(flow - gt, axis=2).mean())


def pair_sources(data: str, fold: int, folds: int, static: list[str]):
    """((train backgrounds, train photographs), (test backgrounds, test photographs))."""
    from segtrack.data.static import load_static_sets, split_static
    from segtrack.eval.datasets import load_davis

    root = check_data_root(data)
    seqs = load_davis(root)
    train_names, held = split_sequences([s.name for s in seqs], fold, folds)

    def frames(names):
        return [str(f) for s in seqs if s.name in names for f in s.frames]

    photos_train, photos_test = split_static(load_static_sets(static))
    return (frames(train_names), photos_train), (frames(held), photos_test), held


def evaluate_epe(estimators: dict, maker, n: int) -> dict:
    """EPE (pixels) and ms per pair of every estimator ``name -> calc(cur, prev)`` on the
    ``n`` test pairs of ``maker`` (seed :data:`TEST_SEED`)."""
    errs: dict[str, list[float]] = {k: [] for k in estimators}
    secs = dict.fromkeys(estimators, 0.0)
    mags = []
    for i in range(n):
        q = maker.pair(i, TEST_SEED)
        mags.append(float(np.linalg.norm(q.flow, axis=2).mean()))
        for name, calc in estimators.items():
            t = time.perf_counter()
            f = calc(q.cur, q.prev)
            secs[name] += time.perf_counter() - t
            errs[name].append(epe(f, q.flow))
    out = {name: {"epe": float(np.mean(e)), "ms_per_pair": 1000 * secs[name] / max(n, 1)}
           for name, e in errs.items()}
    out["pairs"] = n
    out["mean_flow_px"] = float(np.mean(mags))
    return out


def dis_calc(preset: str):
    """``calc(cur, prev)`` of OpenCV's DIS at ``preset`` on RGB frames (grey inside)."""
    from segtrack.video.optical_flow import DISFlow

    return DISFlow(preset).calc


def main(argv: list[str] | None = None) -> int:
    from segtrack.data.flow_pairs import FlowPairMaker, PairParams
    from segtrack.models.flownet import FlowNet, FlowNetConfig, FlowNetEstimator, save_flownet

    p = argparse.ArgumentParser(
        prog="segtrack train flownet",
        description="Train FlowNetS or FlowNetC on synthetic image pairs with exact flow: "
                    "photographed objects flying over DAVIS frames.")
    add_common_args(p, data_help="DAVIS-style root whose frames are the backgrounds")
    p.add_argument("--variant", default="c", choices=("s", "c"),
                   help="s: stacked frames; c: two towers and a correlation layer (default)")
    p.add_argument("--static", action="append", default=[], metavar="DIR", required=True,
                   help="photographs with object masks: the flying objects (repeatable)")
    p.add_argument("--batch", type=int, default=8, help="pairs per iteration")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
    p.add_argument("--width", type=int, default=24, help="channels of the first layer")
    p.add_argument("--size", default="128x192", help="training pair size HxW (default 128x192)")
    p.add_argument("--batchnorm", action="store_true",
                   help="batch normalisation in the encoder (FlowNet-BN)")
    p.add_argument("--test-pairs", type=int, default=200, help="held-out pairs scored at the end")
    p.add_argument("--threads", type=int, default=1, help="CPU threads for training")
    p.add_argument("--name", default=None, help="weight file stem (default: flownet-s|c)")
    a = p.parse_args(argv)
    if a.iters < 1 or a.batch < 1:
        raise InputError("--iters and --batch must be at least 1")
    try:
        size = tuple(int(v) for v in a.size.lower().split("x"))
        if len(size) != 2 or min(size) < 32 or size[0] % 32 or size[1] % 32:
            raise ValueError
    except ValueError:
        raise InputError(f"--size {a.size}: expected HxW, multiples of 32 (e.g. 128x192)") \
            from None
    fold = 0 if a.fold is None else a.fold
    rng, out, t0 = start_run(a.seed, a.out, threads=a.threads)
    (bg_tr, ph_tr), (bg_te, ph_te), held = pair_sources(a.data, fold, a.folds, a.static)
    maker = FlowPairMaker(bg_tr, ph_tr, PairParams(size=size))
    test_maker = FlowPairMaker(bg_te, ph_te, PairParams(size=(240, 320)))
    model = FlowNet(FlowNetConfig(variant=a.variant, width=a.width, batchnorm=a.batchnorm))
    opt = torch.optim.Adam(model.parameters(), lr=a.lr, betas=(0.9, 0.999))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.lr, total_steps=a.iters,
                                                pct_start=0.05)
    log: list = []
    ck = Checkpointer(out, a.checkpoint_every)
    start = 0
    if a.resume:
        st = ck.restore(rng, model, opt, sched)
        log, start = st["log"], int(st["step"])

    def load(it: int):
        return maker.batch(range(it * a.batch, (it + 1) * a.batch), a.seed)

    def state() -> dict:
        return ck.training_state(model, opt, sched, log=log)

    model.train()
    pool = ThreadPoolExecutor(max_workers=1)
    nxt = pool.submit(load, start) if start < a.iters else None
    run = 0.0
    for it in range(start, a.iters):
        prev, cur, flow = nxt.result()
        if it + 1 < a.iters:
            nxt = pool.submit(load, it + 1)
        x_prev = torch.from_numpy(prev).permute(0, 3, 1, 2).float()
        x_cur = torch.from_numpy(cur).permute(0, 3, 1, 2).float()
        y = torch.from_numpy(flow).permute(0, 3, 1, 2)
        loss = multiscale_epe(model(x_cur, x_prev), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        run = loss.item() if it == start else 0.98 * run + 0.02 * loss.item()
        if it % 200 == 0 or it == a.iters - 1:
            log.append((it, run))
            if not a.quiet:
                print(f"iter {it} loss {run:.4f} ({time.time() - t0:.0f}s)", flush=True)
        ck.maybe_save(it + 1, state, rng)
    pool.shutdown()
    ck.save(a.iters, state(), rng)
    model.eval()
    net = FlowNetEstimator(model)
    metrics = evaluate_epe({f"flownet-{a.variant}": net.calc,
                            "dis-ultrafast": dis_calc("ultrafast"),
                            "dis-medium": dis_calc("medium")}, test_maker, a.test_pairs)
    print(json.dumps(metrics))
    name = a.name or f"flownet-{a.variant}"
    wpath = out / f"{name}.pt"
    save_flownet(wpath, model)
    write_manifest(out / f"{name}.manifest.json", [wpath],
                   command="segtrack train flownet " + " ".join(argv or []), seed=a.seed,
                   iters=a.iters, batch=a.batch, lr=a.lr, size=list(size), variant=a.variant,
                   width=a.width, batchnorm=a.batchnorm, metrics=metrics, loss_log=log,
                   train_seconds=time.time() - t0,
                   data=str(a.data), fold=fold, held_out=held, static=a.static,
                   test_pairs={"size": [240, 320], "seed": TEST_SEED,
                               "backgrounds": "held-out fold", "objects": "held-out photographs"},
                   note="synthetic pairs with exact flow; backgrounds from the DAVIS frames "
                        "outside the held-out fold")
    print(f"wrote {wpath}")
    return 0
