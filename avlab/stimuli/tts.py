"""Speech from text through Debian's synthesizers, called as subprocesses.

Engines: ``espeak-ng`` (``espeak-ng -v VOICE -s RATE -p PITCH -w out.wav``),
``flite`` (``flite -voice slt -f text.txt -o out.wav``) and ``festival``
(``text2wave -eval "(voice_kal_diphone)"``); ``file`` loads a recorded WAV/FLAC.
Every result is mono float32 at the requested rate; synthesized speech has
its leading and trailing silence trimmed to :data:`TRIM_MARGIN_S` (padded
with zeros where the engine left less). Recorded files are kept as given
(only mixed to mono and resampled), so their timing is the experimenter's.

A missing engine or voice is a :class:`StimulusError` naming it and the
Debian package that provides it; voices are checked before synthesis because
``flite`` silently falls back to its default voice for an unknown name.
"""

from __future__ import annotations

import functools
import math
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from avlab._logging import logger
from avlab.errors import AvlabError
from avlab.protocol.plan import Voice
from avlab.protocol.voices import available_voices

__all__ = [
    "DEBIAN_PACKAGES",
    "TRIM_MARGIN_S",
    "StimulusError",
    "check_engine_voice",
    "engine_version",
    "load_audio_file",
    "resample",
    "synthesize",
    "trim_silence",
]

#: Silence kept before the first and after the last sound of synthesized speech, s.
TRIM_MARGIN_S = 0.1
#: Frames quieter than this relative to the loudest 10-ms frame count as silence, dB.
TRIM_THRESHOLD_DB = -45.0
#: Engine programs and the Debian packages that provide them.
DEBIAN_PACKAGES = {"espeak-ng": "espeak-ng", "flite": "flite", "festival": "festival"}
_PROGRAMS = {"espeak-ng": "espeak-ng", "flite": "flite", "festival": "text2wave"}
#: Festival voices and their Debian packages.
_FESTIVAL_PACKAGES = {
    "kal_diphone": "festvox-kallpc16k",
    "ked_diphone": "festvox-kdlpc16k",
    "rab_diphone": "festvox-rablpc16k",
    "don_diphone": "festvox-don",
    "cmu_us_slt_arctic_hts": "festvox-us-slt-hts",
    "ona_hts": "festvox-ca-ona-hts",
}
#: Approximate default speaking rates (words per minute, pauses included) used to
#: turn ``rate_wpm`` into flite's ``duration_stretch`` and festival's
#: ``Duration_Stretch``; measured on a 46-word passage with this machine's voices.
_DEFAULT_WPM = {"flite": 190.0, "festival": 165.0}
_TIMEOUT_S = 120.0


class StimulusError(AvlabError, RuntimeError):
    """A stimulus cannot be built (engine, voice or input file problem)."""


def _voice_package(engine: str, base: str) -> str:
    if engine == "espeak-ng":
        if base.startswith("mb-"):
            return f"mbrola-{base.removeprefix('mb-').split('-')[0]}"
        return "espeak-ng-data"
    if engine == "flite":
        return "flite (its voices kal, kal16, awb, rms and slt are built in)"
    return _FESTIVAL_PACKAGES.get(base, "a festvox-* package (apt-cache search festvox)")


def check_engine_voice(voice: Voice) -> None:
    """Check that a voice's engine and voice are installed.

    Parameters
    ----------
    voice : Voice

    Raises
    ------
    StimulusError
        The engine program is missing, or the voice is unknown to it; the
        message names both and the Debian package that provides them.
    """
    engine = voice.engine
    if engine == "file":
        return
    program = _PROGRAMS[engine]
    if shutil.which(program) is None or available_voices(engine) is None:
        raise StimulusError(
            f"speech engine {engine} is not installed (program {program!r} not found).",
            f"install the Debian package {DEBIAN_PACKAGES[engine]}: "
            f"sudo apt-get install {DEBIAN_PACKAGES[engine]}.",
        )
    voices, variants = available_voices(engine) or (frozenset(), frozenset())
    name = voice.name.strip()
    if not name:
        if engine == "espeak-ng":
            return  # espeak-ng's default voice
        raise StimulusError(
            f"{engine} voice is empty.",
            f"name one of: {', '.join(sorted(voices))}.",
        )
    base, _, variant = name.lower().partition("+")
    if engine == "festival":
        base = base.removeprefix("voice_")
    if base not in voices:
        raise StimulusError(
            f"{engine} voice {name!r} is not installed here.",
            f"install the Debian package {_voice_package(engine, base)}, or use one of: "
            f"{', '.join(sorted(voices)[:30])}.",
        )
    if variant and variant not in variants:
        # the classic variants (+m1..+m7, +f1..+f5) first, then named ones
        ranked = sorted(variants, key=lambda v: (not re.fullmatch(r"[mf]\d+", v), v))
        more = f" and {len(ranked) - 20} more" if len(ranked) > 20 else ""
        raise StimulusError(
            f"espeak-ng voice variant {'+' + variant!r} (in {name!r}) does not exist.",
            f"use one of: {', '.join('+' + v for v in ranked[:20])}{more} "
            "(espeak-ng --voices=variant; Debian package espeak-ng-data).",
        )


