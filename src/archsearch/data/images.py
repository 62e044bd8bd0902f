"""Image files that cannot be decoded are the user's data problem: name the file, stop with one line.

A folder of up to VERIFY_LIMIT images is checked when its dataset is built (PIL's `verify()`: the
header and, for PNG, every chunk's checksum; no pixel decoding), so a bad file stops the run before
it starts. Larger folders (ImageNet: 1.28M files, minutes of I/O) are not scanned up front; every
image is decoded through `load_image`, which turns a failure into a DataError naming the file,
raised where the batch that holds it is drawn.
"""
from __future__ import annotations

from typing import Optional, Sequence

from PIL import Image

from archsearch.data.base import one_line
from archsearch.errors import DataError

VERIFY_LIMIT = 20_000


def load_image(path: str) -> Image.Image:
    """RGB pixels of an image file (torchvision's default loader), or a DataError naming it."""
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"cannot decode image {path}: {type(e).__name__}: {one_line(e)}") from None


def verify_images(paths: Sequence[str], limit: Optional[int] = None) -> bool:
    """Check every file of a folder of at most `limit` (VERIFY_LIMIT) images; returns whether it checked."""
    if len(paths) > (VERIFY_LIMIT if limit is None else limit):
        return False
    for path in paths:
        try:
            with Image.open(path) as img:
                img.verify()
        except Exception as e:  # noqa: BLE001 - PIL raises many types for a bad file
            raise DataError(f"cannot decode image {path}: {type(e).__name__}: {one_line(e)} (remove or replace "
                            "the file)") from None
    return True
