"""Protocols: paradigms written as YAML, validated, and planned per participant.

>>> protocol = load_protocol("competing-talkers")          # doctest: +SKIP
>>> plan = plan_session(protocol, "sub-01", "01")          # doctest: +SKIP

A name is looked up as ``./protocols/<name>.yaml`` and then among the
protocols shipped in ``avlab/data/protocols/``; anything else is a path.
"""

from __future__ import annotations

from pathlib import Path

from avlab.protocol.loader import ProtocolError, ProtocolIssue, read_protocol
from avlab.protocol.models import Protocol, Requirements, StreamRequirement
from avlab.protocol.plan import SessionPlan, StimulusRequest, TrialPlan
from avlab.protocol.planner import (
    counterbalance_group,
    plan_session,
    planned_duration_s,
    stimulus_requests,
)

__all__ = [
    "PACKAGED_PROTOCOLS",
    "Protocol",
    "ProtocolError",
    "ProtocolIssue",
    "Requirements",
    "SessionPlan",
    "StimulusRequest",
    "StreamRequirement",
    "TrialPlan",
    "available_protocols",
    "counterbalance_group",
    "find_protocol",
    "load_protocol",
    "plan_session",
    "planned_duration_s",
    "protocol_schema",
    "stimulus_requests",
    "validate_protocol",
]

#: The protocols shipped with avlab.
PACKAGED_PROTOCOLS = Path(__file__).resolve().parent.parent / "data" / "protocols"
_SUFFIXES = (".yaml", ".yml")


def _search_dirs() -> list[Path]:
    return [Path.cwd() / "protocols", PACKAGED_PROTOCOLS]


def available_protocols() -> dict[str, Path]:
    """Protocol names and files found by name lookup (``./protocols/`` wins).

    Returns
    -------
    protocols : dict of str to Path
    """
    found: dict[str, Path] = {}
    for d in reversed(_search_dirs()):
        if d.is_dir():
            for p in sorted(d.iterdir()):
                if p.suffix in _SUFFIXES and p.is_file():
                    found[p.stem] = p
    return dict(sorted(found.items()))


def find_protocol(name_or_path: str | Path) -> Path:
    """Resolve a protocol name or path to its file.

    Parameters
    ----------
    name_or_path : str or Path
        A file path, or a name looked up in ``./protocols/`` and then in the
        packaged protocols.

    Returns
    -------
    path : Path

    Raises
    ------
    ProtocolError
        No such file, or an unknown name (the message lists the known names).
    """
    text = str(name_or_path)
    path = Path(text)
    looks_like_path = isinstance(name_or_path, Path) or "/" in text or path.suffix in _SUFFIXES
    if path.is_file():
        return path
    if looks_like_path:
        raise ProtocolError(
            f"protocol file {path} does not exist.",
            "check the path, or give a protocol name (avlab protocol list).",
        )
    for d in _search_dirs():
        for suffix in _SUFFIXES:
            if (d / f"{text}{suffix}").is_file():
                return d / f"{text}{suffix}"
    names = ", ".join(available_protocols()) or "none"
    raise ProtocolError(
        f"unknown protocol {text!r}; available: {names}.",
        "give one of these names or the path of a protocol file.",
    )


def validate_protocol(path: str | Path) -> list[ProtocolIssue]:
    """Every problem in a protocol file (errors and warnings), sorted by line.

    Parameters
    ----------
    path : str or Path
        The file, or a protocol name.

    Returns
    -------
    issues : list of ProtocolIssue
        Empty when the file is valid.
    """
    _, issues = read_protocol(find_protocol(path))
    return issues


def load_protocol(name_or_path: str | Path) -> Protocol:
    """Load and validate a protocol.

    Parameters
    ----------
    name_or_path : str or Path

    Returns
    -------
    protocol : Protocol
        With :attr:`Protocol.path` and :attr:`Protocol.sha256` set.

    Raises
    ------
    ProtocolError
        With every problem as ``file:line: field: message. Fix: ...`` lines
        and :attr:`ProtocolError.issues`.
    """
    path = find_protocol(name_or_path)
    protocol, issues = read_protocol(path)
    if protocol is None:
        raise ProtocolError.from_issues(path, issues)
    return protocol


def protocol_schema() -> dict:
    """JSON Schema of a protocol file, for editors (YAML language servers).

    Returns
    -------
    schema : dict
    """
    schema = Protocol.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "avlab protocol"
    return schema
