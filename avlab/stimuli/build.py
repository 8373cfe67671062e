"""Building a stimulus folder from a list of :class:`StimulusRequest`.

Each request becomes ``<stim_id>.wav`` (speech synthesized or loaded,
resampled, trimmed, loudness-normalized) and, when it asks for video,
``<stim_id>.mp4`` and ``<stim_id>.mouth.npy``; then the noises are made from
all the speech. Every entry records the SHA-256 of its request (with the
settings, the engine version and a recorded file's checksum), so a rebuild
skips what is unchanged and intact. Files are written under temporary names
and renamed into place; ``stimuli.json`` is rewritten after every stimulus, so
an interrupted build keeps what it finished.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import soundfile as sf
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from avlab import __version__
from avlab._logging import logger
from avlab.errors import OutputError
from avlab.protocol.plan import StimulusRequest
from avlab.stimuli import face, noise, tts
from avlab.stimuli.loudness import normalize_loudness
from avlab.stimuli.manifest import (
    MANIFEST_NAME,
    NOISE_KINDS,
    NoiseStimulus,
    Stimulus,
    StimulusManifest,
    StimulusSet,
    sha256_file,
)
from avlab.stimuli.tts import StimulusError

__all__ = ["BUILD_VERSION", "VIDEO_SIZE", "build_stimuli", "request_sha256"]

#: Bump when the same request would give different files (changes the request hashes).
BUILD_VERSION = 1
#: Talker video width and height, pixels.
VIDEO_SIZE = 360


def _json_hash(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def _source_path(req: StimulusRequest, base_dir: Path) -> Path | None:
    if req.file is None:
        if req.voice.engine == "file":
            raise StimulusError(
                f"stimulus {req.stim_id}: voice engine 'file' but no file is given.",
                "give the utterance's recorded file, or a synthesizer voice and a text.",
            )
        return None
    path = Path(req.file).expanduser()
    return path if path.is_absolute() else base_dir / path


def request_sha256(
    req: StimulusRequest,
    *,
    base_dir: Path,
    target_lufs: float,
    srate: int,
    fps: float,
) -> str:
    """Hash of everything a stimulus's files depend on.

    Parameters
    ----------
    req : StimulusRequest
    base_dir : Path
        Folder relative speech files are resolved from.
    target_lufs : float
    srate : int
    fps : float

    Returns
    -------
    sha256 : str
        Changes with the request, the settings, the engine version, the
        content of a recorded file and :data:`BUILD_VERSION`.
    """
    source = _source_path(req, base_dir)
    engine = "file" if source is not None else req.voice.engine
    key = {
        "request": req.model_dump(mode="json"),
        "build": BUILD_VERSION,
        "srate": srate,
        "target_lufs": target_lufs,
        "engine": tts.engine_version(engine),
        "source": sha256_file(source) if source is not None and source.is_file() else None,
        "video": {"fps": fps, "lead_s": face.LEAD_S, "size": VIDEO_SIZE} if req.video else None,
    }
    return _json_hash(key)


def _write_wav(path: Path, audio: np.ndarray, srate: int) -> str:
    tmp = path.with_name(f".{path.name}.tmp")
    sf.write(tmp, audio, srate, subtype="PCM_24", format="WAV")
    os.replace(tmp, path)
    logger.info("wrote %s", path)
    return sha256_file(path)


def _build_one(
    req: StimulusRequest, out_dir: Path, base_dir: Path, rhash: str, cfg: dict
) -> Stimulus:
    srate, fps, target = cfg["srate"], cfg["fps"], cfg["target_lufs"]
    source = _source_path(req, base_dir)
    if source is not None:
        audio = tts.load_audio_file(source, srate)
        engine = "file"
    else:
        audio = tts.synthesize(req.voice, req.text, srate)
        engine = req.voice.engine
    try:
        audio, loud = normalize_loudness(audio, srate, target, name=f"stimulus {req.stim_id}")
    except ValueError as exc:
        raise StimulusError(
            f"stimulus {req.stim_id}: {exc}.", "check the speech file or the text."
        ) from exc
    wav = out_dir / f"{req.stim_id}.wav"
    fields: dict = {
        "stim_id": req.stim_id,
        "talker": req.talker,
        "text": req.text,
        "voice": req.voice,
        "engine_version": tts.engine_version(engine),
        "source": str(source) if source is not None else None,
        "wav": Path(wav.name),
        "sha256": _write_wav(wav, audio, srate),
        "duration_s": round(len(audio) / srate, 6),
        "srate": srate,
        "n_samples": len(audio),
        "lufs": loud.lufs_after,
        "gain_db": loud.gain_db,
        "loudness": loud,
        "request_sha256": rhash,
    }
    if req.video:
        opening = face.mouth_track(audio, srate, fps)
        seed = int.from_bytes(hashlib.sha256(req.stim_id.encode()).digest()[:4], "little")
        closure, blinks = face.blink_track(len(opening), fps, seed)
        video, mouth = out_dir / f"{req.stim_id}.mp4", out_dir / f"{req.stim_id}.mouth.npy"
        tmp = video.with_name(f".{video.name}.tmp")
        face.write_talker_video(tmp, opening, closure, face.face_style(req.face), fps,
                                size=VIDEO_SIZE)  # fmt: skip
        os.replace(tmp, video)
        logger.info("wrote %s (%d frames)", video, len(opening))
        tmp = mouth.with_name(f".{mouth.name}.tmp")
        with open(tmp, "wb") as f:
            np.save(f, opening)
        os.replace(tmp, mouth)
        fields |= {
            "video": Path(video.name),
            "video_sha256": sha256_file(video),
            "mouth": Path(mouth.name),
            "mouth_sha256": sha256_file(mouth),
            "n_frames": len(opening),
            "fps": fps,
            "face": req.face,
            "lead_s": face.LEAD_S,
            "blinks_s": blinks,
        }
    return Stimulus(**fields)


def _intact(entry: Stimulus | NoiseStimulus, out_dir: Path) -> bool:
    for rel, expected in entry.files():
        path = out_dir / rel
        if not path.is_file() or sha256_file(path) != expected:
            logger.info("%s is missing or changed; rebuilding it", path)
            return False
    return True


def _old_manifest(out_dir: Path) -> StimulusManifest | None:
    path = out_dir / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        return StimulusManifest.model_validate_json(path.read_bytes())
    except ValueError as exc:
        logger.warning("%s is corrupt (%s); rebuilding everything", path, str(exc).splitlines()[0])
        return None


def _read(path: Path) -> np.ndarray:
    data, _ = sf.read(path, dtype="float32")
    return data


def _babble_sources(speech: list[Stimulus]) -> list[Stimulus]:
    by_talker: dict[str, list[Stimulus]] = {}
    for s in sorted(speech, key=lambda s: s.stim_id):
        by_talker.setdefault(s.talker, []).append(s)
    groups = [by_talker[t] for t in sorted(by_talker)]
    out: list[Stimulus] = []
    i = 0
    while len(out) < min(noise.BABBLE_TALKERS, len(speech)):  # round robin over talkers
        g = groups[i % len(groups)]
        if i // len(groups) < len(g):
            out.append(g[i // len(groups)])
        i += 1
    return out


def _build_noise(
    kind: str, speech: list[Stimulus], out_dir: Path, rhash: str, cfg: dict
) -> NoiseStimulus:
    srate = cfg["srate"]
    if kind == "white":
        sources: list[Stimulus] = []
        x = noise.white_noise(srate)
    elif kind == "speech-shaped":
        sources = speech

        def gen() -> Iterator[np.ndarray]:
            for s in speech:
                yield _read(out_dir / s.wav)

        x = noise.speech_shaped_noise(gen(), srate)
    else:
        sources = _babble_sources(speech)
        x = noise.babble_noise([_read(out_dir / s.wav) for s in sources], srate)
    x, loud = normalize_loudness(x, srate, cfg["target_lufs"], name=f"{kind} noise")
    (out_dir / "noise").mkdir(exist_ok=True)
    wav = Path("noise") / f"{kind}.wav"
    return NoiseStimulus(
        kind=kind,  # type: ignore[arg-type]
        wav=wav,
        sha256=_write_wav(out_dir / wav, x, srate),
        duration_s=round(len(x) / srate, 6),
        srate=srate,
        lufs=loud.lufs_after,
        gain_db=loud.gain_db,
        loudness=loud,
        sources=[s.stim_id for s in sources],
        request_sha256=rhash,
    )


class _Builder:
    """State of one build: settings, finished entries, manifest writes."""

    def __init__(self, out_dir: Path, cfg: dict, tools: dict[str, str], order: list[str]) -> None:
        self.out_dir, self.cfg, self.tools, self.order = out_dir, cfg, tools, order
        self.stimuli: dict[str, Stimulus] = {}
        self.noise: dict[str, NoiseStimulus] = {}
        self.lock = threading.Lock()

    def manifest(self) -> StimulusManifest:
        return StimulusManifest(
            avlab_version=__version__,
            created=datetime.now(UTC).isoformat(timespec="seconds"),
            srate=self.cfg["srate"],
            fps=self.cfg["fps"],
            target_lufs=self.cfg["target_lufs"],
            tools=self.tools,
            stimuli=[self.stimuli[i] for i in self.order if i in self.stimuli],
            noise=[self.noise[k] for k in NOISE_KINDS if k in self.noise],
        )

    def add(self, entry: Stimulus | NoiseStimulus) -> None:
        with self.lock:
            if isinstance(entry, Stimulus):
                self.stimuli[entry.stim_id] = entry
            else:
                self.noise[entry.kind] = entry
            StimulusSet(self.out_dir, self.manifest()).save()


def _check_requests(requests: list[StimulusRequest], srate: int, fps: float) -> None:
    ids = [r.stim_id for r in requests]
    dups = sorted({i for i in ids if ids.count(i) > 1})
    if dups:
        raise ValueError(f"duplicate stimulus ids: {', '.join(dups)}")
    if srate < 8000:
        raise ValueError(f"srate must be at least 8000 Hz, got {srate}")
    if not 10 <= fps <= 60:
        raise ValueError(f"fps must be between 10 and 60 (25-30 is usual), got {fps}")


def _remove_orphans(
    old: StimulusManifest | None, keep: set[str], keep_noise: set[str], out_dir: Path
) -> None:
    """Delete the files of entries the old manifest had and the new one does not."""
    entries: list[Stimulus | NoiseStimulus] = []
    if old is not None:
        entries = [s for s in old.stimuli if s.stim_id not in keep]
        entries += [n for n in old.noise if n.kind not in keep_noise]
    for entry in entries:
        for rel, _ in entry.files():
            (out_dir / rel).unlink(missing_ok=True)
        name = entry.stim_id if isinstance(entry, Stimulus) else f"noise-{entry.kind}"
        logger.info("removed %s from %s (no longer built)", name, out_dir)


def build_stimuli(
    requests: list[StimulusRequest],
    out_dir: Path,
    *,
    base_dir: Path | None = None,
    target_lufs: float = -23.0,
    srate: int = 48000,
    fps: float = 25.0,
    force: bool = False,
    jobs: int = 2,
    progress: bool = True,
) -> StimulusSet:
    """Build (or update) a stimulus folder.

    Parameters
    ----------
    requests : list of StimulusRequest
        What to build; ids must be unique.
    out_dir : Path
        Output folder (created); holds ``stimuli.json``.
    base_dir : Path | None
        Folder relative speech files are resolved from (the protocol's
        folder); default the current directory.
    target_lufs : float
        Loudness of every stimulus and noise, LUFS (BS.1770).
    srate : int
        Output sampling rate, Hz.
    fps : float
        Talker video frame rate, frames/s (10-60; 25-30 usual).
    force : bool
        Rebuild everything, even unchanged stimuli.
    jobs : int
        Stimuli built at once (threads; synthesis and encoding run in subprocesses).
    progress : bool
        Show a progress bar on stderr.

    Returns
    -------
    stimuli : StimulusSet
        :attr:`StimulusSet.rebuilt` lists what this call built.

    Raises
    ------
    StimulusError
        A missing engine, voice, program or speech file (checked before any work).
    OutputError
        ``out_dir`` cannot be created.
    ValueError
        Duplicate ids or settings out of range.
    """
    _check_requests(requests, srate, fps)
    out_dir = Path(out_dir)
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"cannot create the stimulus folder {out_dir}: {exc.strerror}.",
            "choose another --out folder.",
        ) from exc
    for stale in [*out_dir.glob(".*.tmp"), *out_dir.glob("noise/.*.tmp")]:
        stale.unlink()  # left by an interrupted build
    engines: set[str] = set()
    for req in requests:  # fail before any work
        source = _source_path(req, base)
        if source is None:
            tts.check_engine_voice(req.voice)
            engines.add(req.voice.engine)
        elif not source.is_file():
            raise StimulusError(
                f"stimulus {req.stim_id}: speech file {source} does not exist.",
                f"check the file name; relative paths are resolved from {base}.",
            )
        else:
            engines.add("file")
    tools = {e: tts.engine_version(e) for e in sorted(engines)}
    if any(r.video for r in requests):
        tools["ffmpeg"] = face.ffmpeg_version()
    cfg = {"srate": srate, "fps": fps, "target_lufs": target_lufs}
    old = _old_manifest(out_dir)
    reuse = old is not None and not force
    old_stimuli = {s.stim_id: s for s in old.stimuli} if reuse and old else {}
    old_noise = {n.kind: n for n in old.noise} if reuse and old else {}
    builder = _Builder(out_dir, cfg, tools, [r.stim_id for r in requests])
    todo: list[tuple[StimulusRequest, str]] = []
    for req in requests:
        rhash = request_sha256(req, base_dir=base, target_lufs=target_lufs, srate=srate, fps=fps)
        prev = old_stimuli.get(req.stim_id)
        if prev is not None and prev.request_sha256 == rhash and _intact(prev, out_dir):
            builder.stimuli[req.stim_id] = prev
        else:
            todo.append((req, rhash))
    logger.info("stimuli: %d to build, %d unchanged", len(todo), len(builder.stimuli))
    rebuilt: list[str] = []
    console = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=console, disable=not progress, transient=False) as bar:
        task = bar.add_task("stimuli", total=len(requests) + len(NOISE_KINDS))
        bar.advance(task, len(requests) - len(todo))
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures = {pool.submit(_build_one, r, out_dir, base, h, cfg): r for r, h in todo}
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for fut in done:
                    if fut.exception() is not None:
                        for p in pending:
                            p.cancel()
                        raise fut.exception()  # type: ignore[misc]
                    builder.add(fut.result())
                    rebuilt.append(futures[fut].stim_id)
                    bar.advance(task)
        speech = [builder.stimuli[r.stim_id] for r in requests if r.talker != "noise"]
        sources = _json_hash([[s.stim_id, s.sha256] for s in speech])
        for kind in NOISE_KINDS:
            key = {"kind": kind, "build": BUILD_VERSION, "srate": srate, "lufs": target_lufs,
                   "speech": sources if kind != "white" else None}  # fmt: skip
            rhash = _json_hash(key)
            prev_noise = old_noise.get(kind)
            if kind != "white" and not speech:
                logger.warning("no speech stimuli: %s noise not built", kind)
            elif (
                prev_noise is not None
                and prev_noise.request_sha256 == rhash
                and _intact(prev_noise, out_dir)
            ):
                builder.noise[kind] = prev_noise
            else:
                builder.add(_build_noise(kind, speech, out_dir, rhash, cfg))
                rebuilt.append(f"noise-{kind}")
            bar.advance(task)
    _remove_orphans(old, {r.stim_id for r in requests}, set(builder.noise), out_dir)
    manifest = builder.manifest()
    if old is not None and manifest.model_copy(update={"created": old.created}) == old:
        # nothing changed: leave stimuli.json as it is, byte for byte
        logger.info("%s is up to date (%d stimuli)", out_dir / MANIFEST_NAME, len(manifest.stimuli))
        return StimulusSet(out_dir, old, rebuilt=tuple(rebuilt))
    result = StimulusSet(out_dir, manifest, rebuilt=tuple(rebuilt))
    path = result.save()
    logger.info("wrote %s (%d stimuli, %d rebuilt)", path, len(result), len(rebuilt))
    return result
