"""The inference runtime: exported networks agree with torch, the on-disk cache, batched
multi-object tracking."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from segtrack import runtime
from segtrack.errors import InputError

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

TOL = 2e-3  # max abs difference allowed between ONNX Runtime and torch outputs


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGTRACK_CACHE", str(tmp_path / "cache"))
    runtime.clear_sessions()
    yield
    runtime.clear_sessions()


def _close(a, b, tol=TOL):
    a = a if isinstance(a, (tuple, list)) else [a]
    b = b if isinstance(b, (tuple, list)) else [b]
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.shape == y.shape
        d = float((x.float() - y.float()).abs().max())
        assert d < tol * max(1.0, float(y.float().abs().max())), d


class _Small(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        return {"a": self.conv(x), "b": self.conv(x).mean(1)}


def test_resolve_runtime_errors():
    assert runtime.resolve_runtime("torch") == "torch"
    assert runtime.resolve_runtime("auto") == "onnx"
    assert runtime.resolve_runtime("AUTO", "cuda") == "torch"
    with pytest.raises(InputError, match="runtime"):
        runtime.resolve_runtime("tensorrt")
    with pytest.raises(InputError, match="CPU only"):
        runtime.resolve_runtime("onnx", "cuda")


def test_cache_reused_and_rebuilt_after_weight_change(tmp_path):
    m = _Small().eval()
    x = torch.rand(2, 3, 16, 16)
    n0 = runtime.EXPORTS
    a = runtime.frozen(m, "small", [x], ["x"], {0: {0: "batch"}})
    assert runtime.EXPORTS == n0 + 1
    with torch.no_grad():
        ref = m(x)
    out = a(x)
    assert set(out) == {"a", "b"}
    _close([out["a"], out["b"]], [ref["a"], ref["b"]])
    _close(a(x[:1])["a"], ref["a"][:1])  # variable batch
    runtime.clear_sessions()  # a new process: loads the file, no export
    b = runtime.frozen(m, "small", [x], ["x"], {0: {0: "batch"}})
    assert runtime.EXPORTS == n0 + 1 and b.path == a.path
    with torch.no_grad():
        m.conv.weight.mul_(2)  # the weights change: the stale file is replaced
    other = runtime.frozen(_Small().eval(), "small-2b", [x], ["x"])  # a longer name: kept
    c = runtime.frozen(m, "small", [x], ["x"], {0: {0: "batch"}})
    assert runtime.EXPORTS == n0 + 3 and c.path != a.path
    assert c.path.is_file() and not a.path.exists() and other.path.is_file()
    with torch.no_grad():
        _close(c(x)["a"], m(x)["a"])
    assert runtime.frozen(m, "small", [x], ["x"], runtime="torch") is m


class _SamePad(nn.Module):
    """A stride-2 convolution behind an asymmetric zero pad (TensorFlow "SAME"), then one whose
    pad feeds two users (it must stay)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, stride=2)
        self.b = nn.Conv2d(4, 4, 3)

    def forward(self, x):
        y = self.a(torch.nn.functional.pad(x, (0, 1, 0, 1)))
        z = torch.nn.functional.pad(y, (1, 1, 1, 1))
        return self.b(z) + z[:, :, 1:-1, 1:-1]


def test_export_moves_zero_pads_into_convolutions():
    import onnx

    m = _SamePad().eval()
    x = torch.rand(1, 3, 16, 16)
    net = runtime.frozen(m, "samepad", [x], ["x"], None, "onnx")
    ops = [n.op_type for n in onnx.load(str(net.path)).graph.node]
    assert ops.count("Pad") == 1  # the first one folded, the shared one kept
    convs = [n for n in onnx.load(str(net.path)).graph.node if n.op_type == "Conv"]
    pads = [list(a.ints) for c in convs for a in c.attribute if a.name == "pads"]
    assert [0, 0, 1, 1] in pads
    with torch.no_grad():
        _close(net(x), m(x), 1e-5)


