"""Inference runtime for the networks that do not learn online.

Frozen backbones, frozen heads and decoders run through ONNX Runtime on the CPU: each torch
module is exported to ONNX the first time it is used and cached on disk, so later runs only load
it.  Parts that learn online (RTS learners, first-frame fine-tuning) stay in torch; so does
everything on ``--device cuda``.  Weights that change online (RTS target models, a fine-tuned
OSVOS head) enter the exported graph as *inputs*, so one export serves every video.

Choice of ONNX Runtime as the default (both measured in BENCHMARKS.md): OpenVINO ran the bare
backbone faster on this CPU, but ONNX Runtime is the lighter install (78 MB against 180 MB) and
is what the parity tests pin; ``runtime=openvino`` is there for those who install it.

* ``runtime="auto"`` (the default of every learned method): ONNX Runtime on the CPU when it is
  installed, else torch.  ``"onnx"`` insists (a clear error when it is missing), ``"torch"``
  runs the modules eagerly, ``"openvino"`` runs the same exported files with OpenVINO (an
  optional install: faster on the bare backbone here, 2.3x the install size).
* The cache lives in ``$SEGTRACK_CACHE`` (default ``~/.cache/segtrack``), one file per network
  named by a digest of its weights, its code, the input layout and the torch version: a weight
  change gives a new digest, so a stale file is never used (it is rebuilt, and the old one
  removed).  Files are written atomically.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import tempfile
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from segtrack.errors import InputError

RUNTIMES = ("auto", "onnx", "openvino", "torch")
OPSET = 17
#: the version of what :func:`export` does after the exporter (part of every cache digest)
EXPORT_RECIPE = 2
#: how many ONNX exports this process made (tests: a cached network is not re-exported)
EXPORTS = 0
_SESSIONS: dict[str, Any] = {}
_LOCK = threading.Lock()


def cache_dir() -> Path:
    """The folder of exported networks (``$SEGTRACK_CACHE`` or ``~/.cache/segtrack``; a folder
    in the system's temporary directory when that one cannot be written)."""
    root = os.environ.get("SEGTRACK_CACHE")
    if root:
        path = Path(root).expanduser() / "onnx"
    else:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        path = Path(base) / "segtrack" / "onnx"
    try:
        path.mkdir(parents=True, exist_ok=True)
        if os.access(path, os.W_OK):
            return path
    except OSError:
        pass
    user = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"segtrack-onnx-{user}"


def onnx_available() -> bool:
    try:
        import onnx  # noqa: F401  (the exporter needs it)
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_runtime(runtime: str, device: str = "cpu") -> str:
    """``"onnx"``, ``"openvino"`` or ``"torch"`` for ``runtime`` on ``device``; InputError when
    impossible."""
    r = str(runtime).strip().lower()
    if r not in RUNTIMES:
        raise InputError(f"parameter 'runtime': '{runtime}' is not one of {', '.join(RUNTIMES)}")
    if not str(device).startswith("cpu"):
        if r in ("onnx", "openvino"):
            raise InputError(f"parameter 'runtime': {r} runs on the CPU only; use runtime=torch "
                             "(or auto) with --device cuda")
        return "torch"
    if r == "torch":
        return "torch"
    if r == "openvino":
        try:
            import onnx  # noqa: F401
            import openvino  # noqa: F401
        except ImportError:
            raise InputError("parameter 'runtime': openvino needs the packages onnx and "
                             "openvino (pip install onnx openvino)") from None
        return "openvino"
    if onnx_available():
        return "onnx"
    if r == "onnx":
        raise InputError("parameter 'runtime': onnx needs the packages onnx and onnxruntime "
                         "(pip install onnx onnxruntime)")
    return "torch"


def _digest(name: str, module: nn.Module, inputs: Sequence[torch.Tensor],
            dynamic: dict[str, dict[int, str]]) -> str:
    h = hashlib.sha256()
    h.update(f"{name}|{torch.__version__}|opset{OPSET}|recipe{EXPORT_RECIPE}".encode())
    for i, x in enumerate(inputs):  # variable axes do not count, fixed ones do
        var = dynamic.get(f"in{i}", {})
        dims = tuple("*" if a in var else d for a, d in enumerate(x.shape))
        h.update(f"{dims}{x.dtype}".encode())
    seen: set[type] = set()
    for m in module.modules():
        cls = type(m)
        if cls in seen:
            continue
        seen.add(cls)
        try:
            h.update(inspect.getsource(cls).encode())
        except (OSError, TypeError):
            h.update(cls.__qualname__.encode())
    for k, v in module.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:20]