@functools.cache
def engine_version(engine: str) -> str:
    """Version string of a speech engine (or of libsndfile for ``"file"``).

    Parameters
    ----------
    engine : {"espeak-ng", "flite", "festival", "file"}

    Returns
    -------
    version : str
        For example ``"eSpeak NG text-to-speech: 1.51"``; ``"unknown"`` when
        the engine does not say.
    """
    if engine == "file":
        return f"soundfile {sf.__version__} ({sf.__libsndfile_version__})"
    args = {"espeak-ng": ["espeak-ng", "--version"], "flite": ["flite", "--version"]}
    cmd = args.get(engine, ["festival", "--version"])
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    out = (res.stdout + res.stderr).strip()
    if engine == "espeak-ng":
        return out.split("Data at")[0].strip() or "unknown"
    if engine == "flite":
        line = next((ln for ln in out.splitlines() if "version" in ln), "")
        return line.replace("version:", "").strip() or "unknown"
    return out.splitlines()[0].strip() if out else "unknown"


def _command(voice: Voice, text_file: Path, wav: Path) -> list[str]:
    engine, name = voice.engine, voice.name.strip()
    if engine == "espeak-ng":
        cmd = ["espeak-ng", "-b", "1", "-w", str(wav), "-f", str(text_file)]
        if name:
            cmd[1:1] = ["-v", name]
        if voice.rate_wpm is not None:
            cmd += ["-s", str(int(round(voice.rate_wpm)))]
        if voice.pitch is not None:
            cmd += ["-p", str(int(round(voice.pitch)))]
        return cmd
    if engine == "flite":
        cmd = ["flite", "-voice", name, "-f", str(text_file), "-o", str(wav)]
        if voice.rate_wpm is not None:
            stretch = _DEFAULT_WPM["flite"] / voice.rate_wpm
            cmd[1:1] = ["--setf", f"duration_stretch={stretch:.4f}"]
        if voice.pitch is not None:
            logger.info("flite voice %s: pitch is an espeak-ng setting; ignored", name)
        return cmd
    fest = name.lower()
    fest = fest if fest.startswith("voice_") else f"voice_{fest}"
    scheme = f"({fest})"
    if voice.rate_wpm is not None:
        if fest.endswith("_hts"):
            logger.warning("festival HTS voice %s does not support a speaking rate; ignored", fest)
        else:
            stretch = _DEFAULT_WPM["festival"] / voice.rate_wpm
            scheme = f"(begin {scheme} (Parameter.set 'Duration_Stretch {stretch:.4f}))"
    if voice.pitch is not None:
        logger.info("festival voice %s: pitch is an espeak-ng setting; ignored", fest)
    return ["text2wave", "-eval", scheme, "-o", str(wav), str(text_file)]


