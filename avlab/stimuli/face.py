"""Talker videos: an animated face whose mouth follows the speech envelope.

The mouth opening of frame ``k`` (shown at ``k / fps`` s after the audio
onset) is the speech's amplitude envelope at ``k / fps + lead_s``: the mouth
opens :data:`LEAD_S` (80 ms) before the sound, within the 50-100 ms by which
visible articulation leads the acoustic onset in natural audiovisual speech.
The envelope is the Hilbert magnitude, averaged to 1 kHz and low-passed at
:data:`ENVELOPE_CUTOFF_HZ` (4th-order Butterworth, zero phase), scaled so that
its 95th percentile opens the mouth fully. The eyes blink every 2-6 s
(150 ms, seeded by the stimulus id). Frames are drawn with OpenCV and encoded
as H.264 MP4 by the ``ffmpeg`` program (Debian package ``ffmpeg``), which
``cv2.VideoCapture`` reads back.
"""

from __future__ import annotations

import hashlib
import math
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
from scipy.signal import butter, hilbert, sosfiltfilt

from avlab._logging import logger
from avlab.stimuli.tts import StimulusError

__all__ = [
    "ENVELOPE_CUTOFF_HZ",
    "FACE_STYLES",
    "LEAD_S",
    "FaceStyle",
    "blink_track",
    "face_style",
    "ffmpeg_version",
    "mouth_track",
    "n_frames_for",
    "render_frame",
    "speech_envelope",
    "write_talker_video",
]

#: How long the mouth opening leads the sound, s.
LEAD_S = 0.08
#: Low-pass cut-off of the speech envelope driving the mouth, Hz.
ENVELOPE_CUTOFF_HZ = 8.0
_ENV_RATE = 1000
_BLINK_S = 0.15
_MOUTH_LEVELS = 63
_LID_LEVELS = 4

BGR = tuple[int, int, int]


@dataclass(frozen=True)
class FaceStyle:
    """How one talker looks.

    Attributes
    ----------
    skin, hair, eyes, lips, shirt, background : tuple of int
        BGR colours, 0-255.
    hair_style : {"short", "long", "bun", "bald"}
    width, height : float
        Head half-axes as fractions of the frame size.
    beard : bool
    """

    skin: BGR
    hair: BGR
    eyes: BGR
    lips: BGR
    shirt: BGR
    background: BGR
    hair_style: str = "short"
    width: float = 0.25
    height: float = 0.32
    beard: bool = False


#: Named face styles; any other key gets a style generated from its hash.
FACE_STYLES: dict[str, FaceStyle] = {
    "default": FaceStyle((150, 180, 220), (40, 50, 70), (90, 60, 30), (90, 90, 170),
                         (120, 90, 60), (70, 70, 70), "short", 0.25, 0.32),
    "warm": FaceStyle((140, 175, 230), (30, 70, 140), (60, 110, 40), (80, 70, 190),
                      (60, 60, 170), (90, 120, 150), "long", 0.23, 0.31),
    "cool": FaceStyle((110, 140, 180), (30, 30, 30), (120, 80, 40), (80, 80, 140),
                      (140, 110, 40), (120, 100, 80), "short", 0.27, 0.33, beard=True),
    "dark": FaceStyle((60, 85, 120), (20, 20, 25), (30, 40, 60), (70, 70, 110),
                      (50, 130, 90), (100, 110, 90), "bun", 0.24, 0.33),
    "pale": FaceStyle((190, 210, 240), (90, 160, 200), (150, 110, 60), (120, 120, 200),
                      (110, 60, 110), (80, 80, 100), "long", 0.24, 0.30),
    "elder": FaceStyle((130, 160, 205), (200, 200, 200), (70, 80, 90), (90, 100, 160),
                       (80, 80, 80), (110, 100, 100), "bald", 0.26, 0.31),
}  # fmt: skip