def test_rts_graphs_match_torch():
    from segtrack.models.rts import default_weights
    from segtrack.trackers.rts import _Graphs

    w = default_weights("rts")
    g_t = _Graphs(w, w, True, True, 288, "torch", "cpu")
    g_o = _Graphs(w, w, True, True, 288, "onnx", "cpu")
    rng = np.random.default_rng(0)
    img = torch.from_numpy(rng.integers(0, 255, (2, 288, 288, 3), dtype=np.uint8))
    c = g_t.net.cfg
    tau = torch.randn(2, c.enc_dim, c.feat_dim, 3, 3) * 0.05
    kappa = torch.randn(2, 1, c.feat_dim, 5, 5) * 0.05
    with torch.no_grad():
        _close(g_o.features(img), g_t.features(img))
        ref = g_t.frame(img, tau, kappa)
        _close(g_o.frame(img, tau, kappa), ref)
        m4 = torch.rand(2, 1, 72, 72)
        _close(g_o.label(m4, ref[0]), g_t.label(m4, ref[0]))
    # the batched form of the target models equals the learners' own grouped convolution
    xm = g_t.seg_net.seg_learner.apply(tau, ref[0][:, None])[:, 0]
    from segtrack.models.rts.learners import per_sample_conv

    _close(per_sample_conv(ref[0], tau, 1), xm, 1e-4)


def test_siammask_graphs_match_torch():
    from segtrack.models.siammask import default_weights, load_siammask
    from segtrack.trackers.siammask import _Graphs, _load_backbone

    path = default_weights("siammask")
    net = load_siammask(path)
    bb = _load_backbone(net.cfg.backbone, "cpu")
    g_t = _Graphs(net, bb, path.stem, 255, "torch", "cpu")
    g_o = _Graphs(net, bb, path.stem, 255, "onnx", "cpu")
    rng = np.random.default_rng(1)
    z = torch.from_numpy(rng.integers(0, 255, (1, 127, 127, 3), dtype=np.uint8))
    x = torch.from_numpy(rng.integers(0, 255, (2, 255, 255, 3), dtype=np.uint8))
    with torch.no_grad():
        k = g_t.template(z)
        _close(g_o.template(z), k)
        f = g_t.backbone(x)
        _close(g_o.backbone(x), f)
        from segtrack.models.siammask import toeplitz_kernel

        T = toeplitz_kernel(k, f[2].shape[-1])
        s = g_t.search(f[2][:1], T)
        _close(g_o.search(f[2][:1], T), s)
        # the matrix-product correlation is the network's own depth-wise correlation
        _close(s[0], net.correlate(k, f[2][:1]), 1e-4)
        ins = (s[0][:, :, 3, 4], f[2][:1, :, 3:19, 4:20], f[1][:1, :, 3:19, 4:20],
               f[0][:1, :, 6:38, 8:40])
        _close(g_o.refine(*ins), g_t.refine(*ins))


def test_oneshot_graphs_match_torch():
    from segtrack.models.oneshot import STRIDES, load_oneshot, resolve_weights
    from segtrack.trackers.oneshot import _Graphs

    for kind in ("osvos", "masktrack"):
        parent = load_oneshot(resolve_weights("", kind))
        g_t = _Graphs(parent, (96, 128), "torch", "cpu")
        g_o = _Graphs(parent, (96, 128), "onnx", "cpu")
        img = torch.from_numpy(np.random.default_rng(2).integers(0, 255, (2, 96, 128, 3),
                                                                 dtype=np.uint8))
        with torch.no_grad():
            taps = g_t.features(img)
            _close(g_o.features(img), taps)
            head = parent.copy_with_head().head
            for prm in head.parameters():  # a "fine-tuned" head: the graph takes its weights
                prm.add_(0.01 * torch.randn_like(prm))
            feats = dict(zip(STRIDES, taps))
            extra = torch.rand(2, parent.cfg.extra, 48, 64).round() if parent.cfg.extra else None
            ref = head(feats, extra)
            ins = list(taps) + ([extra] if extra is not None else [])
            _close(g_o.head(*ins, *g_o.head_inputs(head)), ref)


def _davis_clip(root, n=12):
    from segtrack.eval.datasets import load_davis

    seq = next(s for s in load_davis(root) if s.name == "bear")
    return list(seq.frames)[:n], seq.read_labels(0) > 0