def synthesize(voice: Voice, text: str, srate: int) -> np.ndarray:
    """Speak a text with a synthesizer voice.

    Parameters
    ----------
    voice : Voice
        ``engine`` one of espeak-ng, flite, festival.
    text : str
        What is said (UTF-8).
    srate : int
        Output sampling rate, Hz.

    Returns
    -------
    audio : ndarray, shape (n_samples,), float32
        Mono speech in [-1, 1], silence trimmed to :data:`TRIM_MARGIN_S` at both ends.

    Raises
    ------
    StimulusError
        Missing engine or voice, empty text, or the engine failed (its stderr quoted).
    """
    if voice.engine == "file":
        raise ValueError("synthesize() needs a synthesizer voice; use load_audio_file()")
    check_engine_voice(voice)
    if not text.strip():
        raise StimulusError(
            f"nothing to say: empty text for {voice.engine} voice {voice.name!r}.",
            "give the utterance a text, or a recorded file.",
        )
    with tempfile.TemporaryDirectory(prefix="avlab-tts-") as tmp:
        text_file, wav = Path(tmp) / "text.txt", Path(tmp) / "speech.wav"
        text_file.write_text(text.strip() + "\n", encoding="utf-8")
        cmd = _command(voice, text_file, wav)
        logger.debug("synthesizing: %s", " ".join(cmd))
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=_TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            raise StimulusError(
                f"{voice.engine} took more than {_TIMEOUT_S:.0f} s for voice {voice.name!r}.",
                "split the text into shorter utterances.",
            ) from exc
        if res.returncode != 0 or not wav.is_file() or wav.stat().st_size <= 44:
            err = (res.stderr or res.stdout).strip().splitlines()
            raise StimulusError(
                f"{voice.engine} voice {voice.name!r} failed (exit {res.returncode}): "
                f"{err[-1] if err else 'no output'}.",
                f"run the command by hand to see why: {' '.join(cmd)}",
            )
        data, rate = sf.read(wav, dtype="float32", always_2d=True)
    audio = resample(data.mean(axis=1), rate, srate)
    return trim_silence(audio, srate)


def load_audio_file(path: Path, srate: int) -> np.ndarray:
    """Load a recorded speech or noise file as mono at ``srate``.

    Parameters
    ----------
    path : Path
        WAV or FLAC (anything libsndfile reads).
    srate : int
        Output sampling rate, Hz.

    Returns
    -------
    audio : ndarray, shape (n_samples,), float32
        Channels averaged; not trimmed.

    Raises
    ------
    StimulusError
        The file is missing, unreadable or empty.
    """
    if not path.is_file():
        raise StimulusError(
            f"speech file {path} does not exist.",
            "check the file name; relative paths are resolved from the protocol's folder.",
        )
    try:
        data, rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise StimulusError(
            f"speech file {path} cannot be read: {exc}.", "give a WAV or FLAC file."
        ) from exc
    if data.shape[0] == 0:
        raise StimulusError(f"speech file {path} is empty.", "give a file with audio in it.")
    if data.shape[1] > 1:
        logger.info("%s: %d channels mixed to mono", path, data.shape[1])
    return resample(data.mean(axis=1), rate, srate)


def resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Resample with a polyphase filter (``scipy.signal.resample_poly``).

    Parameters
    ----------
    audio : ndarray, shape (n_samples,)
    rate_in, rate_out : int
        Sampling rates, Hz.

    Returns
    -------
    audio : ndarray, shape (n_samples * rate_out / rate_in,), float32
    """
    rate_in, rate_out = int(rate_in), int(rate_out)
    if rate_in == rate_out:
        return np.asarray(audio, dtype=np.float32)
    g = math.gcd(rate_in, rate_out)
    return resample_poly(audio, rate_out // g, rate_in // g).astype(np.float32)


def trim_silence(
    audio: np.ndarray,
    srate: int,
    *,
    margin_s: float = TRIM_MARGIN_S,
    threshold_db: float = TRIM_THRESHOLD_DB,
) -> np.ndarray:
    """Cut leading and trailing silence down to a fixed margin.

    Parameters
    ----------
    audio : ndarray, shape (n_samples,)
    srate : int
        Hz.
    margin_s : float
        Silence kept (or zero-padded) before the first and after the last sound, s.
    threshold_db : float
        A 10-ms frame is sound when its RMS is above this, relative to the
        loudest frame, dB.

    Returns
    -------
    audio : ndarray, shape (n_out,), float32
        Exactly ``margin_s`` of silence at each end (to the sample).
    """
    hop = max(1, srate // 100)
    n = len(audio) // hop
    margin = int(round(margin_s * srate))
    if n == 0:
        return np.asarray(audio, dtype=np.float32)
    rms = np.sqrt(np.mean(audio[: n * hop].reshape(n, hop).astype(np.float64) ** 2, axis=1))
    loud = np.flatnonzero(rms > rms.max() * 10 ** (threshold_db / 20)) if rms.max() > 0 else []
    if len(loud) == 0:
        return np.asarray(audio, dtype=np.float32)
    start, stop = loud[0] * hop, min(len(audio), (loud[-1] + 1) * hop)
    core = audio[start:stop]
    pad_a = np.zeros(max(0, margin - start), dtype=np.float32)
    pad_b = np.zeros(max(0, margin - (len(audio) - stop)), dtype=np.float32)
    before = audio[max(0, start - margin) : start]
    after = audio[stop : stop + margin]
    return np.concatenate([pad_a, before, core, after, pad_b]).astype(np.float32)
