"""Reading and writing images with numpy and the standard library only (no Pillow on the device).

PNG (8/16-bit gray, gray+alpha, RGB, RGBA, palette; not interlaced) and Netpbm (PGM/PPM, binary and ASCII)
are decoded here; other formats (JPEG, ...) go through Pillow when it is installed.
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NATIVE_SUFFIXES = (".png", ".pgm", ".ppm", ".pnm", ".npy")
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}   # PNG colour type → samples per pixel
MAX_PIXELS = 64_000_000


class ImageError(ValueError):
    """An image file that cannot be read; the message says which and why."""


def read_image(path: str | Path) -> np.ndarray:
    """An image file → uint8 array HxW (gray) or HxWxC (C = 2, 3 or 4)."""
    path = Path(path)
    data = path.read_bytes()
    if data.startswith(PNG_SIGNATURE):
        return decode_png(data, str(path))
    if data[:2] in (b"P2", b"P3", b"P5", b"P6"):
        return decode_netpbm(data, str(path))
    if path.suffix.lower() == ".npy":
        return np.load(path, allow_pickle=False)
    try:
        from PIL import Image
    except ImportError:
        raise ImageError(f"{path}: not PNG/PGM/PPM, and Pillow (for other formats) is not installed") from None
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def decode_png(data: bytes, name: str = "<png>") -> np.ndarray:
    if not data.startswith(PNG_SIGNATURE):
        raise ImageError(f"{name}: not a PNG file")
    pos, header, palette, idat = 8, None, None, []
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        crc = data[pos + 8 + length:pos + 12 + length]
        if len(body) != length or len(crc) != 4 or zlib.crc32(kind + body) != struct.unpack(">I", crc)[0]:
            raise ImageError(f"{name}: damaged PNG chunk {kind!r}")
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"PLTE":
            palette = np.frombuffer(body, np.uint8).reshape(-1, 3)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    if header is None or not idat:
        raise ImageError(f"{name}: PNG without IHDR or image data")
    width, height, depth, colour, _, _, interlace = header
    if colour not in _CHANNELS or depth not in (8, 16) or (colour == 3 and depth != 8):
        raise ImageError(f"{name}: PNG colour type {colour} at {depth} bits is not supported here; install Pillow")
    if interlace:
        raise ImageError(f"{name}: interlaced PNG is not supported here; install Pillow or save it non-interlaced")
    if width * height > MAX_PIXELS or not width or not height:
        raise ImageError(f"{name}: PNG of {width}x{height} pixels is empty or too large")
    bpp = _CHANNELS[colour] * depth // 8                # bytes per pixel
    stride = width * bpp
    expected = height * (stride + 1)
    inflater = zlib.decompressobj()
    raw = inflater.decompress(b"".join(idat), expected + 1)  # a cap: a zip bomb stops here
    if len(raw) != expected:
        raise ImageError(f"{name}: PNG data has {len(raw)} bytes, expected {expected}")
    rows = np.frombuffer(raw, np.uint8).reshape(height, stride + 1)
    pixels = _unfilter(rows[:, 0], rows[:, 1:], bpp, name)
    if depth == 16:
        pixels = (pixels.reshape(height, width * _CHANNELS[colour], 2)[..., 0])  # keep the high byte
    image = pixels.reshape(height, width, _CHANNELS[colour])
    if colour == 3:
        if palette is None:
            raise ImageError(f"{name}: palette PNG without a palette")
        image = palette[np.minimum(image[..., 0], len(palette) - 1)]
    return image[..., 0] if image.shape[2] == 1 else image


def _unfilter(filters: np.ndarray, rows: np.ndarray, bpp: int, name: str) -> np.ndarray:
    """Undo PNG's per-row filters (None, Sub, Up, Average, Paeth)."""
    out = np.zeros(rows.shape, np.uint8)
    prev = np.zeros(rows.shape[1], np.int32)
    for y, (kind, row) in enumerate(zip(filters, rows)):
        cur = row.astype(np.int32)
        if kind == 1:    # Sub: running sum per channel
            cur = np.cumsum(cur.reshape(-1, bpp), axis=0).reshape(-1) & 0xFF
        elif kind == 2:  # Up
            cur = (cur + prev) & 0xFF
        elif kind in (3, 4):  # Average, Paeth: depend on the reconstructed left pixel, so pixel by pixel
            for x in range(0, len(cur), bpp):
                left = cur[x - bpp:x] if x else np.zeros(bpp, np.int32)
                up = prev[x:x + bpp]
                if kind == 3:
                    cur[x:x + bpp] = (cur[x:x + bpp] + (left + up) // 2) & 0xFF
                else:
                    up_left = prev[x - bpp:x] if x else np.zeros(bpp, np.int32)
                    p = left + up - up_left
                    pa, pb, pc = np.abs(p - left), np.abs(p - up), np.abs(p - up_left)
                    pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, up_left))
                    cur[x:x + bpp] = (cur[x:x + bpp] + pred) & 0xFF
        elif kind != 0:
            raise ImageError(f"{name}: unknown PNG filter {kind} in row {y}")
        out[y] = cur
        prev = cur
    return out


def encode_png(image: np.ndarray) -> bytes:
    """uint8 HxW (gray) or HxWx3 (RGB) → PNG bytes (no filtering)."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or image.ndim == 3 and image.shape[2] != 3:
        raise ImageError("encode_png needs uint8 HxW or HxWx3")
    height, width = image.shape[:2]
    colour = 0 if image.ndim == 2 else 2
    rows = image.reshape(height, -1)
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1).tobytes()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (PNG_SIGNATURE + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def decode_netpbm(data: bytes, name: str = "<pnm>") -> np.ndarray:
    magic = data[:2]
    tokens, pos = [], 2
    need = 3  # width, height, maxval
    while len(tokens) < need:
        while pos < len(data) and data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b"#":
            pos = data.find(b"\n", pos)
            if pos < 0:
                raise ImageError(f"{name}: truncated Netpbm header")
            continue
        start = pos
        while pos < len(data) and not data[pos:pos + 1].isspace():
            pos += 1
        if start == pos:
            raise ImageError(f"{name}: truncated Netpbm header")
        tokens.append(int(data[start:pos]))
    width, height, maxval = tokens
    channels = 3 if magic in (b"P3", b"P6") else 1
    count = width * height * channels
    if not 0 < maxval < 65536 or count > MAX_PIXELS * 3:
        raise ImageError(f"{name}: bad Netpbm header {tokens}")
    if magic in (b"P5", b"P6"):
        dtype = np.dtype(">u2") if maxval > 255 else np.uint8
        values = np.frombuffer(data, dtype, count, pos + 1)
    else:
        values = np.array(data[pos:].split()[:count], dtype=np.int64)
        if len(values) != count:
            raise ImageError(f"{name}: truncated Netpbm data")
    values = (values.astype(np.float32) * (255.0 / maxval)).round().astype(np.uint8)
    return values.reshape(height, width, channels)[..., 0] if channels == 1 else values.reshape(height, width, 3)


def encode_pgm(image: np.ndarray) -> bytes:
    image = np.asarray(image, dtype=np.uint8)
    return f"P5\n{image.shape[1]} {image.shape[0]}\n255\n".encode() + image.tobytes()
