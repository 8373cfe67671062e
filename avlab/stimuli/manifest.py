"""The stimulus manifest (``stimuli.json``) and the read API over a stimulus folder.

A stimulus folder holds ``<stim_id>.wav`` (mono, 24-bit PCM), for talkers with
video ``<stim_id>.mp4`` and ``<stim_id>.mouth.npy`` (mouth opening per frame),
the generated noises under ``noise/``, and ``stimuli.json``: one
:class:`Stimulus` per stimulus and one :class:`NoiseStimulus` per noise, with
the SHA-256 of every file. File paths are stored relative to the folder and
resolved to absolute paths by :meth:`StimulusSet.load`.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from avlab.errors import SessionError
from avlab.protocol.plan import Voice
from avlab.stimuli.loudness import Loudness

__all__ = [
    "MANIFEST_NAME",
    "NOISE_KINDS",
    "NoiseStimulus",
    "Stimulus",
    "StimulusManifest",
    "StimulusSet",
    "sha256_file",
]

MANIFEST_NAME = "stimuli.json"
NOISE_KINDS = ("speech-shaped", "babble", "white")
NoiseKind = Literal["speech-shaped", "babble", "white"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Stimulus(_Model):
    """One built stimulus: speech, and for talkers with video the face video.

    Attributes
    ----------
    stim_id, talker, text : str
        As requested.
    voice : Voice
    engine_version : str
        Synthesizer version (``espeak-ng --version`` ...), or the sound-file
        library for recorded files.
    source : str | None
        The recorded file used (engine ``file``), as resolved.
    wav : Path
        Mono WAV (24-bit PCM).
    sha256 : str
        SHA-256 of ``wav``.
    duration_s : float
        s.
    srate : int
        Hz.
    n_samples : int
    lufs : float
        Loudness after normalization, LUFS.
    gain_db : float
        Gain applied, dB.
    loudness : Loudness
        Details: method, before/after, peak limiting.
    video : Path | None
        Talker video (H.264 MP4), None without video.
    video_sha256 : str | None
    mouth : Path | None
        ``.npy`` of the mouth opening per frame, shape (n_frames,), float32, 0-1.
    mouth_sha256 : str | None
    n_frames : int | None
        ``ceil(duration_s * fps)``.
    fps : float | None
    face : str | None
        Face style key.
    lead_s : float | None
        How long the mouth leads the sound, s.
    blinks_s : list of float
        Blink onsets in the video, s.
    request_sha256 : str
        Hash of everything the build depended on; a rebuild skips the
        stimulus while it is unchanged.
    """

    stim_id: str
    talker: str
    text: str = ""
    voice: Voice
    engine_version: str
    source: str | None = None
    wav: Path
    sha256: str
    duration_s: float
    srate: int
    n_samples: int
    lufs: float
    gain_db: float
    loudness: Loudness
    video: Path | None = None
    video_sha256: str | None = None
    mouth: Path | None = None
    mouth_sha256: str | None = None
    n_frames: int | None = None
    fps: float | None = None
    face: str | None = None
    lead_s: float | None = None
    blinks_s: list[float] = Field(default_factory=list)
    request_sha256: str

    def files(self) -> list[tuple[Path, str]]:
        """List every file of the stimulus with its expected SHA-256."""
        out = [(self.wav, self.sha256)]
        if self.video is not None and self.video_sha256:
            out.append((self.video, self.video_sha256))
        if self.mouth is not None and self.mouth_sha256:
            out.append((self.mouth, self.mouth_sha256))
        return out


class NoiseStimulus(_Model):
    """A generated background noise.

    Attributes
    ----------
    kind : {"speech-shaped", "babble", "white"}
    wav : Path
    sha256 : str
    duration_s : float
    srate : int
    lufs, gain_db : float
    loudness : Loudness
    sources : list of str
        Stimulus ids it was made from (speech-shaped: spectrum; babble: talkers).
    request_sha256 : str
    """

    kind: NoiseKind
    wav: Path
    sha256: str
    duration_s: float
    srate: int
    lufs: float
    gain_db: float
    loudness: Loudness
    sources: list[str] = Field(default_factory=list)
    request_sha256: str

    def files(self) -> list[tuple[Path, str]]:
        """List the noise file with its expected SHA-256."""
        return [(self.wav, self.sha256)]


class StimulusManifest(_Model):
    """Contents of ``stimuli.json``.

    Attributes
    ----------
    format : "avlab-stimuli"
    version : int
    avlab_version : str
    created : str
        ISO 8601 time of the last build.
    srate : int
        Hz.
    fps : float
    target_lufs : float
    tools : dict of str to str
        Versions of the programs used (engines, ffmpeg).
    stimuli : list of Stimulus
    noise : list of NoiseStimulus
    """

    format: Literal["avlab-stimuli"] = "avlab-stimuli"
    version: Literal[1] = 1
    avlab_version: str
    created: str
    srate: int
    fps: float
    target_lufs: float
    tools: dict[str, str] = Field(default_factory=dict)
    stimuli: list[Stimulus]
    noise: list[NoiseStimulus] = Field(default_factory=list)


def sha256_file(path: Path) -> str:
    """SHA-256 of a file, hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _resolve(model: Stimulus | NoiseStimulus, folder: Path) -> Stimulus | NoiseStimulus:
    update = {}
    for key in ("wav", "video", "mouth"):
        value = getattr(model, key, None)
        if value is not None:
            update[key] = folder / value
    return model.model_copy(update=update)


