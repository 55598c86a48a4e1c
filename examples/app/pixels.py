"""Reading and writing images: Pillow when it is installed, numpy and the standard library where it is not.

Pillow decodes every format in C. Without it (a small device), PNG (8/16-bit gray, gray+alpha, RGB, RGBA,
palette; not interlaced) and Netpbm (PGM/PPM, binary and ASCII) are decoded here, and other formats are refused.
The numpy PNG decoder undoes the per-row filters over anti-diagonals of pixels: Average and Paeth need the
reconstructed pixel to the left and the row above, and every pixel on one anti-diagonal has both already, so each
step is one vectorised operation over all rows (width + height steps instead of width × height).
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
    """An image file → uint8 array HxW (gray) or HxWxC (C = 2, 3 or 4), the same with or without Pillow."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        return np.load(path, allow_pickle=False)
    try:
        from PIL import Image
    except ImportError:
        Image = None
    data = path.read_bytes()
    if data[:2] in (b"P2", b"P3", b"P5", b"P6"):  # Netpbm is one vectorised read here; Pillow scales maxval its own way
        return decode_netpbm(data, str(path))
    if Image is not None:
        return _read_with_pillow(Image, path)
    if data.startswith(PNG_SIGNATURE):
        return decode_png(data, str(path))
    raise ImageError(f"{path}: not PNG/PGM/PPM, and Pillow (for other formats) is not installed")


def _read_with_pillow(Image, path: Path) -> np.ndarray:
    """What decode_png/decode_netpbm return, through Pillow: palettes become RGB, 16-bit samples keep the high byte."""
    try:
        with Image.open(path) as img:
            if img.width * img.height > MAX_PIXELS:
                raise ImageError(f"{path}: image of {img.width}x{img.height} pixels is too large")
            if img.mode in ("L", "LA", "RGB", "RGBA"):
                return np.asarray(img)
            if img.mode.startswith("I;16") or img.mode == "I":
                return (np.asarray(img).astype(np.uint32) >> 8).astype(np.uint8)
            if img.mode == "1":
                return np.asarray(img.convert("L"))
            return np.asarray(img.convert("RGB"))
    except ImageError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:  # Pillow's "cannot identify"
        raise ImageError(f"{path}: cannot decode the image ({exc})") from None


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


#: rows undone together over anti-diagonals, sized so the two skewed int16 copies stay near 64 MB
_BAND_BYTES = 64 << 20


def _unfilter(filters: np.ndarray, rows: np.ndarray, bpp: int, name: str) -> np.ndarray:
    """Undo PNG's per-row filters (0 None, 1 Sub, 2 Up, 3 Average, 4 Paeth)."""
    bad = np.flatnonzero(filters > 4)
    if len(bad):
        raise ImageError(f"{name}: unknown PNG filter {filters[bad[0]]} in row {bad[0]}")
    height, stride = rows.shape
    width = stride // bpp
    pixels = rows.reshape(height, width, bpp)
    if not (filters >= 3).any():  # None, Sub and Up need nothing to the left: row by row, each row in one step
        return _unfilter_simple(filters, pixels).reshape(height, stride)
    band = max(16, min(height, _BAND_BYTES // max(1, 4 * bpp * (width + height))))
    out = np.empty((height, width, bpp), np.uint8)
    above = np.zeros((width, bpp), np.int16)
    for top in range(0, height, band):
        out[top:top + band] = _unfilter_diagonals(filters[top:top + band], pixels[top:top + band], above)
        above = out[min(top + band, height) - 1].astype(np.int16)
    return out.reshape(height, stride)


def _unfilter_diagonals(filters: np.ndarray, pixels: np.ndarray, above: np.ndarray) -> np.ndarray:
    """Rows (H, W, bpp) below the reconstructed row `above`, undone one anti-diagonal at a time.

    Pixel (y, x) needs the reconstructed left (y, x-1), up (y-1, x) and up-left (y-1, x-1), all on earlier
    anti-diagonals, so every pixel with the same y + x is done in one vectorised step. The rows are skewed so that
    anti-diagonal d is slice d: skewed[d + 1, y] holds pixel (y, d - y); slice 0 and the gaps stay zero, the value
    PNG gives missing neighbours at the left edge."""
    height, width, bpp = pixels.shape
    diagonals = width + height - 1
    raw = np.zeros((diagonals + 1, height, bpp), np.int16)
    _skewed(raw)[...] = pixels
    done = np.zeros_like(raw)
    above_ext = np.zeros((diagonals + 2, bpp), np.int16)  # row 0's up at diagonal d is above[d - 1]
    above_ext[1:width + 1] = above
    kind = filters.astype(np.int16)[:, None]
    is_sub, is_up, is_avg, is_paeth = kind == 1, kind == 2, kind == 3, kind == 4
    up = np.zeros((height + 1, bpp), np.int16)       # up[y + 1]: the pixel above row y's cell (row -1: `above`)
    up_left = np.zeros((height + 1, bpp), np.int16)
    for d in range(1, diagonals + 1):
        lo, hi = max(0, d - width), min(height, d)   # the rows with a pixel on this diagonal
        left = done[d - 1, lo:hi]
        up[1:] = done[d - 1]
        up[0] = above_ext[d]
        up_left[1:] = done[d - 2] if d > 1 else 0
        up_left[0] = above_ext[d - 1]
        u, ul = up[lo:hi], up_left[lo:hi]
        p = left + u - ul
        pa, pb, pc = np.abs(p - left), np.abs(p - u), np.abs(p - ul)
        paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, u, ul))
        pred = (is_sub[lo:hi] * left + is_up[lo:hi] * u + is_avg[lo:hi] * ((left + u) >> 1)
                + is_paeth[lo:hi] * paeth)
        done[d, lo:hi] = (raw[d, lo:hi] + pred) & 0xFF
    # cells left of a row's start stay zero (all their neighbours are such cells); cells past its end fill with
    # garbage, but no pixel reads them: every neighbour of (y, x) has x' <= x
    return _skewed(done).astype(np.uint8)


def _skewed(diagonal_major: np.ndarray) -> np.ndarray:
    """The (H, W, bpp) view of a (W + H, H, bpp) array in which pixel (y, x) sits at [y + x + 1, y]."""
    _, height, bpp = diagonal_major.shape
    item = diagonal_major.itemsize
    return np.lib.stride_tricks.as_strided(diagonal_major[1:], shape=(height, diagonal_major.shape[0] - height, bpp),
                                           strides=((height + 1) * bpp * item, height * bpp * item, item),
                                           writeable=True)


def _unfilter_simple(filters: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    out = np.empty(pixels.shape, np.uint8)
    prev = np.zeros(pixels.shape[1:], np.uint8)
    for y, kind in enumerate(filters):
        row = pixels[y]
        if kind == 1:    # Sub: a running sum along the row, per channel, mod 256
            row = np.cumsum(row, axis=0, dtype=np.uint8)
        elif kind == 2:  # Up
            row = row + prev  # uint8 arithmetic wraps mod 256, as PNG wants
        out[y] = row
        prev = out[y]
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
