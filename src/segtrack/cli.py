"""The segtrack command line: track, segment, eval, bench, demo, methods, train, serve, ...

Errors in the user's input end the program with one line ``segtrack: error: ...`` and exit code 2;
they never show a traceback.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from segtrack.errors import InputError, SegtrackError


def _parse_box(text: str) -> tuple[float, float, float, float]:
    parts = [p for p in text.replace(" ", ",").split(",") if p]
    try:
        vals = tuple(float(p) for p in parts)
    except ValueError:
        raise InputError(f"--box '{text}': expected four numbers X,Y,W,H") from None
    if len(vals) != 4:
        raise InputError(f"--box '{text}': expected four numbers X,Y,W,H")
    return vals  # type: ignore[return-value]


def _parse_points(texts: list[str] | None) -> tuple[list[tuple[float, float]], list[int]]:
    """``--point X,Y[,L]`` options -> (points, labels); L is 1 (object, default) or 0."""
    pts, labs = [], []
    for text in texts or []:
        parts = [p for p in text.replace(" ", ",").split(",") if p]
        try:
            vals = [float(p) for p in parts]
        except ValueError:
            vals = []
        if len(vals) not in (2, 3) or (len(vals) == 3 and vals[2] not in (0.0, 1.0)):
            raise InputError(f"--point '{text}': expected X,Y or X,Y,1 (object) or X,Y,0 "
                             "(background)")
        pts.append((vals[0], vals[1]))
        labs.append(int(vals[2]) if len(vals) == 3 else 1)
    return pts, labs


def _split_names(text: str | None) -> list[str] | None:
    if not text:
        return None
    return [s.strip() for s in text.split(",") if s.strip()]


def _write_json(path: str | Path, data: Any, protected: list[Path] | None = None) -> None:
    from segtrack.io import atomic_write_bytes, guard_output

    guard_output(Path(path), protected or [])
    text = json.dumps(data, indent=2, default=_json_default) + "\n"
    atomic_write_bytes(Path(path), text.encode())


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o).__name__)


# -- EVS wrapper (issue 7) ---------------------------------------------------------------------
def _apply_evs(args: argparse.Namespace, params: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """``--evs D,S,W,R``: wrap ``--method`` (and its ``--param``s) in the ``evs`` method."""
    if not getattr(args, "evs", None):
        return args.method, params
    from segtrack.video.evs import parse_evs_spec

    spec = parse_evs_spec(args.evs)
    base_params = ";".join(f"{k}={v}" for k, v in params.items())
    return "evs", {"base": args.method, "base_params": base_params, **spec}
# -- end EVS wrapper ---------------------------------------------------------------------------


# -- track -------------------------------------------------------------------------------------
def cmd_track(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from segtrack.api import track_video
    from segtrack.device import resolve_device
    from segtrack.io import BoxesWriter, MaskWriter, OverlayWriter, guard_output, open_source
    from segtrack.params import parse_param_args
    from segtrack.trackers.registry import load_tracker

    device = resolve_device(args.device)
    params = parse_param_args(args.param)
    args.method, params = _apply_evs(args, params)  # issue 7: --evs
    tracker = load_tracker(args.method, device=device, **params)  # validates method and params
    source_arg: Any = args.source
    if isinstance(source_arg, str) and source_arg.isdigit() and not Path(source_arg).exists():
        source_arg = int(source_arg)
    source = open_source(source_arg)
    protected = [Path(args.source)] if not isinstance(source_arg, int) else []
    if args.mask:
        protected.append(Path(args.mask))
    if getattr(source, "paths", None):
        protected.extend(Path(p) for p in source.paths)
    if args.out is None:
        stem = Path(str(args.source)).stem or "webcam"
        out = Path(f"{stem}_segtrack")
    else:
        out = Path(args.out)
    guard_output(out, protected)
    overlay = Path(args.overlay) if args.overlay else None
    if overlay is not None:
        guard_output(overlay, protected)
    box = _parse_box(args.box) if args.box else None

    # validate the objects against the frame size before anything is written
    from segtrack.io import read_mask_input
    from segtrack.trackers.base import check_box

    frame_size = source.frame_size
    if frame_size is None:
        raise InputError(f"cannot read a frame from '{args.source}'")
    total = getattr(source, "num_frames", None)
    if args.frame < 0 or (total is not None and args.frame >= total):
        raise InputError(f"--frame {args.frame} is outside the source's {total} frames")
    pts, labs = _parse_points(args.point)
    if args.mask and (box is not None or pts):
        raise InputError("--mask cannot be combined with --box or --point: start the object "
                         "from a mask, or from a box and/or clicks")
    if not args.mask and box is None and not pts:
        raise InputError("say what to track on --frame: --mask, --box or --point")
    objects: dict[int, Any] = {}
    if args.mask:
        objects = {k: {"mask": m} for k, m in read_mask_input(args.mask, frame_size).items()}
    if box is not None or pts:
        from segtrack.interactive import check_points

        spec: dict[str, Any] = {}
        if box is not None:
            spec["box"] = check_box(box, frame_size, what="--box")
        if pts:
            check_points(pts, labs, frame_size, what="--point")
            spec.update(points=pts, labels=labs)
        objects[1] = spec

    out_existed = out.exists()
    masks = boxes = ov = None
    n = 0
    seconds = 0.0
    ok = False
    bar = tqdm(total=total, desc=f"track {args.method}", unit="frame", disable=args.quiet)
    wall0 = time.perf_counter()
    try:
        masks = MaskWriter(out, protected=protected)
        boxes = BoxesWriter(out / "boxes.json", protected=protected)
        for res in track_video(
            source, objects=objects, method=args.method, frame=args.frame, device=device,
            params=params,
        ):
            if overlay is not None and ov is None:
                ov = OverlayWriter(overlay, fps=getattr(source, "fps", None) or 25.0,
                                   frame_size=res.frame.size, protected=protected)
            masks.write(res.frame.name, res.labels)
            boxes.add(res.frame.index, res.frame.name, res.predictions)
            if ov is not None:
                ov.write(res.frame.image, res.predictions)
            n += 1
            seconds += res.seconds
            bar.update(1)
        ok = True
    finally:
        bar.close()
        if ok or n > 0:  # keep what is complete (an interrupted run leaves whole frames)
            if boxes is not None:
                boxes.close()
            if ov is not None:
                ov.close()
        else:  # failed before the first frame: leave nothing behind
            if boxes is not None:
                boxes.abort()
            if ov is not None:
                ov.abort()
            if not out_existed and out.is_dir():
                shutil.rmtree(out, ignore_errors=True)
    wall = time.perf_counter() - wall0
    from segtrack.api import init_record, speed_report

    init = init_record(args.frame, mask=args.mask, box=box, points=pts, labels=labs,
                       objects=objects)
    meta = {"source": str(args.source), "frames": n, "track_seconds": seconds,
            "fps": n / max(seconds, 1e-9), "wall_seconds": wall,
            "wall_fps": n / max(wall, 1e-9), "init_frame": args.frame, "init": init,
            "params": tracker.params_dict()}
    _write_json(out / "run.json", meta, protected)
    ov_path = ov.path if ov is not None else None
    print(f"wrote {n} masks and boxes.json to {out}/"
          + (f", overlay video to {ov_path}" if ov_path else ""))
    print(speed_report(n, seconds, wall))
    return 0


# -- eval --------------------------------------------------------------------------------------
def cmd_eval(args: argparse.Namespace) -> int:
    from segtrack.eval import runner

    seqs = _split_names(args.sequences)
    if args.dataset == "davis":
        from segtrack.eval.davis_metrics import format_table

        summary = runner.evaluate_davis_results(
            args.root, args.results, sequences=seqs, quiet=args.quiet
        )
        print(format_table(summary))
    elif args.dataset == "ope":
        summary = runner.evaluate_ope_results(args.root, args.results, sequences=seqs)
        print(runner.format_flat(summary))
    else:
        summary = runner.evaluate_vot_results(args.root, args.results, sequences=seqs)
        print(runner.format_flat(summary))
    if args.json:
        _write_json(args.json, summary, [Path(args.root), Path(args.results)])
    return 0


# -- bench -------------------------------------------------------------------------------------
def cmd_bench(args: argparse.Namespace) -> int:
    from segtrack.device import resolve_device
    from segtrack.eval import runner
    from segtrack.eval.davis_metrics import format_table
    from segtrack.params import parse_param_args

    device = resolve_device(args.device)
    method, params = _apply_evs(args, parse_param_args(args.param))  # issue 7: --evs
    if args.dataset == "ope":
        return _bench_ope(args, method, params, device)
    summary = runner.bench_davis(
        args.root,
        method,
        init=args.init or "mask",
        sequences=_split_names(args.sequences),
        device=device,
        params=params,
        out_dir=args.out,
        quiet=args.quiet,
        engine=args.engine,  # issue 9: --engine ray
        workers=args.workers,
        address=args.address,
        profile=args.profile,
    )
    print(format_table(summary))
    print(
        f"method {method} (init {summary['init']}): J&F {summary['JF']:.4f}  "
        f"tracking {summary['fps']:.1f} fps over {summary['frames']} frames  "
        f"init {summary['init_seconds']:.2f} s per video (first tracked frame after "
        f"{summary['cold_start_seconds']:.2f} s, model loading included)  "
        f"peak memory {summary['peak_memory_mb']:.0f} MiB"
    )
    if "stages_ms" in summary:
        print("ms per frame: " + "  ".join(f"{k} {v:.1f}" for k, v in summary["stages_ms"].items()))
    if args.json:
        _write_json(args.json, summary, [Path(args.root)])
    return 0


def _bench_ope(args: argparse.Namespace, method: str, params: dict, device: str) -> int:
    from segtrack.eval.box_bench import bench_ope, format_ope

    if args.init == "mask":
        raise InputError("--init mask: the box benchmark starts every tracker from the first "
                         "box")
    if args.engine != "local" or args.profile:
        raise InputError("--engine ray and --profile: only with --dataset davis")
    summary = bench_ope(args.root, method, sequences=_split_names(args.sequences), device=device,
                        params=params, out_dir=args.out, quiet=args.quiet)
    print(format_ope(summary))
    if args.json:
        _write_json(args.json, summary, [Path(args.root)])
    return 0


# -- batch / trax (issue 9) ---------------------------------------------------------------------
def cmd_batch(args: argparse.Namespace) -> int:
    from segtrack.batch import format_summary, run_batch

    summary = run_batch(
        args.manifest, args.out, engine=args.engine, address=args.address,
        workers=args.workers, retries=args.retries, device=args.device, rle=args.rle,
        quiet=args.quiet,
    )
    print(format_summary(summary))
    if args.json:
        _write_json(args.json, summary, [Path(args.manifest)])
    return 1 if summary["failed"] else 0


def cmd_trax(args: argparse.Namespace) -> int:
    from segtrack.integrations.trax import run_trax_server
    from segtrack.params import parse_param_args

    return run_trax_server(args.method, params=parse_param_args(args.param), device=args.device,
                           region=args.region, log=args.log)
# -- end batch / trax ----------------------------------------------------------------------------


# -- serve (issue 8) ----------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from segtrack.web.app import serve
    except ImportError as e:
        raise InputError(f"segtrack serve needs the web extra (pip install 'segtrack[web]'): {e}"
                         ) from None
    return serve(args.source, project=args.project, host=args.host, port=args.port,
                 allow=args.allow, max_upload_mb=args.max_upload_mb, device=args.device,
                 segment_weights=args.segment_weights or "")
# -- end serve ----------------------------------------------------------------------------------


# -- demo --------------------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace) -> int:
    from segtrack.demo import run_demo

    run_demo(out=Path(args.out), method=args.method, quiet=args.quiet)
    return 0


def methods_table() -> list[str]:
    """The lines ``segtrack methods`` prints: one aligned row per method, then what the columns
    mean and which method to start from."""
    from segtrack.trackers.registry import best_method, method_catalogue

    header = ("METHOD", "STARTS FROM", "LEARNS THE OBJECT", "SPEED", "HELD-OUT QUALITY")
    entries = method_catalogue()
    rows = [(e["name"], ", ".join(e["inits"]), e["learns"], e["speed"], e["quality"])
            for e in entries]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    indent = " " * (widths[0] + 2)

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    lines = [line(header)]
    for row, e in zip(rows, entries):
        lines += [line(row), indent + e["summary"]]
    lines += [
        "",
        "Speed: tracked frames per second against flow on the same CPU (flow: about 60 at 480p "
        "on 2 cores).",
        "Quality: J&F (1.0 = perfect) on DAVIS-2016 train videos the method did not train on: "
        "the mean",
        "of three held-out folds where measured, else fold 0 alone (which runs higher than "
        "three folds).",
        "A box or clicks are turned into the first mask, except by siammask and siammask-2b, "
        "which track the box.",
        f"Most accurate from a mask: {best_method('mask')}; from a box: {best_method('box')} "
        "(docs/methods.md, BENCHMARKS.md).",
    ]
    return lines


def cmd_methods(args: argparse.Namespace) -> int:
    print("\n".join(methods_table()))
    return 0


#: methods trained by another method's trainer
_TRAINED_BY = {
    "siammask-2b": "segtrack train siammask --variant 2b",
    "convlstm-1stage": "segtrack train convlstm (it trains convlstm-1stage too)",
    "perframe": "segtrack train convlstm (it trains perframe too)",
}


def cmd_train(args: argparse.Namespace) -> int:
    from segtrack.trackers.registry import tracker_class
    from segtrack.training import TRAINERS, run_training

    trainable = ", ".join(sorted(TRAINERS))
    if not args.method:
        raise InputError(f"say which method to train: {trainable} (segtrack train --help)")
    key = args.method.strip().lower()
    if key in _TRAINED_BY:
        raise InputError(f"method '{args.method}' is trained by {_TRAINED_BY[key]}")
    if key not in TRAINERS:  # e.g. clickseg is not a tracker
        try:
            learns = getattr(tracker_class(args.method), "learns", False)
        except InputError:
            raise InputError(f"unknown method '{args.method}'; trainable: {trainable}") from None
        if not learns:
            raise InputError(f"method '{args.method}' has no learned weights: nothing to train; "
                             f"trainable: {trainable}")

    return int(run_training(args.method, list(args.rest or [])) or 0)


# -- segment -----------------------------------------------------------------------------------
def cmd_segment(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np

    from segtrack.device import resolve_device
    from segtrack.interactive import Segmenter
    from segtrack.io import atomic_write_bytes, guard_output, read_mask_input
    from segtrack.io.sources import read_image
    from segtrack.params import parse_param_args

    image = read_image(args.image)
    H, W = image.shape[:2]
    pts, labs = _parse_points(args.point)
    box = _parse_box(args.box) if args.box else None
    prev = None
    protected = [Path(args.image)]
    if args.mask:
        protected.append(Path(args.mask))
        masks = read_mask_input(args.mask, (H, W))
        if len(masks) != 1:
            raise InputError(f"--mask '{args.mask}': holds {len(masks)} objects; give the mask "
                             "of one object")
        prev = next(iter(masks.values()))
    if box is None and not pts and prev is None:
        raise InputError("nothing to segment: give --box, --point or --mask")
    if pts:
        from segtrack.interactive import check_points

        check_points(pts, labs, (H, W), what="--point")
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise InputError(f"--out '{args.out}': must be a .png file")
    guard_output(out, protected)
    seg = Segmenter(device=resolve_device(args.device), **parse_param_args(args.param))
    mask = seg.segment(image, box=box, points=pts or None, labels=labs or None, mask=prev)
    ok, png = cv2.imencode(".png", mask.astype(np.uint8) * 255)
    if not ok:  # pragma: no cover - OpenCV cannot fail on a uint8 image
        raise InputError(f"--out '{args.out}': cannot encode the mask")
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, png.tobytes())
    area = int(mask.sum())
    print(f"wrote {out} ({area} object pixels, {100.0 * area / (H * W):.1f} % of the image)")
    return 0


def cmd_bench_segment(args: argparse.Namespace) -> int:
    from segtrack.device import resolve_device
    from segtrack.eval.interactive import run_benchmark
    from segtrack.params import parse_param_args

    if not args.static and not args.davis:
        raise InputError("give --static (held-out photographs) and/or --davis (first frames)")
    methods = _split_names(args.methods) or ["clickseg", "grabcut", "box"]
    if args.davis_step < 0:
        raise InputError(f"--davis-step {args.davis_step}: must be >= 0")
    params = parse_param_args(args.param)
    res = run_benchmark(args.static or [], args.davis, _split_names(args.sequences) or [],
                        methods, limit=args.limit, max_clicks=args.max_clicks,
                        quiet=args.quiet, device=resolve_device(args.device),
                        weights=params.pop("weights", ""), params=params,
                        davis_step=args.davis_step, rts_weights=args.rts_weights or "")
    for name, r in res.items():
        for m, v in r["box_to_mask"].items():
            print(f"{name:7s} box->mask {m:9s} mIoU {v['mIoU']:.4f}  {v['ms']:.0f} ms/image  "
                  f"({v['images']} images)")
        if "clicks" in r:
            c = r["clicks"]
            print(f"{name:7s} clicks    NoC@85 {c['NoC@85']:.2f}  NoC@90 {c['NoC@90']:.2f}  "
                  f"mIoU@1 {c['mIoU@1']:.4f}  {c['ms_per_click']:.0f} ms/click")
    if args.json:
        _write_json(args.json, res)
    return 0


# -- make-clips ---------------------------------------------------------------------------------
def _parse_size(text: str) -> tuple[int, int]:
    """``WxH`` -> (H, W)."""
    parts = text.lower().replace(" ", "").split("x")
    try:
        w, h = (int(v) for v in parts)
    except ValueError:
        raise InputError(f"--size '{text}': expected WIDTHxHEIGHT, e.g. 640x360") from None
    return h, w


def _parse_range(text: str, what: str) -> tuple[int, int]:
    parts = [v for v in text.replace(" ", "").split(",") if v]
    try:
        vals = [int(v) for v in parts]
    except ValueError:
        vals = []
    if len(vals) == 1:
        vals = vals * 2
    if len(vals) != 2:
        raise InputError(f"{what} '{text}': expected MIN,MAX, e.g. 3,8")
    return vals[0], vals[1]


def cmd_make_clips(args: argparse.Namespace) -> int:
    from segtrack.data.multi import MultiParams, write_multi_set

    t0 = time.perf_counter()
    if args.kind == "box":
        return _make_box_clips(args, t0)
    params = MultiParams(frames=args.frames, size=_parse_size(args.size),
                         objects=_parse_range(args.objects, "--objects"))
    meta = write_multi_set(args.out, args.static, args.davis, count=args.count, seed=args.seed,
                           params=params, overwrite=args.overwrite, quiet=args.quiet,
                           objects=args.photos)
    objs = [o for v in meta["videos"].values() for o in v["objects"].values()]
    late = sum(o["first_frame"] > 0 for o in objs)
    leave = sum(bool(o["leaves"]) for o in objs)
    w, h = meta["size"]
    print(f"wrote {meta['count']} clips of {meta['frames']} frames ({w}x{h}, {len(objs)} "
          f"objects: {late} entering late, {leave} leaving the frame) to {args.out} in "
          f"{time.perf_counter() - t0:.0f} s")
    return 0
def _make_box_clips(args: argparse.Namespace, t0: float) -> int:
    from segtrack.data.box_clips import BoxParams, write_box_set

    lo, hi = _parse_range(args.frames, "--frames")
    params = BoxParams(frame_range=(lo, hi), size=_parse_size(args.size),
                       objects=_parse_range(args.objects, "--objects"))
    meta = write_box_set(args.out, args.static, args.davis, count=args.count, seed=args.seed,
                         params=params, overwrite=args.overwrite, quiet=args.quiet,
                         objects=args.photos)
    frames = sum(v["frames"] for v in meta["videos"].values())
    attrs: dict[str, int] = {}
    for v in meta["videos"].values():
        for a in v["attributes"]:
            attrs[a] = attrs.get(a, 0) + 1
    w, h = params.size[1], params.size[0]
    print(f"wrote {meta['count']} clips, {frames} frames ({w}x{h}) to {args.out} in "
          f"{time.perf_counter() - t0:.0f} s; clips per attribute: "
          + ", ".join(f"{k} {n}" for k, n in sorted(attrs.items())))
    return 0


# -- end make-clips -----------------------------------------------------------------------------


_METHOD_HELP = "tracking method (default: flow; segtrack methods lists them)"
_DEVICE_HELP = "cpu (default) or cuda: where the learned methods run"
_PARAM_HELP = "a method parameter, e.g. --param scale=0.5 (repeatable)"
_QUIET_HELP = "no progress bars"


def _train_description() -> str:
    from segtrack.training import TRAINERS

    return ("Train the learned weights of a method. Trainable: " + ", ".join(sorted(TRAINERS))
            + " (clickseg is the network that turns a box or clicks into a first mask; "
            "evs trains its refiner; onavos starts from the osvos weights; siammask-2b is "
            "siammask --variant 2b; convlstm also trains convlstm-1stage and perframe). "
            "segtrack train METHOD --help lists a method's options.")


def _clip_set_args(sp: argparse.ArgumentParser, count: int) -> None:
    """The inputs and output of a make-clips set."""
    sp.add_argument("--static", action="append", metavar="DIR", required=True,
                    help="photograph sets, e.g. static-masks (repeatable); only their "
                         "held-out part is used")
    sp.add_argument("--davis", metavar="DIR", required=True,
                    help="DAVIS-2016 train folder whose frames become the backgrounds")
    sp.add_argument("--out", required=True,
                    help="output folder (must not exist or be empty, see --overwrite)")
    sp.add_argument("--count", type=int, default=count,
                    help=f"number of clips (default: {count})")


def _clip_set_options(sp: argparse.ArgumentParser, photos_help: str) -> None:
    sp.add_argument("--photos", choices=("heldout", "training"), default="heldout",
                    help="cut the objects from the held-out photographs " + photos_help)
    sp.add_argument("--overwrite", action="store_true",
                    help="replace an existing set written by make-clips")
    sp.add_argument("--quiet", action="store_true", help=_QUIET_HELP)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="segtrack",
        description="Track objects through videos by segmentation: a mask, a rotated box and an "
                    "axis-aligned box per object and frame.")
    p.add_argument("--version", action="version", version="segtrack 0.1.0")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND",
                           help="segtrack COMMAND --help shows its options")

    def command(name: str, text: str, **kw: Any) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=text, description=kw.pop("description", text[0].upper()
                                                                  + text[1:] + "."), **kw)

    t = command("track", "track objects through a video, image folder or webcam")
    t.add_argument("source", help="video file, folder of frames, or webcam index")
    t.add_argument("--mask", help="PNG mask of the object(s) on --frame; value k = object k")
    t.add_argument("--box", help="X,Y,W,H box of the object on --frame")
    t.add_argument("--point", action="append", metavar="X,Y[,L]",
                   help="a click on the object (L=1, default) or on the background (L=0) on "
                        "--frame; repeatable, with or without --box")
    t.add_argument("--frame", type=int, default=0,
                   help="index of the frame the mask, box or clicks are on (default: 0)")
    t.add_argument("--method", default="flow", help=_METHOD_HELP)
    t.add_argument("--out", help="output folder for masks, boxes.json and run.json (default: "
                                 "SOURCE_segtrack)")
    t.add_argument("--overlay", help="write an overlay video to this .mp4 file")
    t.add_argument("--device", default="cpu", help=_DEVICE_HELP)
    t.add_argument("--param", action="append", metavar="KEY=VALUE", help=_PARAM_HELP)
    t.add_argument("--quiet", action="store_true", help=_QUIET_HELP)
    t.add_argument("--evs", metavar="D,S,W,R",
                   help="run --method only on every S-th frame at downscale D, carry the masks "
                        "between with optical flow (W=1) and refine them (R=1)")
    t.set_defaults(func=cmd_track)

    e = command("eval", "score saved results against a benchmark's ground truth")
    e.add_argument("--dataset", choices=["davis", "ope", "vot"], required=True,
                   help="layout and measures of the benchmark")
    e.add_argument("--root", required=True, help="dataset root folder")
    e.add_argument("--results", required=True, help="results folder")
    e.add_argument("--sequences", help="comma-separated sequence names (default: all)")
    e.add_argument("--json", help="write the scores to this JSON file")
    e.add_argument("--quiet", action="store_true", help=_QUIET_HELP)
    e.set_defaults(func=cmd_eval)

    b = command("bench", "track and score a method on a benchmark")
    b.add_argument("--dataset", choices=["davis", "ope"], default="davis",
                   help="davis: masks scored by J&F (default); ope: box tracking from the "
                        "first box, scored by success AUC and precision (OTB, LaSOT, GOT-10k, "
                        "make-clips box sets, or DAVIS read as boxes)")
    b.add_argument("--root", required=True, help="dataset root folder")
    b.add_argument("--method", default="flow", help=_METHOD_HELP)
    b.add_argument("--init", choices=["mask", "box"],
                   help="davis: start each object from its first ground-truth mask (default) "
                        "or from that mask's box; ope: always the box")
    b.add_argument("--sequences", help="comma-separated sequence names (default: all)")
    b.add_argument("--json", help="write the scores to this JSON file")
    b.add_argument("--out", help="also write the results here (davis: masks; ope: one "
                                 "x,y,w,h line per frame in <sequence>.txt, scores beside)")
    b.add_argument("--device", default="cpu", help=_DEVICE_HELP)
    b.add_argument("--param", action="append", metavar="KEY=VALUE", help=_PARAM_HELP)
    b.add_argument("--quiet", action="store_true", help=_QUIET_HELP)
    b.add_argument("--evs", metavar="D,S,W,R",
                   help="run --method on keyframes only, as segtrack track --evs")
    b.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local: one sequence after the other (default); ray: one task per "
                        "sequence in parallel")
    b.add_argument("--workers", type=int, help="CPUs of the local Ray instance")
    b.add_argument("--address", help="Ray cluster address (default: start a local instance)")
    b.add_argument("--profile", action="store_true",
                   help="also report the time of each stage (decode, backbone, heads, ...)")
    b.set_defaults(func=cmd_bench)

    bt = command("batch", "track every video of a CSV/JSONL manifest")
    bt.add_argument("manifest", help="CSV or JSONL: video, mask/box, frame, method, params, name")
    bt.add_argument("--out", required=True, help="output folder (one sub-folder per video)")
    bt.add_argument("--engine", choices=["local", "ray"], default="local",
                    help="local: one video after the other (default); ray: one Ray task per "
                         "video")
    bt.add_argument("--address", help="Ray cluster address (default: start a local instance)")
    bt.add_argument("--workers", type=int, help="CPUs of the local Ray instance")
    bt.add_argument("--retries", type=int, default=2,
                    help="retries of a failed or killed task (default: 2)")
    bt.add_argument("--device", default="cpu", help=_DEVICE_HELP)
    bt.add_argument("--rle", action="store_true", help="also write masks.rle.json (COCO RLE)")
    bt.add_argument("--json", help="write the summary to this JSON file")
    bt.add_argument("--quiet", action="store_true", help=_QUIET_HELP)
    bt.set_defaults(func=cmd_batch)

    tx = command("trax", "serve a method over the TraX protocol (VOT toolkit)")
    tx.add_argument("--method", default="flow", help=_METHOD_HELP)
    tx.add_argument("--param", action="append", metavar="KEY=VALUE", help=_PARAM_HELP)
    tx.add_argument("--device", default="cpu", help=_DEVICE_HELP)
    tx.add_argument("--region", choices=["auto", "rectangle", "polygon", "mask"], default="auto",
                    help="region type reported to the client (auto: as the object was given)")
    tx.add_argument("--log", help="append a log of the session to this file")
    tx.set_defaults(func=cmd_trax)

    d = command("demo", "track the embedded demo clip and write an overlay video")
    d.add_argument("--out", default="segtrack-demo",
                   help="output folder (default: segtrack-demo)")
    d.add_argument("--method", default="flow", help=_METHOD_HELP)
    d.add_argument("--quiet", action="store_true", help=_QUIET_HELP)
    d.set_defaults(func=cmd_demo)

    sg = command("segment", "cut an object out of an image from a box or clicks")
    sg.add_argument("image", help="image file")
    sg.add_argument("--box", help="X,Y,W,H box around the object")
    sg.add_argument("--point", action="append", metavar="X,Y[,L]",
                    help="a click on the object (L=1, default) or on the background (L=0); "
                         "repeatable")
    sg.add_argument("--mask", help="the current mask to correct with the clicks (PNG)")
    sg.add_argument("--out", required=True, help="output mask (.png, 0/255)")
    sg.add_argument("--device", default="cpu", help=_DEVICE_HELP)
    sg.add_argument("--param", action="append", metavar="KEY=VALUE",
                    help="segmentation option (weights, zoom_in, threshold, edges, ...)")
    sg.set_defaults(func=cmd_segment)

    bs = command("bench-segment",
                 "score box- and click-to-mask segmentation (IoU, clicks needed)")
    bs.add_argument("--static", action="append", metavar="DIR",
                    help="photograph sets; their held-out part is scored (repeatable)")
    bs.add_argument("--davis", metavar="ROOT", help="also score the first frames of a DAVIS set")
    bs.add_argument("--sequences", help="comma-separated DAVIS sequences (default: all)")
    bs.add_argument("--davis-step", type=int, default=0,
                    help="score every Nth frame of each sequence (default: the first frame only)")
    bs.add_argument("--methods",
                    help="comma-separated among clickseg, grabcut, box (the filled box) and rts "
                         "(its own box-to-mask network); default: the first three")
    bs.add_argument("--rts-weights", help="weights of the rts method (default: its own)")
    bs.add_argument("--limit", type=int, default=0, help="score at most this many photographs")
    bs.add_argument("--max-clicks", type=int, default=20,
                    help="most clicks per image when counting the clicks needed (default: 20)")
    bs.add_argument("--param", action="append", metavar="KEY=VALUE",
                    help="segmentation option (weights, ...)")
    bs.add_argument("--device", default="cpu", help=_DEVICE_HELP)
    bs.add_argument("--json", help="write the scores to this JSON file")
    bs.add_argument("--quiet", action="store_true", help=_QUIET_HELP)
    bs.set_defaults(func=cmd_bench_segment)

    mc = command("make-clips", "write a fixed set of held-out benchmark clips",
                 description="Write a fixed set of benchmark clips: multi-object clips in "
                             "the DAVIS-2017 layout (segtrack bench --dataset davis --root "
                             "OUT) or box-tracking clips in the OTB layout (segtrack bench "
                             "--dataset ope --root OUT).")
    mc_kinds = mc.add_subparsers(dest="kind", required=True, metavar="KIND",
                                 help="multi: several similar objects at once; box: long "
                                      "box-tracking clips (both cut from the held-out "
                                      "photographs)")
    mm = mc_kinds.add_parser(
        "multi", help="several similar objects at once, cut from the held-out photographs",
        description="Clips of 3 to 8 people, or of several objects of one COCO category, cut "
                    "from the held-out part of the photograph sets (never used in training), "
                    "moving, scaling, crossing and hiding each other, entering late and "
                    "leaving, over panning views of DAVIS frames. Defaults: the fixed "
                    "held-out set.")
    _clip_set_args(mm, 12)
    mm.add_argument("--frames", type=int, default=48,
                    help="frames per clip, at least 12 (default: 48)")
    mm.add_argument("--size", default="640x360",
                    help="frame size WIDTHxHEIGHT (default: 640x360)")
    mm.add_argument("--objects", default="3,8",
                    help="fewest and most objects per clip, MIN,MAX (default: 3,8)")
    mm.add_argument("--seed", type=int, default=20000,
                    help="the set's seed: the same seed writes the same clips (default: 20000)")
    _clip_set_options(mm, "(default: a benchmark no model trained on) or from the "
                          "training ones (a validation set to tune a method's "
                          "settings on, not to report)")
    mm.set_defaults(func=cmd_make_clips)
    mb = mc_kinds.add_parser(
        "box", help="long box-tracking clips: one target among look-alikes, cut from the "
                    "held-out photographs",
        description="Long clips for box tracking, in the OTB layout (scored by segtrack bench "
                    "--dataset ope --root OUT): one target and one to four look-alikes cut "
                    "from the held-out photographs, over panning and zooming views of DAVIS "
                    "frames; targets from about 12 pixels to half the frame, fast motion and "
                    "blur, rotation, scale changes up to 4x, look-alikes crossing and hiding "
                    "the target, the target leaving the frame and coming back. Boxes are "
                    "those of the target's exact visible mask. Defaults: the fixed "
                    "development set.")
    _clip_set_args(mb, 10)
    mb.add_argument("--frames", default="300,1000",
                    help="fewest and most frames per clip, MIN,MAX (default: 300,1000)")
    mb.add_argument("--size", default="640x360",
                    help="frame size WIDTHxHEIGHT (default: 640x360)")
    mb.add_argument("--objects", default="2,5",
                    help="fewest and most objects per clip, the target included, MIN,MAX "
                         "(default: 2,5)")
    mb.add_argument("--seed", type=int, default=50000,
                    help="the set's seed: the same seed writes the same clips (default: 50000)")
    _clip_set_options(mb, "(default) or from the training ones (a validation set to "
                          "tune settings on)")
    mb.set_defaults(func=cmd_make_clips)

    m = command("methods", "list the tracking methods: what each starts from, learns, costs "
                           "and scores")
    m.set_defaults(func=cmd_methods)

    tr = command("train", "train a method's weights (segtrack train METHOD --help for its "
                          "options)", description=_train_description())
    tr.add_argument("method", nargs="?", help="the method to train")
    tr.add_argument("rest", nargs=argparse.REMAINDER, metavar="...",
                    help="the method's training options")
    tr.set_defaults(func=cmd_train)

    sv = command("serve", "browser workbench: annotate, track and export")
    sv.add_argument("source", nargs="?", help="video file or frame folder to open")
    sv.add_argument("--host", default="127.0.0.1",
                    help="address to listen on (default: 127.0.0.1, this computer only)")
    sv.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000)")
    sv.add_argument("--project", default="segtrack-project",
                    help="project folder holding the sessions (created if missing)")
    sv.add_argument("--allow", action="append", metavar="DIR",
                    help="also let the page open videos and frames under DIR")
    sv.add_argument("--max-upload-mb", type=float, default=512.0,
                    help="upload size limit in MB (default: 512)")
    sv.add_argument("--device", default="cpu", help=_DEVICE_HELP)
    sv.add_argument("--segment-weights", metavar="FILE",
                    help="weights of the click tool (default: the committed ones)")
    sv.set_defaults(func=cmd_serve)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SegtrackError as e:
        print(f"segtrack: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("segtrack: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