class StimulusSet:
    """The stimuli in one folder, with absolute file paths.

    Parameters
    ----------
    folder : Path
        The stimulus folder.
    manifest : StimulusManifest
        With paths relative to ``folder`` (as stored).

    Attributes
    ----------
    folder : Path
    manifest : StimulusManifest
    rebuilt : tuple of str
        Ids (and ``noise-<kind>``) built by the call that returned this set;
        empty after :meth:`load`.
    """

    def __init__(
        self, folder: Path, manifest: StimulusManifest, *, rebuilt: tuple[str, ...] = ()
    ) -> None:
        self.folder = Path(folder).resolve()
        self.manifest = manifest
        self.rebuilt = rebuilt
        self._stimuli = {s.stim_id: _resolve(s, self.folder) for s in manifest.stimuli}
        self._noise = {n.kind: _resolve(n, self.folder) for n in manifest.noise}

    @classmethod
    def load(cls, folder: str | Path, *, verify: bool = True) -> StimulusSet:
        """Open a built stimulus folder.

        Parameters
        ----------
        folder : str or Path
        verify : bool
            Check the SHA-256 of every file (default).

        Returns
        -------
        stimuli : StimulusSet

        Raises
        ------
        SessionError
            No ``stimuli.json``, a corrupt one, or a missing/changed file (named).
        """
        folder = Path(folder)
        path = folder / MANIFEST_NAME
        if not path.is_file():
            raise SessionError(
                f"{path} does not exist: {folder} is not a built stimulus folder.",
                "build the stimuli first: avlab stimuli build PROTOCOL.",
            )
        try:
            manifest = StimulusManifest.model_validate_json(path.read_bytes())
        except (ValidationError, ValueError, OSError) as exc:
            first = str(exc).splitlines()[:3]
            raise SessionError(
                f"{path} is corrupt: {' '.join(first)}.",
                "rebuild the stimuli: avlab stimuli build PROTOCOL --force.",
            ) from exc
        stimuli = cls(folder, manifest)
        if verify:
            problems = stimuli.verify()
            if problems:
                more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
                raise SessionError(
                    f"{problems[0]}{more}.",
                    "rebuild the changed stimuli: avlab stimuli build PROTOCOL.",
                )
        return stimuli

    def save(self) -> Path:
        """Write ``stimuli.json`` atomically (temporary file, then rename).

        Returns
        -------
        path : Path
        """
        path = self.folder / MANIFEST_NAME
        tmp = path.with_name(f".{MANIFEST_NAME}.tmp")
        data = self.manifest.model_dump(mode="json")
        tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return path

    @property
    def ids(self) -> list[str]:
        """Stimulus ids, in build order."""
        return list(self._stimuli)

    @property
    def stimuli(self) -> list[Stimulus]:
        """Every stimulus, with absolute paths."""
        return list(self._stimuli.values())  # type: ignore[arg-type]

    def __contains__(self, stim_id: object) -> bool:
        return stim_id in self._stimuli

    def __len__(self) -> int:
        return len(self._stimuli)

    def get(self, stim_id: str) -> Stimulus:
        """One stimulus by id.

        Parameters
        ----------
        stim_id : str

        Returns
        -------
        stimulus : Stimulus
            With absolute paths.

        Raises
        ------
        KeyError
            Unknown id (the message lists a few known ones).
        """
        try:
            return self._stimuli[stim_id]  # type: ignore[return-value]
        except KeyError:
            known = ", ".join(list(self._stimuli)[:10])
            raise KeyError(
                f"no stimulus {stim_id!r} in {self.folder} (known: {known}); "
                "rebuild the stimuli for this protocol"
            ) from None

    def noise(self, kind: str) -> Path:
        """Return the file of a generated noise.

        Parameters
        ----------
        kind : {"speech-shaped", "babble", "white"}
            Also accepted with a ``noise-`` prefix.

        Returns
        -------
        path : Path

        Raises
        ------
        KeyError
            That noise was not built (babble and speech-shaped need speech).
        """
        kind = kind.removeprefix("noise-")
        if kind not in self._noise:
            raise KeyError(
                f"no {kind!r} noise in {self.folder} (built: {', '.join(self._noise) or 'none'})"
            )
        return self._noise[kind].wav

    def noise_info(self, kind: str) -> NoiseStimulus:
        """Return the manifest entry of a generated noise (see :meth:`noise`)."""
        self.noise(kind)
        return self._noise[kind.removeprefix("noise-")]  # type: ignore[return-value]

    def verify(self) -> list[str]:
        """Check every file against its recorded SHA-256.

        Returns
        -------
        problems : list of str
            One line per missing or changed file, naming it; empty when all match.
        """
        problems: list[str] = []
        entries: list[Stimulus | NoiseStimulus] = [*self._stimuli.values(), *self._noise.values()]
        for entry in entries:
            for path, expected in entry.files():
                if not path.is_file():
                    problems.append(f"{path}: missing")
                    continue
                found = sha256_file(path)
                if found != expected:
                    problems.append(
                        f"{path}: SHA-256 mismatch (manifest {expected[:12]}..., "
                        f"file {found[:12]}...)"
                    )
        return problems