@pytest.mark.parametrize("method,extra", [("rts", {}), ("siammask", {}),
                                          ("osvos", {"ft_iters": 10}),
                                          ("masktrack", {"ft_iters": 10})])
def test_same_masks_on_davis_clip(davis_root, method, extra):
    import segtrack

    frames, m0 = _davis_clip(davis_root)
    outs = {}
    for rt in ("torch", "onnx"):
        outs[rt] = [r.labels for r in segtrack.track_video(
            frames, mask=m0, method=method, params={"runtime": rt, **extra})]
    a, b = np.stack(outs["torch"]), np.stack(outs["onnx"])
    assert (a > 0).mean() > 0.05  # something is tracked
    if method == "siammask":
        # SiamMask picks one RoW by argmax among near-equal neighbours (a large object): a
        # 1e-4 difference can move the state by a pixel, and the runs then drift apart slowly
        assert (a[:3] == b[:3]).mean() >= 0.999
        assert (a == b).mean() >= 0.98
    else:
        assert (a == b).mean() >= 0.999


@pytest.mark.parametrize("method,extra", [("rts", {"near_scale": 0.0}),
                                          ("siammask", {"near_scale": 0.0}), ("flow", {}),
                                          ("osvos", {"ft_iters": 5})])
def test_objects_together_match_objects_alone(method, extra):
    """Two objects far apart tracked in one run (one batched pass) give the masks each gives
    when tracked alone (with the distance prior off: beside others it deliberately weights
    what an object claims)."""
    import segtrack
    from segtrack.data.synthetic import make_video

    vid = make_video(3, num_frames=8, height=180, width=320, num_objects=2, occlusion=False)
    pairs = [vid.frame(t) for t in range(8)]
    frames = [f for f, _ in pairs]
    lab0 = pairs[0][1]
    objs = {k: lab0 == k for k in (1, 2) if (lab0 == k).any()}
    if len(objs) < 2:
        pytest.skip("generator gave fewer than two objects")
    joint = [r for r in segtrack.track_video(frames, objects=objs, method=method, params=extra)]
    for k, m in objs.items():
        alone = [r.predictions[k].mask for r in segtrack.track_video(
            frames, objects={k: m}, method=method, params=extra)]
        for r, a in zip(joint, alone):
            both = r.predictions[k].mask
            others = np.zeros_like(a)
            for j, p in r.predictions.items():
                if j != k:
                    others |= p.mask
            free = ~others  # where no other object claims the pixel
            assert (both[free] == a[free]).mean() >= 0.999


def test_unwritable_cache_falls_back_to_temp(tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "onnx").write_text("not a folder")  # the cache folder cannot be made
    monkeypatch.setenv("SEGTRACK_CACHE", str(ro))
    d = runtime.cache_dir()
    assert "segtrack-onnx" in d.name
    m = _Small().eval()
    x = torch.rand(1, 3, 8, 8)
    a = runtime.frozen(m, "small-fallback", [x], ["x"])
    assert a.path.parent == d and a.path.is_file()


def test_lazy_export_per_input_size_semseg_and_convlstm_backbones():
    from segtrack.models.convlstm import FeatureExtractor
    from segtrack.models.semseg import SemSegGraph, load_semseg, resolve_weights

    model = load_semseg(resolve_weights("", "semseg-davis"))
    g = runtime.LazyFrozen(SemSegGraph(model), "semseg-test", ["image"])
    n0 = runtime.EXPORTS
    for shape in ((1, 3, 64, 96), (1, 3, 96, 64), (1, 3, 64, 96)):
        x = torch.rand(*shape)
        with torch.no_grad():
            _close(g(x), SemSegGraph(model)(x))
    assert runtime.EXPORTS == n0 + 2  # one export per input size, reused
    fx = FeatureExtractor().eval()
    lf = runtime.LazyFrozen(fx, "convlstm-test", ["image"])
    x = torch.rand(2, 3, 64, 64)
    _close(lf(x), fx(x))
    assert runtime.LazyFrozen(fx, "t", ["image"], runtime="torch")(x).shape == fx(x).shape
