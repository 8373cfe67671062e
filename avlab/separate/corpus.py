"""Training material for the separation network: utterances, rooms and noise.

Speech comes from two places:

- **Synthesized**: sentences generated from a small grammar (original text, so
  no test transcript is spoken in training) and spoken by Debian's synthesizers:
  espeak-ng (English accents × voice variants × pitch × rate), flite (kal, kal16,
  awb, rms, slt) and festival (kal, ked, slt HTS). Each synthesizer voice is one
  "speaker"; a mixture never pairs a speaker with itself.
- **Recorded**: WAV files given by the trainer (``--speech DIR``), split into a
  training and a held-out list by name (:data:`HELD_OUT_DEFAULT`), so the
  benchmark's real-speech test mixtures are utterances training never saw.

Rooms are image-source shoebox rooms from pyroomacoustics (random size, RT60
0.15–0.7 s, two talkers and one microphone per room) plus any measured impulse
responses given (``--rir DIR``). Noise files (``--noise DIR``) and generated
pink noise are added at random SNRs.

The corpus is described by a :class:`CorpusManifest` (every utterance with its
source, voice and text, every room), saved with the trained weights.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
from pydantic import BaseModel, ConfigDict

from avlab._logging import logger
from avlab.separate._audio import load_mono

__all__ = [
    "HELD_OUT_DEFAULT",
    "CorpusManifest",
    "Utterance",
    "build_corpus",
    "make_sentences",
    "room_bank",
]

#: Recorded files (stems) kept out of training: the real-speech test set of B7,
#: one measured room and one noise.
HELD_OUT_DEFAULT = ("spk1_snt5", "spk1_snt6", "spk2_snt5", "spk2_snt6", "rir4", "noise3")

_SUBJECTS = (
    "the old farmer",
    "my neighbour",
    "a tired student",
    "the young doctor",
    "her brother",
    "the baker",
    "our teacher",
    "a quiet child",
    "the pilot",
    "his aunt",
    "the new driver",
    "a busy waiter",
    "the painter",
    "my cousin",
    "the guide",
    "a tall sailor",
    "the nurse",
    "the gardener",
    "their uncle",
    "a curious cat",
    "the orchestra",
    "the river boat",
)
_VERBS = (
    "carried",
    "painted",
    "found",
    "sold",
    "opened",
    "cleaned",
    "forgot",
    "borrowed",
    "repaired",
    "counted",
    "wrapped",
    "described",
    "measured",
    "dropped",
    "ordered",
    "watched",
    "followed",
    "collected",
    "moved",
    "returned",
    "tasted",
    "noticed",
)
_OBJECTS = (
    "a heavy box of apples",
    "the broken window",
    "seven green bottles",
    "the morning paper",
    "an old silver clock",
    "the wooden ladder",
    "a basket of warm bread",
    "the yellow kite",
    "two small lamps",
    "the map of the island",
    "a jar of honey",
    "the leather bag",
    "a bright red scarf",
    "the letters from home",
    "a pile of dry leaves",
    "the blue bicycle",
    "the last train ticket",
    "a bowl of cherries",
    "the garden gate",
    "a set of keys",
)
_TAILS = (
    "before the rain started",
    "near the harbour",
    "after a long lunch",
    "in the dark hall",
    "on a cold winter evening",
    "without saying a word",
    "at the top of the hill",
    "while the radio played",
    "behind the station",
    "early on sunday",
    "for the third time",
    "with great care",
    "next to the fountain",
    "during the storm",
    "by the kitchen door",
    "as the bells rang",
    "under the old bridge",
    "just in time",
    "in front of everyone",
)


def make_sentences(n: int, seed: int = 0) -> list[str]:
    """Return ``n`` distinct sentences from the grammar (subject verb object [tail])."""
    rng = random.Random(seed)
    out: set[str] = set()
    while len(out) < n:
        s = f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}"
        if rng.random() < 0.7:
            s += f" {rng.choice(_TAILS)}"
        out.add(s.capitalize() + ".")
    return sorted(out)


class Utterance(BaseModel):
    """One training utterance."""

    model_config = ConfigDict(extra="forbid")

    key: str
    speaker: str
    source: str  # "espeak-ng" | "flite" | "festival" | "recorded"
    voice: str = ""
    text: str = ""
    duration_s: float


class CorpusManifest(BaseModel):
    """What the separation network was trained on."""

    model_config = ConfigDict(extra="forbid")

    srate: int
    utterances: list[Utterance]
    held_out: list[str]
    rooms_simulated: int
    rirs_recorded: list[str]
    noise_files: list[str]

    @property
    def hours(self) -> float:
        """Total duration of the utterances, h."""
        return sum(u.duration_s for u in self.utterances) / 3600.0


def _espeak_voices(rng: random.Random, n: int) -> list[tuple[str, str, float, float]]:
    accents = (
        "en-us",
        "en-gb",
        "en-gb-scotland",
        "en-gb-x-rp",
        "en-029",
        "en-us-nyc",
        "en-gb-x-gbclan",
        "en-gb-x-gbcwmd",
    )
    variants = (
        "m1",
        "m2",
        "m3",
        "m4",
        "m5",
        "m6",
        "m7",
        "f1",
        "f2",
        "f3",
        "f4",
        "f5",
        "klatt",
        "klatt2",
        "klatt3",
        "klatt4",
        "Andy",
        "Annie",
        "Denis",
        "Ed",
        "John",
        "Linda",
        "Michael",
        "Alicia",
        "Belinda",
        "steph",
        "david",
        "max",
    )
    out = []
    for _ in range(n):
        out.append(
            (
                "espeak-ng",
                f"{rng.choice(accents)}+{rng.choice(variants)}",
                rng.uniform(150, 200),
                rng.uniform(25, 75),
            )
        )
    return out


def _synth_one(args: tuple[str, str, float | None, float | None, str, int]) -> np.ndarray | None:
    from avlab.protocol.plan import Voice
    from avlab.stimuli.tts import synthesize

    engine, name, rate, pitch, text, srate = args
    try:
        return synthesize(Voice(engine=engine, name=name, rate_wpm=rate, pitch=pitch), text, srate)
    except Exception as exc:  # an unusable voice variant: skip it, logged
        logger.info("skipped %s voice %s: %s", engine, name, exc)
        return None


def build_corpus(
    cache: Path,
    *,
    srate: int,
    n_synth: int,
    speech_dir: Path | None,
    held_out: Sequence[str] = HELD_OUT_DEFAULT,
    seed: int = 0,
    workers: int = 2,
) -> tuple[dict[str, np.ndarray], list[Utterance]]:
    """Synthesize (cached) and load the training utterances.

    Parameters
    ----------
    cache : Path
        Folder for synthesized WAVs (reused when the same settings are asked again).
    srate : int
        Hz.
    n_synth : int
        Synthesized utterances (espeak-ng 70 %, flite 20 %, festival 10 %).
    speech_dir : Path or None
        Recorded WAVs; names in ``held_out`` (stem) are not used.
    held_out : sequence of str
    seed : int
    workers : int
        Synthesizer processes at a time.

    Returns
    -------
    audio : dict of str to ndarray, shape (n,)
    utterances : list of Utterance
    """
    rng = random.Random(seed)
    texts = make_sentences(n_synth, seed)
    n_fl, n_fe = n_synth // 5, n_synth // 10
    n_es = n_synth - n_fl - n_fe
    jobs = _espeak_voices(rng, n_es)
    jobs += [
        ("flite", rng.choice(("kal", "kal16", "awb", "rms", "slt")), None, None)
        for _ in range(n_fl)
    ]
    jobs += [
        (
            "festival",
            rng.choice(("kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts")),
            None,
            None,
        )
        for _ in range(n_fe)
    ]
    cache.mkdir(parents=True, exist_ok=True)
    audio: dict[str, np.ndarray] = {}
    utts: list[Utterance] = []
    todo = []
    for (engine, name, rate, pitch), text in zip(jobs, texts, strict=True):
        tag = f"{engine}|{name}|{rate}|{pitch}|{text}|{srate}"
        key = hashlib.sha1(tag.encode()).hexdigest()[:12]
        speaker = f"{engine}:{name}" + (f":p{int(pitch) // 10}" if pitch else "")
        todo.append((key, speaker, engine, name, rate, pitch, text))
    missing = [t for t in todo if not (cache / f"{t[0]}.wav").is_file()]
    if missing:
        logger.info("synthesizing %d utterances into %s", len(missing), cache)
        with ThreadPoolExecutor(workers) as pool:
            results = pool.map(
                _synth_one, [(e, n, r, p, t, srate) for _, _, e, n, r, p, t in missing]
            )
            for (key, *_), y in zip(missing, results, strict=True):
                if y is not None and y.size > srate:
                    sf.write(cache / f"{key}.wav", y, srate, subtype="FLOAT")
                else:
                    (cache / f"{key}.skip").touch()
    for key, speaker, engine, name, _rate, _pitch, text in todo:
        f = cache / f"{key}.wav"
        if f.is_file():
            y, _ = sf.read(f, dtype="float32")
            audio[key] = y
            utts.append(
                Utterance(
                    key=key,
                    speaker=speaker,
                    source=engine,
                    voice=name,
                    text=text,
                    duration_s=y.size / srate,
                )
            )
    if speech_dir is not None:
        for f in sorted(Path(speech_dir).glob("*.wav")):
            if f.stem in held_out or "bab" in f.stem:
                continue
            y = load_mono(f, srate)
            key = f"rec:{f.stem}"
            audio[key] = y
            utts.append(
                Utterance(
                    key=key,
                    speaker=f"rec:{f.stem.split('_')[0]}",
                    source="recorded",
                    voice=f.name,
                    duration_s=y.size / srate,
                )
            )
    return audio, utts


def room_bank(n_rooms: int, srate: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Simulate ``n_rooms`` shoebox rooms, each with two talkers and one microphone.

    Returns
    -------
    rooms : list of (rir_a, rir_b)
        Impulse responses (1-D, normalised to a unit direct-path peak) from each
        talker to the microphone, at ``srate``.
    """
    import pyroomacoustics as pra

    rng = np.random.default_rng(seed)
    rooms = []
    for _ in range(n_rooms):
        dims = rng.uniform([3.0, 3.0, 2.4], [9.0, 8.0, 3.5])
        rt60 = rng.uniform(0.15, 0.7)
        try:
            absorption, max_order = pra.inverse_sabine(rt60, dims)
        except ValueError:
            continue
        room = pra.ShoeBox(
            dims, fs=srate, materials=pra.Material(absorption), max_order=min(max_order, 12)
        )
        mic = rng.uniform([0.5, 0.5, 1.0], dims - [0.5, 0.5, 1.0])
        for _k in range(2):
            src = rng.uniform([0.3, 0.3, 1.0], dims - [0.3, 0.3, 0.8])
            room.add_source(src)
        room.add_microphone(mic)
        room.compute_rir()
        pair = []
        for k in range(2):
            h = np.asarray(room.rir[0][k], dtype=np.float32)
            pair.append(h / (np.abs(h).max() + 1e-12))
        rooms.append((pair[0], pair[1]))
    return rooms
