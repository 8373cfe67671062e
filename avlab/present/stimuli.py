"""Where the presenter finds its stimuli: a built stimulus set, or plain files.

A folder built by ``avlab stimuli build`` (with ``stimuli.json``) is read with
:class:`avlab.stimuli.StimulusSet`. A folder without a manifest (stimuli
made by hand, recorded speech) is read as plain files: ``<stim_id>.wav``,
optionally ``<stim_id>.mp4``, and ``noise-<kind>.wav``; their SHA-256 is
computed when first used.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from avlab.errors import SessionError

__all__ = ["PlainStimuli", "PlainStimulus", "StimulusSource", "load_stimuli", "sha256_file"]


def sha256_file(path: Path) -> str:
    """Return the SHA-256 (hex) of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class _Stimulus(Protocol):
    wav: Path
    sha256: str
    video: Path | None


class StimulusSource(Protocol):
    """What the presenter needs of a stimulus folder."""

    def get(self, stim_id: str) -> _Stimulus:
        """Return one stimulus (``.wav``, ``.sha256``, ``.video``)."""
        ...

    def noise(self, kind: str) -> Path:
        """Return the file of a noise kind."""
        ...


@dataclass(frozen=True)
class PlainStimulus:
    """A stimulus found as plain files.

    Attributes
    ----------
    stim_id : str
    wav : Path
    sha256 : str
        Of ``wav``.
    video : Path | None
        ``<stim_id>.mp4`` when it exists.
    """

    stim_id: str
    wav: Path
    sha256: str
    video: Path | None


class PlainStimuli:
    """A folder of ``<stim_id>.wav`` / ``<stim_id>.mp4`` / ``noise-<kind>.wav``.

    Parameters
    ----------
    folder : Path
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._cache: dict[str, PlainStimulus] = {}

    def get(self, stim_id: str) -> PlainStimulus:
        """Return the stimulus ``stim_id``.

        Raises
        ------
        SessionError
            ``<stim_id>.wav`` is missing.
        """
        if stim_id not in self._cache:
            wav = self.folder / f"{stim_id}.wav"
            if not wav.is_file():
                raise SessionError(
                    f"stimulus {stim_id!r}: {wav} does not exist.",
                    "Build the stimuli (avlab stimuli build PROTOCOL) or add the file.",
                )
            mp4 = self.folder / f"{stim_id}.mp4"
            self._cache[stim_id] = PlainStimulus(
                stim_id, wav, sha256_file(wav), mp4 if mp4.is_file() else None
            )
        return self._cache[stim_id]

    def noise(self, kind: str) -> Path:
        """Return ``noise-<kind>.wav``.

        Raises
        ------
        SessionError
            The file is missing.
        """
        path = self.folder / f"noise-{kind.removeprefix('noise-')}.wav"
        if not path.is_file():
            raise SessionError(
                f"noise {kind!r}: {path} does not exist.",
                "Build the stimuli (avlab stimuli build PROTOCOL) or add the file.",
            )
        return path


def load_stimuli(folder: Path) -> StimulusSource:
    """Open a stimulus folder: the built set when it has ``stimuli.json``, else plain files.

    Parameters
    ----------
    folder : Path

    Returns
    -------
    stimuli : StimulusSet or PlainStimuli

    Raises
    ------
    SessionError
        The folder does not exist, or its manifest is corrupt.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise SessionError(
            f"stimulus folder {folder} does not exist.",
            "Build the stimuli first: avlab stimuli build PROTOCOL.",
        )
    from avlab.stimuli import MANIFEST_NAME, StimulusSet

    if (folder / MANIFEST_NAME).is_file():
        return StimulusSet.load(folder, verify=False)  # type: ignore[return-value]
    return PlainStimuli(folder)
