"""COCO RLE (issue 9): hand-computed encodings, round-trips, and byte-identity with pycocotools."""

from __future__ import annotations

import numpy as np
import pytest

from segtrack.errors import InputError
from segtrack.io import coco_rle

# pycocotools 2.0.x (reference implementation) warns about numpy 2 on decode
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_counts_are_column_major_and_start_with_zeros():
    m = np.array([[0, 1, 1],
                  [0, 1, 0]], bool)
    # column-major: col0 = 0,0  col1 = 1,1  col2 = 1,0 -> 0 0 1 1 1 0
    assert coco_rle.mask_to_counts(m) == [2, 3, 1]
    # a mask starting with a foreground pixel gets an empty first run of zeros
    assert coco_rle.mask_to_counts(np.ones((2, 2), bool)) == [0, 4]
    assert coco_rle.mask_to_counts(np.zeros((2, 3), bool)) == [6]
    assert coco_rle.mask_to_counts(np.zeros((0, 3), bool)) == [0]


def test_string_encoding_known_values():
    # single counts < 16: one char each, value + 48
    assert coco_rle.counts_to_string([2, 3, 1]) == "231"
    # 100 = 0b11_00100 -> low 5 bits 4 with continuation (4 | 32) + 48 = 'T', then 3 + 48 = '3'
    assert coco_rle.counts_to_string([100]) == "T3"
    # from the 4th count on the difference to the count two before is stored: 5 - 7 = -2
    # -> 5-bit two's complement 30 (sign bit set, no continuation) + 48 = 'N'
    assert coco_rle.counts_to_string([1, 7, 2, 5]) == "172N"
    for counts in ([2, 3, 1], [100], [1, 7, 2, 5], [0, 123456, 7, 99999, 3]):
        assert coco_rle.string_to_counts(coco_rle.counts_to_string(counts)) == counts


def test_encode_decode_round_trip_and_helpers():
    rng = np.random.default_rng(0)
    for _ in range(30):
        h, w = rng.integers(1, 30, 2)
        m = rng.random((h, w)) < rng.random()
        rle = coco_rle.encode(m)
        assert rle["size"] == [int(h), int(w)] and isinstance(rle["counts"], str)
        assert np.array_equal(coco_rle.decode(rle), m)
        assert np.array_equal(coco_rle.decode({**rle, "counts": rle["counts"].encode()}), m)
        assert np.array_equal(coco_rle.decode({"size": rle["size"],
                                               "counts": coco_rle.mask_to_counts(m)}), m)
        assert coco_rle.area(rle) == int(m.sum())
    m = np.zeros((5, 6), bool)
    m[1:4, 2:5] = True
    assert coco_rle.to_bbox(coco_rle.encode(m)) == (2.0, 1.0, 3.0, 3.0)
    assert coco_rle.to_bbox(coco_rle.encode(np.zeros((3, 3), bool))) == (0.0, 0.0, 0.0, 0.0)


def test_bad_rle_inputs_are_input_errors():
    with pytest.raises(InputError, match="sum to 5"):
        coco_rle.decode({"size": [2, 3], "counts": [2, 3]})
    with pytest.raises(InputError, match="size"):
        coco_rle.decode({"size": "big", "counts": "0"})
    with pytest.raises(InputError, match="'size' and 'counts'"):
        coco_rle.decode({"counts": "0"})
    with pytest.raises(InputError, match="invalid character"):
        coco_rle.string_to_counts("2 3")
    with pytest.raises(InputError, match="truncated"):
        coco_rle.string_to_counts("T")  # continuation bit set on the last character
    with pytest.raises(InputError, match="2-D"):
        coco_rle.encode(np.zeros((2, 2, 2), bool))


def test_byte_identical_to_pycocotools():
    mask_api = pytest.importorskip("pycocotools.mask", reason="pycocotools not installed")
    rng = np.random.default_rng(1)
    cases = [np.zeros((4, 5), bool), np.ones((3, 7), bool)]
    for _ in range(60):
        h, w = rng.integers(1, 60, 2)
        m = rng.random((h, w)) < rng.random()
        if rng.random() < 0.5:  # blob-like masks: long runs, negative differences
            m = np.zeros((h, w), bool)
            m[rng.integers(0, h):, rng.integers(0, w):] = True
        cases.append(m)
    big = np.zeros((480, 854), bool)
    big[40:400, 100:700] = True
    cases.append(big)
    for m in cases:
        ref = mask_api.encode(np.asfortranarray(m.astype(np.uint8)))
        mine = coco_rle.encode(m)
        assert mine["counts"] == ref["counts"].decode("ascii")
        assert mine["size"] == [int(v) for v in ref["size"]]
        assert np.array_equal(coco_rle.decode(ref), m)
        back = mask_api.decode({"size": mine["size"], "counts": mine["counts"].encode()})
        assert np.array_equal(back.astype(bool), m)
        assert coco_rle.area(mine) == int(mask_api.area(ref))
        assert np.allclose(coco_rle.to_bbox(mine), mask_api.toBbox(ref))
