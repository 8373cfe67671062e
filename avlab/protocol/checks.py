"""Semantic checks of a protocol that pydantic's field types cannot express.

Each check yields ``(field path, message, fix, severity)``; the loader turns
the path into a line number. Checks run on a model that already passed
validation, so they only look for inconsistencies between fields: unknown or
duplicate ids, times past the trial end, answers out of range, missing files,
voices not installed here, counterbalancing groups that do not divide.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from avlab.protocol.models import Protocol, Question, Talker, TrialTemplate
from avlab.protocol.planner import _conditions, speech_seconds
from avlab.protocol.voices import check_voice

__all__ = ["Finding", "semantic_issues"]

Path_ = tuple[str | int, ...]
Finding = tuple[Path_, str, str, Literal["error", "warning"]]
_INSTALL = {"espeak-ng": "espeak-ng", "flite": "flite", "festival": "festival"}


def _suggest(word: str, choices: list[str]) -> str:
    hits = difflib.get_close_matches(word, choices, n=1, cutoff=0.5)
    return f" (did you mean '{hits[0]}'?)" if hits else ""


def _talker_map(protocol: Protocol) -> dict[str, Talker]:
    out: dict[str, Talker] = {}
    for t in protocol.talkers:
        out.setdefault(t.id, t)  # a duplicate id is reported once; keep the first
    return out


def _dups(ids: list[str], base: Path_, what: str) -> Iterator[Finding]:
    seen: dict[str, int] = {}
    for i, x in enumerate(ids):
        if x in seen:
            yield (
                (*base, i, "id"),
                f"duplicate {what} id '{x}' (also {base[-1]}[{seen[x]}])",
                f"give each {what} its own id",
                "error",
            )
        else:
            seen[x] = i


def _check_talker(t: Talker, p: Path_, base_dir: Path) -> Iterator[Finding]:
    yield from _dups([u.id for u in t.utterances], (*p, "utterances"), "utterance")
    problem = check_voice(t.voice.engine, t.voice.name)
    if problem is not None:
        what, choices = problem
        if what == "not-installed":
            yield (
                (*p, "voice", "engine"),
                f"speech engine '{t.voice.engine}' is not installed here; its voice "
                f"'{t.voice.name}' cannot be checked and stimuli cannot be synthesized",
                f"apt-get install {_INSTALL[t.voice.engine]}",
                "warning",
            )
        elif not what:
            yield (
                (*p, "voice", "name"),
                f"no voice name for engine '{t.voice.engine}'",
                f"add 'name:' with one of {', '.join(choices[:8])}",
                "error",
            )
        else:
            yield (
                (*p, "voice", "name"),
                f"{t.voice.engine} has no voice '{what}'{_suggest(what, choices)}",
                f"use an installed voice: {', '.join(choices[:12])}"
                + (" ..." if len(choices) > 12 else ""),
                "error",
            )
    for j, u in enumerate(t.utterances):
        up = (*p, "utterances", j)
        if not u.text.strip() and not u.file:
            yield (
                up,
                f"utterance '{u.id}' has neither text nor file",
                "add 'text:' (synthesized) or 'file:' (a recording)",
                "error",
            )
        if t.voice.engine == "file" and not u.file:
            yield (
                (*up, "text") if u.text else up,
                f"talker '{t.id}' uses recorded speech (engine: file) but utterance "
                f"'{u.id}' names no file",
                "add 'file: path/to/speech.wav' (relative to the protocol)",
                "error",
            )
        if u.file and not (base_dir / u.file).is_file():
            yield (
                (*up, "file"),
                f"speech file '{u.file}' not found (looked in {base_dir})",
                "put the file there or correct the path (relative to the protocol file)",
                "error",
            )
        if u.question is not None:
            yield from _check_question(u.question, (*up, "question"))


def _check_question(q: Question, p: Path_) -> Iterator[Finding]:
    if q.correct is None:
        return
    n = len(q.options)
    if isinstance(q.correct, int):
        if not q.options:
            yield (
                (*p, "correct"),
                "'correct' is set but the question has no options",
                "add 'options:' or remove 'correct'",
                "error",
            )
        elif not 0 <= q.correct < n:
            yield (
                (*p, "correct"),
                f"correct answer index {q.correct} is out of range for {n} options "
                f"(0 to {n - 1}; 0 = first option)",
                f"use 0 to {n - 1}, or write the answer's text",
                "error",
            )
    elif q.correct not in q.options:
        yield (
            (*p, "correct"),
            f"correct answer '{q.correct}' is not one of the options"
            f"{_suggest(q.correct, q.options)}",
            "write it exactly as in 'options'",
            "error",
        )


def _check_trial(
    protocol: Protocol, t: TrialTemplate, p: Path_, base_dir: Path
) -> Iterator[Finding]:
    talkers = _talker_map(protocol)
    in_trial: list[str] = []
    for i, ref in enumerate(t.talkers):
        rp = (*p, "talkers", i)
        if ref.talker not in talkers:
            yield (
                (*rp, "talker"),
                f"unknown talker '{ref.talker}'{_suggest(ref.talker, list(talkers))}",
                f"use a talker defined under 'talkers:' ({', '.join(talkers) or 'none yet'})",
                "error",
            )
            continue
        in_trial.append(ref.talker)
        utts = [u.id for u in talkers[ref.talker].utterances]
        says = [ref.say] if isinstance(ref.say, str) else list(ref.say or [])
        for k, s in enumerate(says):
            if s not in utts:
                sp = (*rp, "say") if isinstance(ref.say, str) else (*rp, "say", k)
                yield (
                    sp,
                    f"talker '{ref.talker}' has no utterance '{s}'{_suggest(s, utts)}",
                    f"use one of its utterances: {', '.join(utts[:10])}",
                    "error",
                )
        if isinstance(ref.say, list) and not ref.say:
            yield ((*rp, "say"), "empty utterance list", "list at least one utterance", "error")
        if ref.say is None and t.kind != "conversation":
            yield (
                rp,
                f"talker '{ref.talker}' says nothing in this trial",
                "add 'say: <utterance id>'",
                "error",
            )
    if len(set(in_trial)) < len(in_trial):
        yield ((*p, "talkers"), "a talker appears twice", "list each talker once", "error")
    pools = [i for i, r in enumerate(t.talkers) if isinstance(r.say, list)]
    if len(pools) > 1:
        yield (
            (*p, "talkers", pools[1], "say"),
            "only one talker per trial may have a list of utterances",
            "give the other talkers a single 'say:' id",
            "error",
        )
    sides = [(r.side or talkers[r.talker].side) for r in t.talkers if r.talker in talkers]
    for side in ("left", "right"):
        if sides.count(side) > 1:
            yield (
                (*p, "talkers"),
                f"{sides.count(side)} talkers on the {side}",
                "put the talkers on different sides (talker 'side:' or the trial's 'side:')",
                "error",
            )
    if t.kind in ("attend", "speech-in-noise") and not t.talkers:
        yield ((*p, "talkers"), f"a '{t.kind}' trial needs talkers", "add 'talkers:'", "error")
    if t.kind == "conversation" and t.duration_s is None:
        yield (
            (*p, "kind"),
            "a conversation trial needs a fixed duration",
            "add 'duration_s:' (e.g. 180)",
            "error",
        )
    if t.attend is not None and t.attend not in in_trial:
        yield (
            (*p, "attend"),
            f"attended talker '{t.attend}' is not in this trial{_suggest(t.attend, in_trial)}",
            f"use one of the trial's talkers: {', '.join(in_trial)}",
            "error",
        )
    yield from _check_switch(t, p, in_trial, protocol)
    if t.noise is not None:
        snrs = t.noise.snr_db if isinstance(t.noise.snr_db, list) else [t.noise.snr_db]
        if not snrs:
            yield (
                (*p, "noise", "snr_db"),
                "empty SNR list",
                "list at least one SNR in dB, e.g. [-9, -6, -3, 0]",
                "error",
            )
        if t.noise.kind == "file" and not t.noise.file:
            yield (
                (*p, "noise", "kind"),
                "noise kind 'file' needs a file",
                "add 'file: noise.wav'",
                "error",
            )
        if t.noise.file and not (base_dir / t.noise.file).is_file():
            yield (
                (*p, "noise", "file"),
                f"noise file '{t.noise.file}' not found (looked in {base_dir})",
                "correct the path (relative to the protocol file)",
                "error",
            )
    if isinstance(t.video, list) and not t.video:
        yield ((*p, "video"), "empty video list", "write true, false or [true, false]", "error")
    if pools and t.talkers[pools[0]].say:
        n_items, n_cond = len(t.talkers[pools[0]].say or []), len(_conditions(t))
        if n_cond and n_items % n_cond:
            yield (
                (*p, "talkers", pools[0], "say"),
                f"{n_items} utterances do not share out evenly over {n_cond} conditions "
                "(video x SNR)",
                f"list a multiple of {n_cond} utterances",
                "error",
            )
    if t.question is not None:
        yield from _check_question(t.question, (*p, "question"))


def _check_switch(
    t: TrialTemplate, p: Path_, in_trial: list[str], protocol: Protocol
) -> Iterator[Finding]:
    if t.switch is None:
        return
    sp = (*p, "switch")
    if t.attend is None:
        yield (sp, "a switch needs an attended talker to switch from", "add 'attend:'", "error")
    if t.switch.to not in in_trial:
        yield (
            (*sp, "to"),
            f"switch target '{t.switch.to}' is not in this trial{_suggest(t.switch.to, in_trial)}",
            f"use one of the trial's talkers: {', '.join(in_trial)}",
            "error",
        )
    elif t.switch.to == t.attend:
        yield (
            (*sp, "to"),
            f"switch to '{t.switch.to}', who is already attended",
            "switch to the other talker",
            "error",
        )
    end, what = t.duration_s, "duration_s"
    if end is None:
        talkers = _talker_map(protocol)
        ends = []
        for ref in t.talkers:
            tk = talkers.get(ref.talker)
            says = [ref.say] if isinstance(ref.say, str) else list(ref.say or [])
            for s in says:
                u = next((u for u in tk.utterances if u.id == s), None) if tk else None
                if u is not None and u.text:
                    ends.append(ref.onset_s + speech_seconds(u.text, tk.voice.rate))
        end, what = (min(ends), "the estimated end of speech") if ends else (None, "")
    if end is not None and t.switch.at_s >= end:
        yield (
            (*sp, "at_s"),
            f"switch at {t.switch.at_s:g} s is after the trial ends ({what}: {end:.1f} s)",
            f"switch earlier than {end:.1f} s or lengthen the trial",
            "error",
        )


def _check_counterbalance(protocol: Protocol) -> Iterator[Finding]:
    cb = protocol.counterbalance
    flips = (2 if cb.swap_sides else 1) * (2 if cb.swap_attended else 1)
    rest = 1
    if cb.block_order == "latin-square":
        rest = len(protocol.blocks)
        if protocol.randomization.shuffle_blocks:
            yield (
                ("randomization", "shuffle_blocks"),
                "shuffle_blocks and a latin-square block order contradict each other",
                "set shuffle_blocks: false or block_order: fixed",
                "error",
            )
    if cb.rotate_items:
        for block in protocol.blocks:
            for t in block.trials:
                if any(isinstance(r.say, list) for r in t.talkers):
                    rest = math.lcm(rest, max(1, len(_conditions(t))))
    levels = flips * rest
    if cb.groups % levels:
        yield (
            ("counterbalance", "groups"),
            f"{cb.groups} groups do not divide into the {levels} counterbalanced "
            f"combinations (sides x attended x block order/items)",
            f"set groups to a multiple of {levels}, e.g. {levels}",
            "error",
        )


def semantic_issues(protocol: Protocol, base_dir: Path) -> list[Finding]:
    """Check a validated protocol for inconsistencies.

    Parameters
    ----------
    protocol : Protocol
    base_dir : Path
        Folder of the protocol file (speech and noise files are relative to it).

    Returns
    -------
    findings : list of tuple
        ``(field path, message, fix, severity)``.
    """
    out: list[Finding] = []
    out += _dups([t.id for t in protocol.talkers], ("talkers",), "talker")
    out += _dups([b.id for b in protocol.blocks], ("blocks",), "block")
    for i, t in enumerate(protocol.talkers):
        out += _check_talker(t, ("talkers", i), base_dir)
    for b, block in enumerate(protocol.blocks):
        for k, t in enumerate(block.trials):
            out += _check_trial(protocol, t, ("blocks", b, "trials", k), base_dir)
    out += _check_counterbalance(protocol)
    for i, s in enumerate(protocol.requirements.streams):
        if s.min_srate_hz is not None and s.max_srate_hz is not None:
            if s.min_srate_hz > s.max_srate_hz:
                out.append(
                    (
                        ("requirements", "streams", i, "min_srate_hz"),
                        f"min_srate_hz {s.min_srate_hz:g} > max_srate_hz {s.max_srate_hz:g}",
                        "swap the two rates",
                        "error",
                    )
                )
    return out
