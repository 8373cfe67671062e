"""Frames of the simulated camera: a moving scene with the frame index in a bar code."""

from __future__ import annotations

import numpy as np

__all__ = ["decode_frame_index", "draw_frame_index", "render_frame"]

_BITS = 24


def render_frame(index: int, *, width: int = 320, height: int = 240) -> np.ndarray:
    """Render frame ``index`` of the simulated camera.

    The top 8 rows carry the index as 24 black/white blocks (most significant
    first), so a recorder can check which frame it stored; below, a gradient
    with a bright disc moving once every 4 s (at 30 fps) shows motion.

    Parameters
    ----------
    index : int
        Frame index (0 ≤ index < 2**24).
    width, height : int
        Image size in pixels (width ≥ 48).

    Returns
    -------
    frame : ndarray, shape (height, width, 3), uint8
        RGB image.
    """
    yy, xx = np.mgrid[0:height, 0:width]
    img = np.empty((height, width, 3), dtype=np.uint8)
    img[..., 0] = (xx * 255 // max(width - 1, 1)).astype(np.uint8)
    img[..., 1] = (yy * 255 // max(height - 1, 1)).astype(np.uint8)
    img[..., 2] = 96
    phase = 2 * np.pi * (index % 120) / 120.0
    cx = width / 2 + 0.35 * width * np.cos(phase)
    cy = height / 2 + 0.3 * height * np.sin(phase)
    img[(xx - cx) ** 2 + (yy - cy) ** 2 < (height / 10) ** 2] = 255
    return draw_frame_index(img, index)


def draw_frame_index(img: np.ndarray, index: int) -> np.ndarray:
    """Write ``index`` as the bar code of :func:`render_frame` into the top 8 rows of ``img``.

    Parameters
    ----------
    img : ndarray, shape (height, width, 3), uint8
        Image, changed in place (width ≥ 48).
    index : int
        Frame index (0 ≤ index < 2**24).

    Returns
    -------
    img : ndarray, shape (height, width, 3), uint8
        The same image.
    """
    block = img.shape[1] // _BITS
    bits = (index >> np.arange(_BITS - 1, -1, -1)) & 1
    img[:8, : block * _BITS] = np.repeat(bits * 255, block)[None, :, None].astype(np.uint8)
    return img


def decode_frame_index(frame: np.ndarray) -> int:
    """Read the frame index back from a frame made by :func:`render_frame`.

    Parameters
    ----------
    frame : ndarray, shape (height, width, 3)
        RGB image (lossy compression tolerated).

    Returns
    -------
    index : int
    """
    block = frame.shape[1] // _BITS
    centres = np.arange(_BITS) * block + block // 2
    bits = frame[4, centres].mean(axis=-1) > 127
    return int(sum(int(b) << (_BITS - 1 - i) for i, b in enumerate(bits)))