def face_style(key: str) -> FaceStyle:
    """Look up the style of a face key: a named one, or one derived from its hash.

    Parameters
    ----------
    key : str

    Returns
    -------
    style : FaceStyle
        The same key always gives the same face.
    """
    if key in FACE_STYLES:
        return FACE_STYLES[key]
    h = hashlib.sha256(key.encode()).digest()
    names = sorted(FACE_STYLES)
    base = FACE_STYLES[names[h[0] % len(names)]]
    other = FACE_STYLES[names[h[1] % len(names)]]
    shift = int(h[2]) % 40 - 20
    return FaceStyle(
        skin=base.skin,
        hair=other.hair,
        eyes=other.eyes,
        lips=base.lips,
        shirt=tuple(int(np.clip(c + shift, 0, 255)) for c in other.shirt),  # type: ignore[arg-type]
        background=tuple(int(np.clip(c - shift, 0, 255)) for c in base.background),  # type: ignore[arg-type]
        hair_style=("short", "long", "bun", "bald")[h[3] % 4],
        width=0.22 + (h[4] % 7) * 0.01,
        height=0.29 + (h[5] % 6) * 0.01,
        beard=bool(h[6] % 3 == 0),
    )


def _fps_fraction(fps: float) -> Fraction:
    return Fraction(fps).limit_denominator(1001)


def n_frames_for(n_samples: int, srate: int, fps: float) -> int:
    """Count the video frames covering an audio clip: ``ceil(duration * fps)``.

    Parameters
    ----------
    n_samples : int
    srate : int
        Hz.
    fps : float
        Frames per second.

    Returns
    -------
    n_frames : int
        Computed with exact fractions (no float rounding at whole frames).
    """
    return math.ceil(Fraction(n_samples) * _fps_fraction(fps) / srate)


