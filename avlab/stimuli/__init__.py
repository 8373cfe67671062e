"""Stimuli: the speech, talker videos and noises a protocol needs.

>>> stimuli = build_stimuli(stimulus_requests(protocol), Path("stimuli/x"))  # doctest: +SKIP
>>> stimuli.get("amy-lighthouse").wav                                       # doctest: +SKIP

Speech is synthesized with espeak-ng, flite or festival (or loaded from a
recorded file), resampled to 48 kHz, trimmed, and normalized to -23 LUFS
(ITU-R BS.1770); talker videos are animated faces whose mouth follows the
speech envelope; noises (speech-shaped, babble, white) are made from the
speech. ``stimuli.json`` records every file's SHA-256 and the hash of its
request, so rebuilding skips what is unchanged.
"""

from __future__ import annotations

from avlab.stimuli.build import build_stimuli, request_sha256
from avlab.stimuli.face import LEAD_S, face_style, mouth_track, speech_envelope
from avlab.stimuli.from_protocol import build_protocol_stimuli, default_stimulus_dir
from avlab.stimuli.loudness import Loudness, measure_loudness, normalize_loudness
from avlab.stimuli.manifest import (
    MANIFEST_NAME,
    NOISE_KINDS,
    NoiseStimulus,
    Stimulus,
    StimulusManifest,
    StimulusSet,
)
from avlab.stimuli.tts import StimulusError, check_engine_voice, synthesize

__all__ = [
    "LEAD_S",
    "MANIFEST_NAME",
    "NOISE_KINDS",
    "Loudness",
    "NoiseStimulus",
    "Stimulus",
    "StimulusError",
    "StimulusManifest",
    "StimulusSet",
    "build_protocol_stimuli",
    "build_stimuli",
    "check_engine_voice",
    "default_stimulus_dir",
    "face_style",
    "measure_loudness",
    "mouth_track",
    "normalize_loudness",
    "request_sha256",
    "speech_envelope",
    "synthesize",
]
