"""Reading and checking the PNGs of the real segmentation trees (Cityscapes, CamVid).

``png_size`` reads the header and the file's last bytes (seconds for a whole tree);
``check_png_data`` checks what decoding would meet, without PIL: every chunk's CRC, the zlib
stream whole and exactly as long as the header's size needs. PIL's own ``load()`` is not used
for that check because with ``ImageFile.LOAD_TRUNCATED_IMAGES`` set (by any library in the
process) it pads a truncated or broken stream silently.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm
from vidbench.api import DataError

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"IEND\xaeB`\x82"  # the IEND chunk type and its CRC: the last bytes of a whole PNG
_READ_ERRORS = (OSError, SyntaxError, ValueError, EOFError)
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples per pixel
# Adam7 passes: first column, first row, column step, row step
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
          (0, 1, 1, 2))  # fmt: skip


def png_size(path: Path, layout: str) -> tuple[int, int]:
    """(width, height) from the header; a missing, non-PNG or truncated file raises DataError
    (truncation is seen from the missing IEND chunk, without decoding)."""
    if not path.is_file():
        raise DataError(f"{path}: missing; {layout}.")
    try:
        with Image.open(path) as image:
            kind, size = image.format, image.size
        with open(path, "rb") as handle:
            handle.seek(max(0, path.stat().st_size - 1024))
            tail = handle.read()
    except _READ_ERRORS as error:
        raise DataError(f"{path}: unreadable PNG ({error}); {layout}.") from None
    if kind != "PNG":
        raise DataError(f"{path}: a {kind} file, not a PNG; {layout}.")
    if _PNG_END not in tail:
        raise DataError(f"{path}: truncated PNG (no IEND chunk at the end); {layout}.")
    return size


def read_png(path: Path, layout: str, rgb: bool) -> np.ndarray:
    """(H, W, 3) uint8 RGB when ``rgb``, else (H, W) uint8 of a single-channel 8-bit PNG;
    a truncated or corrupt file raises DataError naming it."""
    try:
        with Image.open(path) as image:
            image.load()  # decode now: a truncated stream fails here, not later
            if rgb:
                return np.asarray(image.convert("RGB"))
            array = np.asarray(image)
    except _READ_ERRORS as error:
        raise DataError(f"{path}: unreadable or truncated PNG ({error}); {layout}.") from None
    if array.ndim != 2 or array.dtype != np.uint8:
        raise DataError(
            f"{path}: a label PNG must be single-channel 8-bit, got shape {array.shape} "
            f"dtype {array.dtype}; {layout}."
        )
    return array


def _raw_size(header: bytes) -> int:
    """Bytes of filtered scanlines the IHDR ``header`` implies (each row: a filter byte and
    its packed samples; an interlaced image has one such block per non-empty Adam7 pass)."""
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    bits = _CHANNELS.get(colour, 0) * depth
    if not interlace:
        return height * (1 + (width * bits + 7) // 8)
    size = 0
    for x0, y0, dx, dy in _ADAM7:
        columns, rows = -(-max(0, width - x0) // dx), -(-max(0, height - y0) // dy)
        if columns and rows:
            size += rows * (1 + (columns * bits + 7) // 8)
    return size


def png_data_problem(path: Path) -> str | None:
    """What is wrong with the chunks and image data of the PNG at ``path``, or None."""
    try:
        data = path.read_bytes()
    except OSError as error:
        return f"unreadable ({error})"
    if not data.startswith(_SIGNATURE):
        return "not a PNG (no PNG signature)"
    pos, header, compressed = len(_SIGNATURE), b"", []
    while True:
        if pos + 12 > len(data):
            return f"truncated PNG (it ends inside a chunk at byte {pos}, before IEND)"
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body, crc = data[pos + 8 : pos + 8 + length], data[pos + 8 + length : pos + 12 + length]
        name = kind.decode("latin-1")
        if len(crc) < 4:
            return f"truncated PNG (its {name} chunk at byte {pos} is cut short)"
        if zlib.crc32(kind + body) != int.from_bytes(crc, "big"):
            return f"corrupt PNG (CRC mismatch in the {name} chunk at byte {pos})"
        if kind == b"IHDR" and length == 13:
            header = body
        elif kind == b"IDAT":
            compressed.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    if not header or not compressed:
        return "corrupt PNG (no IHDR or no IDAT chunk)"
    inflater = zlib.decompressobj()
    try:
        raw = len(inflater.decompress(b"".join(compressed)))
    except zlib.error as error:
        return f"corrupt PNG image data ({error})"
    if not inflater.eof:
        return f"truncated PNG image data (the compressed stream stops after {raw} bytes)"
    expected = _raw_size(header)
    if raw != expected:
        return f"PNG image data of {raw} bytes, but its header's size and format need {expected}"
    return None


def check_png_data(paths: Sequence[Path], layout: str, desc: str) -> None:
    """Check the data of every PNG of ``paths`` (``png_data_problem``, a few threads: zlib and
    crc32 release the GIL); the first bad one in order raises DataError naming it and what is
    wrong, without waiting for the rest."""
    unique = list(dict.fromkeys(paths))
    pool = ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1))
    try:
        problems = pool.map(png_data_problem, unique)
        for path, problem in zip(unique, tqdm(problems, desc=desc, total=len(unique), unit="png")):
            if problem:
                raise DataError(f"{path}: {problem}; {layout}.")
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