def speech_envelope(
    audio: np.ndarray, srate: int, *, cutoff_hz: float = ENVELOPE_CUTOFF_HZ
) -> tuple[np.ndarray, float]:
    """Slow amplitude envelope of speech.

    Parameters
    ----------
    audio : ndarray, shape (n_samples,)
    srate : int
        Hz.
    cutoff_hz : float
        Low-pass cut-off, Hz.

    Returns
    -------
    envelope : ndarray, shape (n_env,)
        Hilbert magnitude averaged over 1-ms bins, low-passed, non-negative.
    env_rate : float
        Sampling rate of ``envelope``, Hz (1000, or ``srate`` if lower).
    """
    x = np.asarray(audio, dtype=np.float64)
    mag = np.abs(hilbert(x))
    step = max(1, srate // _ENV_RATE)
    n = len(mag) // step
    if n == 0:
        return np.zeros(1), srate / step
    env = mag[: n * step].reshape(n, step).mean(axis=1)
    rate = srate / step
    sos = butter(4, cutoff_hz, btype="low", fs=rate, output="sos")
    if n > 27:  # sosfiltfilt's padding needs a few samples
        env = sosfiltfilt(sos, env)
    return np.clip(env, 0.0, None), rate


def mouth_track(audio: np.ndarray, srate: int, fps: float, *, lead_s: float = LEAD_S) -> np.ndarray:
    """Mouth opening of every video frame.

    Parameters
    ----------
    audio : ndarray, shape (n_samples,)
    srate : int
        Hz.
    fps : float
        Frames per second.
    lead_s : float
        How long the mouth leads the sound, s.

    Returns
    -------
    opening : ndarray, shape (n_frames,), float32
        0 (closed) to 1 (fully open); frame ``k`` shows the envelope at
        ``k / fps + lead_s``; ``n_frames = ceil(duration * fps)``.
    """
    env, rate = speech_envelope(audio, srate)
    n_frames = n_frames_for(len(audio), srate, fps)
    t = np.arange(n_frames) / float(_fps_fraction(fps)) + lead_s
    samples = np.interp(t * rate, np.arange(len(env)), env, left=0.0, right=0.0)
    ref = float(np.percentile(env, 95)) if env.size else 0.0
    if ref <= 0:
        return np.zeros(n_frames, dtype=np.float32)
    return np.clip(samples / ref, 0.0, 1.0).astype(np.float32)


def blink_track(n_frames: int, fps: float, seed: int) -> tuple[np.ndarray, list[float]]:
    """Eyelid closure of every frame: a 150-ms blink every 2-6 s.

    Parameters
    ----------
    n_frames : int
    fps : float
    seed : int

    Returns
    -------
    closure : ndarray, shape (n_frames,), float32
        0 open, 1 closed.
    onsets_s : list of float
        Blink start times, s.
    """
    rng = np.random.default_rng(seed)
    closure = np.zeros(n_frames, dtype=np.float32)
    onsets: list[float] = []
    t = rng.uniform(0.8, 3.0)
    duration = n_frames / fps
    while t + _BLINK_S < duration:
        onsets.append(round(float(t), 3))
        k = np.arange(int(t * fps), min(n_frames, int(np.ceil((t + _BLINK_S) * fps)) + 1))
        phase = (k / fps - t) / _BLINK_S
        closure[k] = np.maximum(closure[k], np.clip(1 - np.abs(2 * phase - 0.8) / 1.2, 0, 1))
        t += rng.uniform(2.0, 6.0)
    return closure, onsets


def render_frame(style: FaceStyle, opening: float, closure: float, size: int = 360) -> np.ndarray:
    """Draw one frame of a talking face.

    Parameters
    ----------
    style : FaceStyle
    opening : float
        Mouth opening, 0-1.
    closure : float
        Eyelid closure, 0-1.
    size : int
        Frame width and height, pixels.

    Returns
    -------
    frame : ndarray, shape (size, size, 3), uint8
        BGR.
    """
    s = size / 360.0
    aa = cv2.LINE_AA
    img = np.empty((size, size, 3), np.uint8)
    img[:] = style.background
    cx, cy = size // 2, int(size * 0.45)
    hw, hh = int(style.width * size), int(style.height * size)

    def p(x: float, y: float) -> tuple[int, int]:
        return int(round(x)), int(round(y))

    if style.hair_style == "long":
        cv2.ellipse(img, p(cx, cy), p(hw + 22 * s, hh + 14 * s), 0, 0, 360, style.hair, -1, aa)
        cv2.rectangle(img, p(cx - hw - 22 * s, cy), p(cx + hw + 22 * s, cy + hh + 40 * s),
                      style.hair, -1)  # fmt: skip
    cv2.ellipse(img, p(cx, size + 40 * s), p(hw * 1.9, 110 * s), 0, 180, 360, style.shirt, -1, aa)
    neck = tuple(int(c * 0.85) for c in style.skin)
    cv2.rectangle(img, p(cx - hw * 0.45, cy + hh * 0.6), p(cx + hw * 0.45, size - 40 * s), neck, -1)
    for side in (-1, 1):
        cv2.ellipse(img, p(cx + side * hw, cy + 5 * s), p(11 * s, 22 * s), 0, 0, 360, neck, -1, aa)
    cv2.ellipse(img, p(cx, cy), p(hw, hh), 0, 0, 360, style.skin, -1, aa)
    if style.hair_style in ("short", "long", "bun"):
        cv2.ellipse(img, p(cx, cy - hh * 0.35), p(hw + 3 * s, hh * 0.7), 0, 180, 360, style.hair,
                    -1, aa)  # fmt: skip
        if style.hair_style == "bun":
            cv2.circle(img, p(cx, cy - hh - 18 * s), int(26 * s), style.hair, -1, aa)
    if style.beard:
        cv2.ellipse(img, p(cx, cy + hh * 0.45), p(hw * 0.85, hh * 0.55), 0, 0, 180, style.hair,
                    -1, aa)  # fmt: skip
    # eyes, lids and brows
    ey = cy - hh * 0.12
    for side in (-1, 1):
        ex = cx + side * hw * 0.4
        cv2.ellipse(img, p(ex, ey), p(17 * s, 9 * s), 0, 0, 360, (245, 245, 245), -1, aa)
        cv2.circle(img, p(ex, ey), int(7 * s), style.eyes, -1, aa)
        cv2.circle(img, p(ex, ey), int(3 * s), (10, 10, 10), -1, aa)
        if closure > 0.02:
            lid = ey - 10 * s + closure * 20 * s
            cv2.rectangle(img, p(ex - 19 * s, ey - 11 * s), p(ex + 19 * s, lid), style.skin, -1)
            cv2.line(img, p(ex - 17 * s, lid), p(ex + 17 * s, lid), neck, max(1, int(2 * s)), aa)
        cv2.line(img, p(ex - 18 * s, ey - 20 * s), p(ex + 18 * s, ey - 23 * s - side * 2 * s),
                 style.hair, max(1, int(5 * s)), aa)  # fmt: skip
    # nose
    nose = np.array(
        [p(cx, ey + 8 * s), p(cx - 9 * s, cy + hh * 0.28), p(cx + 4 * s, cy + hh * 0.3)]
    )
    cv2.polylines(img, [nose], False, neck, max(1, int(3 * s)), aa)
    # mouth: inner opening, teeth, lips
    o = float(np.clip(opening, 0.0, 1.0))
    my = cy + hh * 0.55
    mw = (30 - 6 * o) * s
    mh = (1.5 + 15 * o) * s
    cv2.ellipse(img, p(cx, my), p(mw + 4 * s, mh + 5 * s), 0, 0, 360, style.lips, -1, aa)
    cv2.ellipse(img, p(cx, my), p(mw, mh), 0, 0, 360, (40, 30, 90), -1, aa)
    if o > 0.25:
        cv2.ellipse(img, p(cx, my - mh * 0.75), p(mw * 0.7, mh * 0.3), 0, 0, 360, (235, 235, 235),
                    -1, aa)  # fmt: skip
    return img


def ffmpeg_version() -> str:
    """First line of ``ffmpeg -version`` (``"unknown"`` when it cannot be run)."""
    try:
        res = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    lines = res.stdout.splitlines()
    return " ".join(lines[0].split()[:3]) if lines else "unknown"


def _frames(
    style: FaceStyle, opening: np.ndarray, closure: np.ndarray, size: int
) -> Iterator[bytes]:
    # Drawn with 64 mouth and 5 eyelid levels; frames are cached by level.
    cache: dict[tuple[int, int], bytes] = {}
    for o, c in zip(opening, closure, strict=True):
        key = (int(round(float(o) * _MOUTH_LEVELS)), int(round(float(c) * _LID_LEVELS)))
        frame = cache.get(key)
        if frame is None:
            o_q, c_q = key[0] / _MOUTH_LEVELS, key[1] / _LID_LEVELS
            frame = render_frame(style, o_q, c_q, size).tobytes()
            cache[key] = frame
        yield frame


def write_talker_video(
    path: Path,
    opening: np.ndarray,
    closure: np.ndarray,
    style: FaceStyle,
    fps: float,
    *,
    size: int = 360,
) -> None:
    """Encode a face video as H.264 MP4 with ffmpeg, one frame per opening value.

    Parameters
    ----------
    path : Path
        Output file (written as is; the caller renames it into place).
    opening : ndarray, shape (n_frames,)
        Mouth opening per frame, 0-1.
    closure : ndarray, shape (n_frames,)
        Eyelid closure per frame, 0-1.
    style : FaceStyle
    fps : float
        Frames per second.
    size : int
        Width and height, pixels (even).

    Raises
    ------
    StimulusError
        ffmpeg is missing or failed.
    """
    if shutil.which("ffmpeg") is None:
        raise StimulusError(
            "ffmpeg is not installed; talker videos are encoded with it.",
            "install the Debian package ffmpeg: sudo apt-get install ffmpeg.",
        )
    rate = _fps_fraction(fps)
    r = f"{rate.numerator}/{rate.denominator}"
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
           "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{size}x{size}", "-r", r, "-i", "-",
           "-an", "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p",
           "-threads", "1", "-fps_mode", "passthrough", "-movflags", "+faststart",
           "-f", "mp4", str(path)]  # fmt: skip
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert proc.stdin is not None and proc.stderr is not None
    try:
        for frame in _frames(style, opening, closure, size):
            proc.stdin.write(frame)
        proc.stdin.close()
    except BrokenPipeError:
        pass
    err = proc.stderr.read().decode(errors="replace").strip()
    proc.stderr.close()
    if proc.wait() != 0:
        raise StimulusError(
            f"ffmpeg could not write {path}: {err.splitlines()[-1] if err else 'no message'}.",
            f"run the command by hand to see why: {' '.join(cmd)}",
        )
    logger.debug("wrote %s (%d frames at %s fps)", path, len(opening), r)
