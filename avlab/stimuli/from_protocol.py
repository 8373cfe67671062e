"""Stimuli for a protocol: its requests, its base folder, its default output folder."""

from __future__ import annotations

from pathlib import Path

from avlab.stimuli.build import build_stimuli
from avlab.stimuli.manifest import StimulusSet

__all__ = ["build_protocol_stimuli", "default_stimulus_dir"]


def default_stimulus_dir(protocol_name: str) -> Path:
    """Where ``avlab stimuli build`` puts a protocol's stimuli: ``./stimuli/<name>``.

    Parameters
    ----------
    protocol_name : str

    Returns
    -------
    folder : Path
        Relative to the current directory.
    """
    return Path("stimuli") / protocol_name


def build_protocol_stimuli(
    protocol: str | Path,
    out_dir: Path | None = None,
    *,
    force: bool = False,
    jobs: int = 2,
    progress: bool = True,
) -> StimulusSet:
    """Build every stimulus a protocol can use.

    Parameters
    ----------
    protocol : str or Path
        Protocol name or file (see :func:`avlab.protocol.find_protocol`).
    out_dir : Path | None
        Output folder; default :func:`default_stimulus_dir` of the protocol's name.
    force : bool
        Rebuild unchanged stimuli too.
    jobs : int
        Stimuli built at once.
    progress : bool
        Progress bar on stderr.

    Returns
    -------
    stimuli : StimulusSet

    Raises
    ------
    avlab.protocol.ProtocolError
        The protocol is missing or invalid.
    StimulusError
        A missing engine, voice or speech file.
    """
    from avlab.protocol import load_protocol, stimulus_requests

    proto = load_protocol(protocol)
    base = proto.path.parent if proto.path is not None else Path.cwd()
    out = out_dir if out_dir is not None else default_stimulus_dir(proto.name)
    return build_stimuli(
        stimulus_requests(proto), out, base_dir=base, force=force, jobs=jobs, progress=progress
    )
