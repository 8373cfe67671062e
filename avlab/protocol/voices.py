"""Voices installed here for each speech synthesizer (espeak-ng, flite, festival).

Asked once per process from the engines themselves (``espeak-ng --voices``,
``flite -lv``) or, for festival, from its voice folders.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from pathlib import Path

from avlab._logging import logger

__all__ = ["FESTIVAL_VOICE_DIRS", "available_voices", "check_voice"]

#: Folders holding festival voices as ``<dir>/<language>/<voice>/``.
FESTIVAL_VOICE_DIRS = (Path("/usr/share/festival/voices"), Path("/usr/lib/festival/voices"))


def _run(args: list[str]) -> str:
    try:
        res = subprocess.run(args, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        logger.warning("could not list voices with %s: %s", args[0], exc)
        return ""
    return res.stdout + res.stderr


def _espeak_table(arg: str) -> set[str]:
    names: set[str] = set()
    for line in _run(["espeak-ng", arg]).splitlines()[1:]:
        cols = line.split()
        if len(cols) < 5:
            continue
        lang, name, file = cols[1], cols[3], cols[4]
        for n in (lang, name, file, file.rsplit("/", 1)[-1]):
            names.add(n.lower())
    return names


@functools.cache
def available_voices(engine: str) -> tuple[frozenset[str], frozenset[str]] | None:
    """Voices of one engine installed on this machine.

    Parameters
    ----------
    engine : {"espeak-ng", "flite", "festival"}

    Returns
    -------
    voices : tuple of frozenset or None
        ``(voices, variants)``, lower case (variants only for espeak-ng, the part
        after ``+`` in ``en-us+m3``); None when the engine is not installed.
    """
    if engine == "espeak-ng":
        if shutil.which("espeak-ng") is None:
            return None
        variants = {v.removeprefix("!v/") for v in _espeak_table("--voices=variant")}
        return frozenset(_espeak_table("--voices")), frozenset(variants)
    if engine == "flite":
        if shutil.which("flite") is None:
            return None
        out = _run(["flite", "-lv"])
        names = out.split(":", 1)[1].split() if ":" in out else []
        return frozenset(n.lower() for n in names), frozenset()
    if engine == "festival":
        if shutil.which("festival") is None:
            return None
        names = {
            p.name.lower()
            for d in FESTIVAL_VOICE_DIRS
            if d.is_dir()
            for p in d.glob("*/*")
            if p.is_dir()
        }
        return frozenset(names), frozenset()
    return frozenset(), frozenset()


def check_voice(engine: str, name: str) -> tuple[str, list[str]] | None:
    """Check a voice name for an engine.

    Parameters
    ----------
    engine : str
    name : str
        As written in the protocol (festival: ``voice_kal_diphone`` or ``kal_diphone``).

    Returns
    -------
    problem : tuple or None
        None when the voice exists (or cannot be checked: ``"not-installed"``
        is returned as the problem then); else ``(what, choices)`` where
        ``what`` names the unknown part and ``choices`` lists the known ones.
    """
    if engine == "file":
        return None
    known = available_voices(engine)
    if known is None:
        return "not-installed", []
    voices, variants = known
    if not name:
        return "", sorted(voices)
    base, _, variant = name.lower().partition("+")
    if engine == "festival":
        base = base.removeprefix("voice_")
    if base not in voices:
        return base, sorted(voices)
    if variant and variant not in variants:
        # The classic variants (m1-m8, f1-f5) first, then the named ones.
        ordered = sorted(variants, key=lambda v: (not re.fullmatch(r"[mf]\d", v), v))
        return "+" + variant, ["+" + v for v in ordered]
    return None
