"""LMANet parts (seed 001, ch. 4): local correlation (Eq. 4.2-4.3) against brute force, the
space-time softmax and read (Eq. 4.4-4.5), and the fusion gates (Eq. 4.6)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from segtrack.models.lmanet import (
    Fusion,
    LMAConfig,
    LMAModule,
    local_correlation,
    local_read,
    memory_attention,
)


def _brute_corr(q, m, R):
    B, C, H, W = q.shape
    K = 2 * R + 1
    out = np.full((B, K * K, H, W), -np.inf)
    for b in range(B):
        for i in range(H):
            for j in range(W):
                for k in range(-R, R + 1):
                    for l in range(-R, R + 1):
                        ii, jj = i + k, j + l
                        if 0 <= ii < H and 0 <= jj < W:
                            n = (k + R) * K + (l + R)
                            out[b, n, i, j] = float(q[b, :, i, j] @ m[b, :, ii, jj]) / math.sqrt(C)
    return out


@pytest.mark.parametrize("R", [1, 2])
def test_local_correlation_matches_brute_force(R):
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 5, 6, 7, generator=g)
    m = torch.randn(2, 5, 6, 7, generator=g)
    got = local_correlation(q, m, R).numpy()
    want = _brute_corr(q.numpy(), m.numpy(), R)
    assert got.shape == (2, (2 * R + 1) ** 2, 6, 7)
    assert np.array_equal(np.isinf(got), np.isinf(want))
    fin = np.isfinite(want)
    np.testing.assert_allclose(got[fin], want[fin], rtol=1e-5, atol=1e-5)
    # the centre displacement (k = l = 0) is the same-location dot product
    c = (2 * R + 1) ** 2 // 2
    np.testing.assert_allclose(got[:, c], (q * m).sum(1).numpy() / math.sqrt(5), atol=1e-5)


def test_softmax_over_space_and_time_and_read_brute_force():
    g = torch.Generator().manual_seed(1)
    R, T = 1, 2
    q = torch.randn(1, 4, 5, 5, generator=g)
    mk = torch.randn(1, T, 4, 5, 5, generator=g)
    mv = torch.randn(1, T, 3, 5, 5, generator=g)
    P = memory_attention(q, mk, R)
    assert P.shape == (1, T, 9, 5, 5)
    # probabilities over (t, k, l) sum to one at every location; outside positions get zero
    np.testing.assert_allclose(P.sum((1, 2)).numpy(), 1.0, atol=1e-6)
    assert float(P[0, :, 0, 0, 0].abs().sum()) == 0.0  # (k, l) = (-1, -1) at the corner
    read = local_read(P, mv, R).numpy()
    i, j = 2, 3
    want = np.zeros(3)
    for t in range(T):
        for k in (-1, 0, 1):
            for l in (-1, 0, 1):
                n = (k + 1) * 3 + (l + 1)
                want += float(P[0, t, n, i, j]) * mv[0, t, :, i + k, j + l].numpy()
    np.testing.assert_allclose(read[0, :, i, j], want, rtol=1e-5, atol=1e-6)


def test_identical_memory_reads_back_the_matching_value():
    # a memory frame equal to the query with very distinctive keys: attention peaks at k=l=0
    H = W = 6
    q = torch.zeros(1, H * W, H, W)
    for n in range(H * W):
        q[0, n, n // W, n % W] = 30.0  # one-hot keys, scaled
    mv = torch.arange(H * W, dtype=torch.float32).view(1, 1, 1, H, W)
    P = memory_attention(q, q[:, None], 2)
    read = local_read(P, mv, 2)
    np.testing.assert_allclose(read[0, 0].numpy(), mv[0, 0, 0].numpy(), atol=1e-3)


def test_fusion_gates_shapes_and_range():
    torch.manual_seed(0)
    f = Fusion(cv=8, out=12)
    v_q, v_m = torch.randn(2, 8, 5, 7) * 10, torch.randn(2, 8, 5, 7) * 10
    with torch.no_grad():
        g_q, g_m = f.gates(v_q, v_m)
    assert g_q.shape == g_m.shape == (2, 12, 5, 7)
    for g in (g_q, g_m):
        assert float(g.min()) >= 0.0 and float(g.max()) <= 1.0
    out = f(v_q, v_m)
    assert out.shape == (2, 12, 5, 7)
    # Eq. 4.6 term by term
    want = g_q * f.E_Q(v_q) + g_m * f.E_M(v_m)
    np.testing.assert_allclose(out.detach().numpy(), want.detach().numpy(), atol=1e-5)
    # gates saturate: with A_M biased to -inf the memory branch is shut off
    with torch.no_grad():
        f.A_M.bias.fill_(-1e4)
    out2 = f(v_q, v_m)
    np.testing.assert_allclose(out2.detach().numpy(), (f.gates(v_q, v_m)[0] * f.E_Q(v_q))
                               .detach().numpy(), atol=1e-5)


def test_lma_module_output_has_encoder_shape():
    torch.manual_seed(0)
    mod = LMAModule(16, LMAConfig(memory=2, radius=2, key_dim=8, value_dim=12))
    enc = torch.randn(1, 16, 9, 11)
    k, v = mod.memorize(torch.randn(2, 16, 9, 11))
    out = mod(enc, k[None], v[None])
    assert out.shape == enc.shape


def test_lmanet_trainer_refuses_resume(tmp_path):
    from segtrack.errors import InputError
    from segtrack.training import run_training

    with pytest.raises(InputError, match="--resume"):
        run_training("lmanet", ["--data", "synthetic", "--out", str(tmp_path / "r"), "--resume"])
