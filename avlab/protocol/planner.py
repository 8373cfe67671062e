"""Expanding a protocol into the session plan of one participant and session.

Randomization is seeded by ``sha256("<seed>|<participant>|<session>")``, so the
same protocol, participant, session and seed give the same plan on any
machine. The counterbalancing group is ``(n - 1) mod groups`` for the first
number ``n`` in the participant label (``sub-07`` -> 7 -> group 6 when there
are 8 groups; ``P1`` -> group 0); a label without digits uses a stable hash.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from dataclasses import dataclass

from avlab.protocol.models import Block, Protocol, Question, Talker, TrialTemplate
from avlab.protocol.plan import (
    CuePlan,
    NoisePlan,
    QuestionPlan,
    SessionPlan,
    StimulusRequest,
    SwitchPlan,
    TalkerPlay,
    TrialPlan,
    Voice,
)

__all__ = [
    "DEFAULT_WPM",
    "SIDE_AZIMUTH_DEG",
    "SIDE_POSITION",
    "Conditions",
    "counterbalance_group",
    "expand_template",
    "participant_number",
    "plan_session",
    "planned_duration_s",
    "speech_seconds",
    "stimulus_requests",
]

#: Speaking rate assumed when a voice sets none, words per minute.
DEFAULT_WPM = 160.0
#: Default face centre per side, PsychoPy height units.
SIDE_POSITION = {"left": (-0.45, 0.05), "right": (0.45, 0.05), "center": (0.0, 0.05)}
#: Default audio direction per side, degrees (negative left).
SIDE_AZIMUTH_DEG = {"left": -30.0, "right": 30.0, "center": 0.0}
_SWAP = {"left": "right", "right": "left", "center": "center"}
# Planned-duration estimate: time for instructions, a break and an answer, s.
_INSTRUCTIONS_S, _BREAK_S, _CHOICE_S, _TYPED_S = 15.0, 30.0, 8.0, 15.0


def speech_seconds(text: str, rate_wpm: float | None = None) -> float:
    """Estimate how long a text takes to say.

    Parameters
    ----------
    text : str
    rate_wpm : float or None
        Words per minute; None uses :data:`DEFAULT_WPM`.

    Returns
    -------
    seconds : float
    """
    return len(text.split()) * 60.0 / (rate_wpm or DEFAULT_WPM)


def participant_number(participant: str) -> int | None:
    """Return the first number in a participant label (``"sub-07"`` -> 7), or None."""
    m = re.search(r"\d+", participant)
    return int(m.group()) if m else None


def counterbalance_group(protocol: Protocol, participant: str) -> int:
    """Return the participant's counterbalancing group, 0-based.

    Parameters
    ----------
    protocol : Protocol
    participant : str
        Label such as ``"sub-07"``: ``(7 - 1) mod groups``; without digits a
        stable hash of the label.

    Returns
    -------
    group : int
    """
    groups = protocol.counterbalance.groups
    n = participant_number(participant)
    if n is None:
        n = int.from_bytes(hashlib.sha256(participant.encode()).digest()[:8], "big") + 1
    return (n - 1) % groups


@dataclass(frozen=True)
class Conditions:
    """What a counterbalancing group changes.

    Attributes
    ----------
    swap_sides, swap_attended : bool
    latin_row : int
        Row of the Latin square of the block order.
    rotation : int
        Rotation of utterance lists over conditions.
    """

    swap_sides: bool = False
    swap_attended: bool = False
    latin_row: int = 0
    rotation: int = 0

    @classmethod
    def of(cls, protocol: Protocol, group: int) -> Conditions:
        """Decode a group number into its conditions (mixed radix, see the module)."""
        cb = protocol.counterbalance
        swap_sides = swap_attended = False
        if cb.swap_sides:
            swap_sides, group = bool(group % 2), group // 2
        if cb.swap_attended:
            swap_attended, group = bool(group % 2), group // 2
        latin = group % len(protocol.blocks) if cb.block_order == "latin-square" else 0
        return cls(swap_sides, swap_attended, latin, group if cb.rotate_items else 0)


def _conditions(t: TrialTemplate) -> list[tuple[bool, float | None]]:
    videos = t.video if isinstance(t.video, list) else [t.video]
    snrs: list[float | None] = [None]
    if t.noise is not None:
        snrs = list(t.noise.snr_db) if isinstance(t.noise.snr_db, list) else [t.noise.snr_db]
    return [(v, s) for v in videos for s in snrs]


def expand_template(
    t: TrialTemplate, rotation: int = 0
) -> list[tuple[bool, float | None, dict[int, str]]]:
    """List the trials a template stands for.

    Parameters
    ----------
    t : TrialTemplate
    rotation : int
        Shifts which utterances of a list go to which condition.

    Returns
    -------
    trials : list of tuple
        ``(video, snr_db, {talker ref index: utterance id})`` per trial.
    """
    conds = _conditions(t)
    fixed = {i: r.say for i, r in enumerate(t.talkers) if isinstance(r.say, str)}
    pools = [(i, r.say) for i, r in enumerate(t.talkers) if isinstance(r.say, list)]
    out = []
    for _ in range(t.repeat):
        if pools and conds:
            i, items = pools[0]
            for j, item in enumerate(items):
                video, snr = conds[(j + rotation) % len(conds)]
                out.append((video, snr, {**fixed, i: item}))
        else:
            out += [(video, snr, dict(fixed)) for video, snr in conds]
    return out


def _voice(talker: Talker) -> Voice:
    v = talker.voice
    return Voice(engine=v.engine, name=v.name, rate_wpm=v.rate, pitch=v.pitch)


def _noise_stim_id(file: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_-]", "_", file.rsplit("/", 1)[-1].rsplit(".", 1)[0])
    return f"noise-{stem}"


def stimulus_requests(protocol: Protocol) -> list[StimulusRequest]:
    """Every stimulus any participant's plan can use.

    Parameters
    ----------
    protocol : Protocol

    Returns
    -------
    requests : list of StimulusRequest
        One per talker utterance used by a trial (``<talker>-<utterance>``,
        ``video`` when any trial shows it), plus noise files
        (``noise-<file stem>``, talker ``"noise"``), in protocol order.
    """
    talkers = {t.id: t for t in protocol.talkers}
    found: dict[str, StimulusRequest] = {}
    for block in protocol.blocks:
        for t in block.trials:
            rotations = len(_conditions(t)) if protocol.counterbalance.rotate_items else 1
            specs = [s for r in range(rotations) for s in expand_template(t, r)]
            for video, _snr, says in specs:
                for i, utt_id in says.items():
                    talker = talkers[t.talkers[i].talker]
                    utt = next(u for u in talker.utterances if u.id == utt_id)
                    sid = f"{talker.id}-{utt.id}"
                    old = found.get(sid)
                    found[sid] = StimulusRequest(
                        stim_id=sid,
                        talker=talker.id,
                        text=utt.text,
                        voice=_voice(talker),
                        file=utt.file,
                        video=video or (old is not None and old.video),
                        face=talker.face,
                    )
            if t.noise is not None and t.noise.kind == "file" and t.noise.file:
                sid = _noise_stim_id(t.noise.file)
                found[sid] = StimulusRequest(
                    stim_id=sid, talker="noise", voice=Voice(engine="file"), file=t.noise.file
                )
    return list(found.values())


def _question(q: Question | None) -> QuestionPlan | None:
    if q is None:
        return None
    correct = q.correct
    if isinstance(correct, str):
        correct = q.options.index(correct) if correct in q.options else None
    return QuestionPlan(text=q.text, options=list(q.options), correct=correct)


def _block_order(protocol: Protocol, cond: Conditions, rng: random.Random) -> list[Block]:
    blocks = list(protocol.blocks)
    n = len(blocks)
    if protocol.counterbalance.block_order == "latin-square":
        return [blocks[(cond.latin_row + j) % n] for j in range(n)]
    if protocol.randomization.shuffle_blocks:
        rng.shuffle(blocks)
    return blocks


def _trial(
    protocol: Protocol,
    block: Block,
    t: TrialTemplate,
    spec: tuple[bool, float | None, dict[int, str]],
    cond: Conditions,
) -> TrialPlan:
    video, snr, says = spec
    talkers = {x.id: x for x in protocol.talkers}
    plays = []
    for i, ref in enumerate(t.talkers):
        tk = talkers[ref.talker]
        side = ref.side or tk.side
        pos = tk.position or SIDE_POSITION[side]
        az = tk.azimuth_deg if tk.azimuth_deg is not None else SIDE_AZIMUTH_DEG[side]
        if cond.swap_sides:
            side, pos, az = _SWAP[side], (-pos[0], pos[1]), -az
        if i in says:
            plays.append(
                TalkerPlay(
                    talker=tk.id,
                    stim_id=f"{tk.id}-{says[i]}",
                    side=side,
                    azimuth_deg=az,
                    position=pos,
                    level_db=ref.level_db if ref.level_db is not None else tk.level_db,
                    video=video,
                    onset_s=ref.onset_s,
                )
            )
    ids = [p.talker for p in plays]
    attended = ids.index(t.attend) if t.attend in ids else None
    switch = None
    if t.switch is not None and t.switch.to in ids:
        switch = SwitchPlan(at_s=t.switch.at_s, to=ids.index(t.switch.to))
    if cond.swap_attended and len(plays) == 2 and attended is not None:
        attended = 1 - attended
        if switch is not None:
            switch = SwitchPlan(at_s=switch.at_s, to=1 - switch.to)
    question = t.question
    final = switch.to if switch is not None else attended
    if question is None and final is not None:
        tk = talkers[plays[final].talker]
        utt_id = plays[final].stim_id.removeprefix(f"{tk.id}-")
        question = next(u.question for u in tk.utterances if u.id == utt_id)
    qplan = _question(question)
    cue = t.cue or block.cue
    cue_plan = None
    if cue is not None or attended is not None:
        cue_plan = CuePlan(
            modality=cue.modality if cue else "both",
            duration_s=(cue.duration_s if cue and cue.duration_s else protocol.timing.cue_s),
            text=cue.text if cue else "",
        )
    noise = None
    if t.noise is not None:
        noise = NoisePlan(
            kind=t.noise.kind,
            snr_db=float(snr if snr is not None else 0.0),
            stim_id=_noise_stim_id(t.noise.file) if t.noise.file else None,
        )
    response = t.response or block.response
    if response is None:
        response = "none" if qplan is None else ("choice" if qplan.options else "typed")
    return TrialPlan(
        index=0,
        block=block.id,
        kind=t.kind,
        talkers=plays,
        attended=attended,
        cue=cue_plan,
        switch=switch,
        noise=noise,
        duration_s=t.duration_s,
        question=qplan,
        response=response,
        iti_s=protocol.timing.iti_s,
        prompt=t.prompt,
        turn_keys=dict(protocol.turn_keys) if t.kind == "conversation" else {},
    )


def plan_session(
    protocol: Protocol, participant: str, session: str, *, seed: int | None = None
) -> SessionPlan:
    """Expand a protocol into the trial list of one participant and session.

    Parameters
    ----------
    protocol : Protocol
    participant : str
        Participant label; its first number selects the counterbalancing group.
    session : str
        Session label (mixed into the randomization).
    seed : int or None
        Base seed; None uses the protocol's ``randomization.seed``. The plan
        records it, so ``plan_session(protocol, plan.participant, plan.session,
        seed=plan.seed)`` gives the same plan again.

    Returns
    -------
    plan : SessionPlan
    """
    base = protocol.randomization.seed if seed is None else int(seed)
    digest = hashlib.sha256(f"{base}|{participant}|{session}".encode()).digest()
    rng = random.Random(int.from_bytes(digest[:8], "big"))
    group = counterbalance_group(protocol, participant)
    cond = Conditions.of(protocol, group)
    trials: list[TrialPlan] = []
    for block in _block_order(protocol, cond, rng):
        block_trials = [
            _trial(protocol, block, t, spec, cond)
            for t in block.trials
            for spec in expand_template(t, cond.rotation)
        ]
        if protocol.randomization.shuffle_trials:
            rng.shuffle(block_trials)
        for k, tp in enumerate(block_trials):
            index = len(trials) + 1
            every = protocol.breaks.every
            brk = index > 1 and (
                (k == 0 and protocol.breaks.between_blocks)
                or (every is not None and (index - 1) % every == 0)
            )
            trials.append(
                tp.model_copy(
                    update={
                        "index": index,
                        "instructions": block.instructions.strip() if k == 0 else "",
                        "break_before": brk,
                    }
                )
            )
    used = {p.stim_id for tp in trials for p in tp.talkers}
    used |= {tp.noise.stim_id for tp in trials if tp.noise and tp.noise.stim_id}
    return SessionPlan(
        protocol=protocol.name,
        protocol_file=str(protocol.path or ""),
        protocol_sha256=protocol.sha256,
        participant=participant,
        session=session,
        seed=base,
        counterbalance=group,
        streams=[r.name or r.type for r in protocol.requirements.streams],
        trials=trials,
        stimuli=[s for s in stimulus_requests(protocol) if s.stim_id in used],
    )


def _trial_seconds(tp: TrialPlan, stims: dict[str, StimulusRequest]) -> float:
    if tp.duration_s is not None:
        return tp.duration_s
    longest = 0.0
    for p in tp.talkers:
        s = stims.get(p.stim_id)
        speech = speech_seconds(s.text, s.voice.rate_wpm) if s and s.text else 10.0
        longest = max(longest, p.onset_s + speech)
    return longest


def planned_duration_s(plan: SessionPlan) -> float:
    """Estimate how long a session takes, for disk-space checks.

    Speech lasts its word count at the voice's rate (160 words/min by
    default); instructions count 15 s, a break 30 s, a multiple-choice answer
    8 s and a typed or scored answer 15 s.

    Parameters
    ----------
    plan : SessionPlan

    Returns
    -------
    seconds : float
    """
    stims = {s.stim_id: s for s in plan.stimuli}
    total = 0.0
    for tp in plan.trials:
        total += _INSTRUCTIONS_S if tp.instructions else 0.0
        total += _BREAK_S if tp.break_before else 0.0
        total += tp.cue.duration_s if tp.cue else 0.0
        total += _trial_seconds(tp, stims)
        if tp.response == "choice":
            total += _CHOICE_S
        elif tp.response in ("typed", "experimenter"):
            total += _TYPED_S
        total += tp.iti_s
    return math.ceil(total)
