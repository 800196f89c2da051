"""Speed study of the inference runtime (BENCHMARKS.md, "Real time on the CPU").

    python3 scripts/bench_runtime.py --root ../shared/data/davis2016-train --out runs/speed

1. engine comparison: the RTS per-frame backbone (EfficientNet-Lite0 to stride 16, 288x288
   crop) in eager torch, ONNX Runtime and OpenVINO (when installed), 1 and 2 threads;
2. every method on the same sequences with ``runtime=torch`` and ``runtime=onnx`` (fps, init
   seconds, per-stage milliseconds, held-out J&F), ``flow`` in the same run as the baseline;
3. multi-object scaling: 1, 2, 3, 5 objects (``--counts``; the first mask cut into vertical
   strips, so the objects do not overlap), fps against ``flow`` with the same objects.

Writes one JSON per step into ``--out``; prints a markdown table of each.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def engines(out: Path) -> list[dict]:
    import torch

    from segtrack.models.backbones import build_backbone
    from segtrack.models.rts.infer import fuse_batchnorm
    from segtrack.runtime import OnnxModule

    bb = fuse_batchnorm(build_backbone("efficientnet-lite0", out_strides=(4, 8, 16),
                                       freeze_bn=True).eval())
    x = torch.rand(1, 3, 288, 288)
    with torch.no_grad():
        ref = bb(x)

    def timed(fn, n=40) -> float:
        for _ in range(5):
            fn()
        ts = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        return 1000 * float(np.median(ts))

    rows = []
    for th in (1, 2):
        torch.set_num_threads(th)
        with torch.no_grad():
            rows.append({"engine": "torch eager", "threads": th, "ms": timed(lambda: bb(x)),
                         "max_abs_diff": 0.0})
        m = OnnxModule(bb, "bench-lite0-s16", [x], ["image"], None, threads=th)
        o = m(x)
        d = max(float((o[k] - ref[k]).abs().max()) for k in ref)
        rows.append({"engine": "onnxruntime", "threads": th, "ms": timed(lambda m=m: m(x)),
                     "max_abs_diff": d})
        try:
            import openvino as ov

            core = ov.Core()
            comp = core.compile_model(str(m.path), "CPU", {"INFERENCE_NUM_THREADS": th,
                                                           "PERFORMANCE_HINT": "LATENCY"})
            req = comp.create_infer_request()
            xn = x.numpy()
            res = req.infer({0: xn})
            d = max(float(np.abs(np.asarray(v) - ref[k].numpy()).max())
                    for k, v in zip(sorted(ref), res.values()))
            rows.append({"engine": "openvino", "threads": th,
                         "ms": timed(lambda r=req, v=xn: r.infer({0: v})), "max_abs_diff": d})
        except ImportError:
            pass
    torch.set_num_threads(2)
    (out / "engines.json").write_text(json.dumps(rows, indent=1))
    print("| engine | threads | ms per 288x288 crop | max abs diff vs torch |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['engine']} | {r['threads']} | {r['ms']:.1f} | {r['max_abs_diff']:.1e} |")
    return rows


RUNS = [  # (label, method, init, params)
    ("flow", "flow", "mask", {}),
    ("rts", "rts", "mask", {"weights": "rts-fold0"}),
    ("rts box", "rts", "box", {"weights": "rts-fold0"}),
    ("lwl", "lwl", "mask", {"weights": "lwl-fold0"}),
    ("siammask", "siammask", "box", {}),
    ("siammask-2b", "siammask-2b", "box", {}),
    ("semseg", "semseg", "mask", {}),
    ("perframe", "perframe", "mask", {}),
    ("convlstm", "convlstm", "mask", {}),
    ("osvos", "osvos", "mask", {}),
    ("masktrack", "masktrack", "mask", {}),
    ("masktrack-flow", "masktrack-flow", "mask", {}),
    ("onavos", "onavos", "mask", {}),
    ("flow again", "flow", "mask", {}),
]


def methods(root: str, seqs: list[str], out: Path, only: list[str] | None,
            runtimes: tuple[str, ...] = ("torch", "onnx")) -> list[dict]:
    from segtrack.eval.runner import bench_davis

    rows = []
    for label, method, init, params in RUNS:
        if only and label not in only and method not in only:
            continue
        for rt in (runtimes if method != "flow" else ("-",)):
            p = dict(params)
            if rt != "-":
                p["runtime"] = rt
            s = bench_davis(root, method, init=init, sequences=seqs, params=p, quiet=True,
                            profile=True)
            row = {"label": label, "runtime": rt, "JF": s["JF"], "J": s["J_M"], "F": s["F_M"],
                   "fps": s["fps"], "init_s": s["init_seconds"], "stages_ms": s["stages_ms"],
                   "time": time.strftime("%H:%M:%S")}
            rows.append(row)
            print(json.dumps(row), flush=True)
            (out / "methods.json").write_text(json.dumps(rows, indent=1))
    return rows


def scaling(root: str, seq_name: str, out: Path, counts=(1, 2, 3, 5),
            methods: list[str] | None = None) -> list[dict]:
    import segtrack
    from segtrack.eval.datasets import load_davis

    seq = next(s for s in load_davis(root) if s.name == seq_name)
    gt = seq.read_labels(0) > 0
    xs = np.nonzero(gt.any(0))[0]
    rows = []
    for spec in methods or ("flow", "rts", "osvos", "siammask"):
        # "rts:near_scale=0;edges=0" = the method with parameter overrides (numbers as floats)
        method, _, rest = spec.partition(":")
        params: dict = {}
        for kv in filter(None, rest.split(";")):
            k, _, v = kv.partition("=")
            try:
                params[k] = float(v)
            except ValueError:
                params[k] = v
        for k in counts:
            edges = np.linspace(xs.min(), xs.max() + 1, k + 1).astype(int)
            objs = {}
            for i in range(k):
                m = gt.copy()
                m[:, : edges[i]] = False
                m[:, edges[i + 1]:] = False
                objs[i + 1] = m
            secs, n = 0.0, 0
            for res in segtrack.track_video(list(seq.frames), objects=objs, method=method,
                                            params=params):
                if res.frame.index > 0:
                    secs += res.seconds
                    n += 1
            rows.append({"method": spec, "objects": k, "fps": n / secs})
            print(json.dumps(rows[-1]), flush=True)
            (out / "scaling.json").write_text(json.dumps(rows, indent=1))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--sequences", default="bear,car-turn,flamingo,lucia,paragliding,stroller")
    ap.add_argument("--only", help="comma-separated labels of step 2")
    ap.add_argument("--steps", default="engines,methods,scaling")
    ap.add_argument("--runtimes", default="torch,onnx", help="runtimes of step 2")
    ap.add_argument("--scaling-methods", default="flow,rts,osvos,siammask",
                    help="methods of step 3, each with optional overrides: rts:near_scale=0")
    ap.add_argument("--counts", default="1,2,3,5", help="object counts of step 3")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    steps = a.steps.split(",")
    if "engines" in steps:
        engines(out)
    if "methods" in steps:
        methods(a.root, a.sequences.split(","), out, a.only.split(",") if a.only else None,
                tuple(a.runtimes.split(",")))
    if "scaling" in steps:
        scaling(a.root, a.sequences.split(",")[0], out, methods=a.scaling_methods.split(","),
                counts=tuple(int(c) for c in a.counts.split(",")))


if __name__ == "__main__":
    main()