def _flatten(out: Any) -> tuple[list[torch.Tensor], Any]:
    """Tensors of a module output (tensor, tuple/list or dict) and how to rebuild it."""
    if isinstance(out, torch.Tensor):
        return [out], None
    if isinstance(out, dict):
        keys = list(out)
        return [out[k] for k in keys], ("dict", keys)
    return list(out), ("tuple", len(out))


def _rebuild(tensors: list[torch.Tensor], spec: Any) -> Any:
    if spec is None:
        return tensors[0]
    if spec[0] == "dict":
        return dict(zip(spec[1], tensors))
    return tuple(tensors)


class _Flat(nn.Module):
    """Wraps a module so that its output is a flat tuple (what the exporter wants)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, *xs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(_flatten(self.module(*xs))[0])


def export(module: nn.Module, path: Path, inputs: Sequence[torch.Tensor],
           input_names: Sequence[str], output_names: Sequence[str],
           dynamic: dict[str, dict[int, str]]) -> None:
    """Export ``module`` to ``path`` (atomically: a temporary file renamed into place)."""
    global EXPORTS
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".onnx.tmp", dir=path.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _Flat(module).eval(), tuple(inputs), tmp, dynamo=False, opset_version=OPSET,
                input_names=list(input_names), output_names=list(output_names),
                dynamic_axes=dynamic, do_constant_folding=True,
            )
        simplify(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        EXPORTS += 1
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def simplify(path: str | Path) -> None:
    """Rewrite the exported file ``path`` in place: constants folded (ONNX Runtime's basic,
    standard-ONNX level, when it is installed) and every zero ``Pad`` that feeds only a
    ``Conv`` moved into the convolution's own (possibly asymmetric) padding.  The backbones'
    TensorFlow "SAME" padding exports as such Pads, which ONNX Runtime runs as separate copies
    of the activations (2 ms a frame for RTS's backbone here)."""
    import onnx
    from onnx import numpy_helper

    path = str(path)
    try:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        so.optimized_model_filepath = path + ".basic"
        so.log_severity_level = 3
        ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        os.replace(path + ".basic", path)
    except ImportError:
        pass
    finally:
        if os.path.exists(path + ".basic"):
            os.unlink(path + ".basic")
    model = onnx.load(path)
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    users: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    outputs = {o.name for o in g.output}
    dead = []
    for n in g.node:
        if n.op_type != "Pad" or len(n.input) < 2 or n.input[1] not in inits:
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        if attrs.get("mode", b"constant") not in (b"constant", "constant"):
            continue
        if len(n.input) > 3 and n.input[3]:
            continue  # explicit axes
        if len(n.input) > 2 and n.input[2]:
            value = inits.get(n.input[2])
            if value is None or np.any(numpy_helper.to_array(value) != 0):
                continue
        pads = numpy_helper.to_array(inits[n.input[1]]).astype(int).tolist()
        after = users.get(n.output[0], [])
        if len(pads) != 8 or n.output[0] in outputs or len(after) != 1:
            continue
        conv = after[0]
        if conv.op_type != "Conv" or conv.input[0] != n.output[0]:
            continue
        if pads[0] or pads[1] or pads[4] or pads[5] or min(pads) < 0:
            continue
        cattrs = {a.name: onnx.helper.get_attribute_value(a) for a in conv.attribute}
        if cattrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            continue
        cur = list(cattrs.get("pads", [0, 0, 0, 0]))
        new = [cur[0] + pads[2], cur[1] + pads[3], cur[2] + pads[6], cur[3] + pads[7]]
        keep = [a for a in conv.attribute if a.name != "pads"]
        del conv.attribute[:]
        conv.attribute.extend(keep + [onnx.helper.make_attribute("pads", new)])
        conv.input[0] = n.input[0]
        dead.append(n)
    for n in dead:
        g.node.remove(n)
    used = {i for n in g.node for i in n.input} | outputs
    for init in [i for i in g.initializer if i.name not in used]:
        g.initializer.remove(init)
    onnx.save(model, path)


def _session(path: Path, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = max(int(threads), 1)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # no busy-waiting between operators: the CPU is shared with decoding, flow and the learners
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


class _OpenVino:
    """An OpenVINO compiled model with ONNX Runtime's ``run(names, feed)`` call."""

    def __init__(self, path: Path, threads: int) -> None:
        import openvino as ov

        core = ov.Core()
        self.compiled = core.compile_model(
            core.read_model(str(path)), "CPU",
            {"INFERENCE_NUM_THREADS": int(threads), "PERFORMANCE_HINT": "LATENCY"})
        self.request = self.compiled.create_infer_request()

    def run(self, names, feed):
        res = self.request.infer(feed)
        by_name = {k.get_any_name(): v for k, v in res.items()}
        return [np.asarray(by_name[n]) for n in names]


class OnnxModule(nn.Module):
    """A frozen torch module run by ONNX Runtime (or OpenVINO, from the same exported file),
    called like the module (torch tensors in, the module's output structure out: tensor,
    tuple or dict)."""

    def __init__(self, module: nn.Module, name: str, inputs: Sequence[torch.Tensor],
                 input_names: Sequence[str], dynamic: dict[int, dict[int, str]] | None = None,
                 threads: int = 0, backend: str = "onnx") -> None:
        super().__init__()
        module = module.eval()
        with torch.no_grad():
            sample, self._spec = _flatten(module(*inputs))
        self.input_names = list(input_names)
        self.output_names = [f"out{i}" for i in range(len(sample))]
        dyn = {self.input_names[i]: axes for i, axes in (dynamic or {}).items()}
        key = _digest(name, module, inputs, {f"in{i}": a for i, a in (dynamic or {}).items()})
        self.path = cache_dir() / f"{name}-{key}.onnx"
        threads = int(threads) or torch.get_num_threads()
        with _LOCK:
            skey = f"{self.path}|{threads}|{backend}"
            sess = _SESSIONS.get(skey)
            if sess is None:
                if not self.path.is_file():
                    for old in self.path.parent.glob(f"{name}-*.onnx"):  # stale versions
                        digest = old.stem[len(name) + 1:]  # (not a longer name's files)
                        if len(digest) != len(key) or not all(c in "0123456789abcdef"
                                                              for c in digest):
                            continue
                        try:
                            old.unlink()
                        except OSError:
                            pass
                    export(module, self.path, inputs, self.input_names, self.output_names, dyn)
                sess = _OpenVino(self.path, threads) if backend == "openvino" else \
                    _session(self.path, threads)
                _SESSIONS[skey] = sess
        self.session = sess

    def run_numpy(self, *xs: np.ndarray) -> list[np.ndarray]:
        feed = {n: np.ascontiguousarray(x, dtype=np.float32 if x.dtype.kind == "f" else x.dtype)
                for n, x in zip(self.input_names, xs)}
        return self.session.run(self.output_names, feed)

    def forward(self, *xs: torch.Tensor) -> Any:
        outs = self.run_numpy(*(x.detach().cpu().numpy() for x in xs))
        # copies into torch's own memory (cheap): torch convolutions reading the runtime's
        # output buffers directly measured up to 2.5x slower in one micro-benchmark here
        return _rebuild([torch.from_numpy(o).clone() for o in outs], self._spec)


def frozen(module: nn.Module, name: str, inputs: Sequence[torch.Tensor],
           input_names: Sequence[str], dynamic: dict[int, dict[int, str]] | None = None,
           runtime: str = "auto", device: str = "cpu", threads: int = 0) -> nn.Module:
    """``module`` itself (runtime torch) or its ONNX Runtime twin (runtime onnx / auto on CPU).

    ``inputs`` are example inputs (shapes for the export), ``dynamic`` maps an input's position
    to its variable axes (``{0: {0: "batch"}}``).  Only make axes variable that no shape
    arithmetic of the module depends on: the exporter traces Python arithmetic on sizes (the
    backbones' "SAME" padding) as constants, so image sizes stay fixed and a network is exported
    once per input size (each its own cache file).
    """
    rt = resolve_runtime(runtime, device)
    if rt == "torch":
        return module
    return OnnxModule(module, name, inputs, input_names, dynamic, threads, backend=rt)


def clear_sessions() -> None:
    """Forget the loaded sessions (tests)."""
    with _LOCK:
        _SESSIONS.clear()


class LazyFrozen(nn.Module):
    """:func:`frozen` for a module whose input size is known only when it is first called
    (a frame size): one exported network per input shape, made on first use of that shape."""

    def __init__(self, module: nn.Module, name: str, input_names: Sequence[str],
                 runtime: str = "auto", device: str = "cpu") -> None:
        super().__init__()
        self.module = module.eval()
        self.name = name
        self.input_names = list(input_names)
        self.runtime = resolve_runtime(runtime, device)
        self.device = device
        self._by_shape: dict[tuple, nn.Module] = {}

    def forward(self, *xs: torch.Tensor) -> Any:
        if self.runtime == "torch":
            with torch.no_grad():
                return self.module(*xs)
        key = tuple(tuple(x.shape) for x in xs)
        net = self._by_shape.get(key)
        if net is None:
            dims = "-".join("x".join(str(d) for d in s[1:]) for s in key)
            net = frozen(self.module, f"{self.name}-{dims}", list(xs), self.input_names,
                         {i: {0: "batch"} for i in range(len(xs))}, self.runtime, self.device)
            self._by_shape[key] = net
        return net(*xs)
