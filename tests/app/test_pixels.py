"""examples/app/pixels.py: Pillow decodes whenever it is installed; the numpy fallback undoes every PNG filter
exactly (rows mixing None, Sub, Up, Average and Paeth; 1-4 channels; 16-bit; several diagonal bands)."""
from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "app"))
import pixels  # noqa: E402

COLOUR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}  # channels → PNG colour type


def filtered_png(image: np.ndarray, kinds: list[int], depth: int = 8) -> bytes:
    """A PNG whose row y uses filter kinds[y % len(kinds)], filtered here straight from the PNG spec."""
    channels = image.shape[2] if image.ndim == 3 else 1
    height, width = image.shape[:2]
    data = image.astype(">u2").view(np.uint8) if depth == 16 else image
    rows = data.reshape(height, -1).astype(np.int32)
    bpp = channels * depth // 8
    out, prev = [], np.zeros(rows.shape[1], np.int32)
    for y, cur in enumerate(rows):
        kind = kinds[y % len(kinds)]
        left = np.concatenate([np.zeros(bpp, np.int32), cur[:-bpp]])
        up_left = np.concatenate([np.zeros(bpp, np.int32), prev[:-bpp]])
        if kind == 0:
            f = cur
        elif kind == 1:
            f = cur - left
        elif kind == 2:
            f = cur - prev
        elif kind == 3:
            f = cur - (left + prev) // 2
        else:
            p = left + prev - up_left
            pa, pb, pc = abs(p - left), abs(p - prev), abs(p - up_left)
            f = cur - np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, up_left))
        out.append(np.concatenate([[kind], f & 0xFF]).astype(np.uint8))
        prev = cur

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", width, height, depth, COLOUR_TYPE[channels], 0, 0, 0)
    return (pixels.PNG_SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(np.stack(out).tobytes()))
            + chunk(b"IEND", b""))


SHAPES = [(7, 5, 3), (1, 9, 4), (9, 1, 2), (13, 17), (40, 33, 3)]
FILTERS = [[0], [1], [2], [3], [4], [4, 3, 1, 0, 2], [2, 4]]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_numpy_fallback_undoes_every_filter_exactly(shape):
    image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    for kinds in FILTERS:
        np.testing.assert_array_equal(pixels.decode_png(filtered_png(image, kinds)), image, err_msg=str(kinds))


def test_numpy_fallback_16_bit_keeps_the_high_byte():
    image = np.random.default_rng(1).integers(0, 65536, (6, 7, 3), dtype=np.uint16)
    np.testing.assert_array_equal(pixels.decode_png(filtered_png(image, [4, 3], depth=16)), (image >> 8).astype(np.uint8))


def test_numpy_fallback_in_diagonal_bands(monkeypatch):
    """A large image is undone in bands of rows; each band starts from the row above it."""
    image = np.random.default_rng(2).integers(0, 256, (40, 33, 3), dtype=np.uint8)
    monkeypatch.setattr(pixels, "_BAND_BYTES", 1)  # the smallest band: 16 rows, so 3 bands here
    np.testing.assert_array_equal(pixels.decode_png(filtered_png(image, [4, 3, 2, 1])), image)


def test_unknown_filter_is_an_image_error():
    with pytest.raises(pixels.ImageError, match="unknown PNG filter 9 in row 1"):
        pixels._unfilter(np.array([0, 9], np.uint8), np.zeros((2, 6), np.uint8), 3, "x.png")


def test_pillow_reads_pngs_when_installed_and_agrees_with_the_fallback(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(3)
    cases = {"rgb": rng.integers(0, 256, (31, 23, 3), dtype=np.uint8), "gray": rng.integers(0, 256, (9, 12), dtype=np.uint8),
             "rgba": rng.integers(0, 256, (5, 8, 4), dtype=np.uint8)}
    for name, image in cases.items():
        path = tmp_path / f"{name}.png"
        Image.fromarray(image).save(path, optimize=True)  # Pillow's own adaptive filters
        np.testing.assert_array_equal(pixels.read_image(path), image)
        np.testing.assert_array_equal(pixels.decode_png(path.read_bytes()), image)
    palette = Image.fromarray(cases["rgb"]).quantize(200)  # 8-bit indices
    palette.save(tmp_path / "p.png")
    np.testing.assert_array_equal(pixels.read_image(tmp_path / "p.png"), np.asarray(palette.convert("RGB")))
    np.testing.assert_array_equal(pixels.decode_png((tmp_path / "p.png").read_bytes()), np.asarray(palette.convert("RGB")))
    # what only Pillow can do: formats the fallback refuses
    Image.fromarray(cases["rgb"]).save(tmp_path / "x.bmp")
    np.testing.assert_array_equal(pixels.read_image(tmp_path / "x.bmp"), cases["rgb"])


def test_without_pillow_the_fallback_reads_pngs_and_refuses_other_formats(tmp_path, monkeypatch):
    image = np.random.default_rng(4).integers(0, 256, (11, 10, 3), dtype=np.uint8)
    (tmp_path / "a.png").write_bytes(filtered_png(image, [4, 1, 3]))
    (tmp_path / "a.bmp").write_bytes(b"BM" + bytes(60))
    monkeypatch.setitem(sys.modules, "PIL", None)  # `from PIL import Image` now fails as on a device
    np.testing.assert_array_equal(pixels.read_image(tmp_path / "a.png"), image)
    with pytest.raises(pixels.ImageError, match="Pillow .* is not installed"):
        pixels.read_image(tmp_path / "a.bmp")
