"""The presenter's run of a session plan, without a window: what it would show, play and log.

The offline simulator (:mod:`avlab.sim.offline`) needs the markers, ``trials.jsonl``,
``stimulus_log.jsonl`` and ``presenter.jsonl`` that :mod:`avlab.present.session` writes
during ``avlab run --simulate``, without a screen or a sound card and much faster than
real time. :func:`present_offline` walks the same steps in the same order: flips on a
60 Hz grid, the cue (tone and picture on one flip), the audio scheduled
``audio_latency_s`` ahead on a flip, the switch on the first flip after ``switch.at_s``,
the question and the simulated participant's answer (the same
:class:`~avlab.present.responder.AutoResponder`, seeded as ``avlab run`` seeds it, drawn
in the same order), the inter-trial interval. Marker values carry the same fields as the
presenter's. All times are seconds on the recorder's LSL clock.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from avlab.present.audio import _MAX_ILD_DB, SRATE, trial_mix
from avlab.present.responder import AutoResponder, Response
from avlab.present.stimuli import StimulusSource, sha256_file
from avlab.protocol.plan import SessionPlan, TrialPlan

__all__ = ["REFRESH_HZ", "Marker", "Presentation", "StimulusFiles", "present_offline"]

#: The presenter's defaults (PresenterConfig): refresh rate and audio scheduling lead, s.
REFRESH_HZ = 60.0
AUDIO_LATENCY_S = 0.25
_PREPARE_S = 0.12  # loading a trial's audio and videos before its first flip
_AUTO_CONTINUE_S = 0.5  # the auto responder continues instructions and breaks after this
_CLOCK_READ_S = 0.001  # a clock read just after a flip


@dataclass(frozen=True)
class Marker:
    """One presenter marker.

    Attributes
    ----------
    t : float
        Time stamp, s (recorder's LSL clock).
    event : str
        Marker kind (``session_start``, ``cue``, ``trial_start`` ...).
    fields : dict
        The other JSON fields, in the presenter's order.
    """

    t: float
    event: str
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def value(self) -> str:
        """The marker as the presenter pushes it (compact JSON)."""
        return json.dumps({"event": self.event, **self.fields}, separators=(",", ":"))

    def as_dict(self) -> dict[str, Any]:
        """Return the decoded marker (``{"event": ..., **fields}``)."""
        return {"event": self.event, **self.fields}


@dataclass
class Presentation:
    """Everything the presenter emitted and wrote for a run.

    Attributes
    ----------
    markers : list of Marker
        In time order.
    trials : list of dict
        ``trials.jsonl`` lines.
    stimulus_log : list of dict
        ``stimulus_log.jsonl`` lines.
    events : list of dict
        ``presenter.jsonl`` lines (``open``, ``mix_scaled``, ``end``).
    t_open, t_end : float
        When the window opened and when the ``session_end`` marker was pushed, s.
    """

    markers: list[Marker] = field(default_factory=list)
    trials: list[dict[str, Any]] = field(default_factory=list)
    stimulus_log: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    t_open: float = 0.0
    t_end: float = 0.0


@dataclass(frozen=True)
class _Sound:
    wav: Path
    sha256: str
    video: Path | None
    n_samples: int  # mono samples at the presenter's rate (SRATE)
    peak: float


class StimulusFiles:
    """Lengths, checksums and peaks of the stimulus files, read once and kept.

    Parameters
    ----------
    stimuli : StimulusSource
        The stimulus folder as the presenter reads it
        (:func:`avlab.present.stimuli.load_stimuli`).
    """

    def __init__(self, stimuli: StimulusSource) -> None:
        self.stimuli = stimuli
        self._cache: dict[str, _Sound] = {}
        self.gains: dict[tuple, float] = {}  # mix gains of talker sets without noise, dB

    def _read(self, key: str, wav: Path, sha256: str | None, video: Path | None) -> _Sound:
        hit = self._cache.get(key)
        if hit is None:
            data, fs = sf.read(wav, dtype="float32", always_2d=True)
            n = data.shape[0] if fs == SRATE else math.ceil(data.shape[0] * SRATE / fs)
            peak = float(np.abs(data.mean(axis=1)).max()) if data.size else 0.0
            hit = _Sound(wav, sha256 or sha256_file(wav), video, n, peak)
            self._cache[key] = hit
        return hit

    def talker(self, stim_id: str) -> _Sound:
        """Return a talker stimulus's file facts."""
        st = self.stimuli.get(stim_id)
        return self._read(stim_id, Path(st.wav), st.sha256, st.video)

    def noise(self, kind: str) -> _Sound:
        """Return a noise's file facts."""
        return self._read(f"noise-{kind}", Path(self.stimuli.noise(kind)), None, None)

    def mono(self, sound: _Sound) -> np.ndarray:
        """Return the file as the presenter plays it: mono at SRATE, float64."""
        from scipy.signal import resample_poly

        data, fs = sf.read(sound.wav, dtype="float64", always_2d=True)
        mono = data.mean(axis=1)
        if fs != SRATE:
            g = math.gcd(int(fs), SRATE)
            mono = resample_poly(mono, SRATE // g, int(fs) // g)
        return mono


class _Run:
    """One presenter run: a flip clock, the outputs and the responder."""

    def __init__(
        self,
        plan: SessionPlan,
        sounds: StimulusFiles,
        auto: AutoResponder,
        *,
        seed: int,
        t_go: float,
    ) -> None:
        self.plan, self.sounds, self.auto, self.seed = plan, sounds, auto, seed
        self.texts = {s.stim_id: s.text for s in plan.stimuli}
        self.period = 1.0 / REFRESH_HZ
        self.t0 = t_go
        self.last_flip = t_go
        self.out = Presentation()
        self._late = np.random.default_rng([seed, 0x9E])  # audio onset vs the scheduled flip
        self._gains = sounds.gains

    # -- the flip clock --------------------------------------------------------------
    def flip_after(self, t: float) -> float:
        """Return the first flip at or after ``t``."""
        k = math.ceil((t - self.t0) / self.period - 1e-9)
        return self.t0 + k * self.period

    def flip(self, not_before: float | None = None) -> float:
        """Flip: the next frame, or the first frame at or after ``not_before``."""
        t = self.flip_after(self.last_flip + 0.5 * self.period)
        if not_before is not None:
            t = max(t, self.flip_after(not_before))
        self.last_flip = t
        return t

    def wait_until(self, t: float) -> None:
        """Keep flipping until a flip at or after ``t`` (none when already there)."""
        if self.last_flip < t:
            self.flip(not_before=t)

    @property
    def now(self) -> float:
        return self.last_flip + _CLOCK_READ_S

    def push(self, event: str, t: float, **fields: Any) -> None:
        self.out.markers.append(Marker(t, event, fields))

    def log(self, t: float, event: str, **fields: Any) -> None:
        self.out.events.append({"t_lsl": t, "event": event, **fields})

    # -- one trial -------------------------------------------------------------------
    def screen(self, event: str, trial: int) -> None:
        t = self.flip()
        self.push(event, t, trial=trial)
        first = self.flip()  # the key wait's first flip
        self.flip(not_before=first + _AUTO_CONTINUE_S)

    def prepare(self, trial: TrialPlan) -> tuple[list[dict], float]:
        """Return the played files (stimulus log entries) and the trial's audio length, s."""
        played: list[dict] = []
        talkers = []
        for tp in trial.talkers:
            snd = self.sounds.talker(tp.stim_id)
            played.append({
                "trial": trial.index, "stim_id": tp.stim_id, "file": str(snd.wav),
                "sha256": snd.sha256, "video": str(snd.video) if snd.video and tp.video else None,
                "offset_s": tp.onset_s, "gain_db": tp.level_db, "azimuth_deg": tp.azimuth_deg,
            })  # fmt: skip
            talkers.append((snd, tp))
        noise = None
        if trial.noise is not None:
            kind = trial.noise.stim_id if trial.noise.kind == "file" else trial.noise.kind
            noise = self.sounds.noise(str(kind))
            played.append({
                "trial": trial.index, "stim_id": f"noise-{kind}", "file": str(noise.wav),
                "sha256": noise.sha256, "video": None, "offset_s": 0.0,
                "gain_db": -trial.noise.snr_db, "azimuth_deg": None,
            })  # fmt: skip
        ends = [int(round(tp.onset_s * SRATE)) + s.n_samples for s, tp in talkers]
        n = int(round(trial.duration_s * SRATE)) if trial.duration_s else max(ends, default=0)
        gain = self._mix_gain(trial, talkers, noise, n)
        for entry in played:
            entry["gain_db"] += gain
        if gain:
            self.log(self.now, "mix_scaled", trial=trial.index, gain_db=gain)
        return played, n / SRATE

    def _mix_gain(
        self, trial: TrialPlan, talkers: list[tuple[_Sound, Any]], noise: _Sound | None, n: int
    ) -> float:
        """Return the presenter's protective gain (0 unless the mix would clip), dB.

        The mix is computed (by the presenter's own :func:`trial_mix`) only where a
        bound on its peak exceeds the clipping level, and once per talker set when
        there is no noise (the noise's start depends on the trial).
        """
        bound = 0.0
        for channel in (-1.0, 1.0):  # left, right: the near ear gets the talker's peak
            level = 0.0
            for s, tp in talkers:
                az = np.deg2rad(np.clip(tp.azimuth_deg, -90.0, 90.0))
                near = az == 0 or np.sign(az) == channel
                gain = 1.0 if near else 10 ** (-_MAX_ILD_DB * abs(np.sin(az)) / 20.0)
                level += 1.05 * s.peak * gain * 10 ** (tp.level_db / 20)  # 5 %: the delay
            bound = max(bound, level)
        if noise is not None and trial.noise is not None:
            bound += noise.peak * 10 ** (-trial.noise.snr_db / 20)
        if bound <= 0.98 or n == 0:
            return 0.0
        key = (tuple((s.wav, tp.level_db, tp.azimuth_deg, tp.onset_s) for s, tp in talkers),
               trial.duration_s)  # fmt: skip
        if noise is None and key in self._gains:
            return self._gains[key]
        parts = [(self.sounds.mono(s), tp.level_db, tp.azimuth_deg, tp.onset_s)
                 for s, tp in talkers]  # fmt: skip
        noise_part = None
        if noise is not None and trial.noise is not None:
            nd = self.sounds.mono(noise)
            start = int(np.random.default_rng([self.seed, trial.index]).integers(
                max(1, nd.shape[0] // 2)))  # fmt: skip
            noise_part = (np.roll(nd, -start), trial.noise.snr_db)
        gain = float(trial_mix(parts, noise_part, trial.duration_s)[1])
        if noise is None:
            self._gains[key] = gain
        return gain

    def cue(self, trial: TrialPlan, rec: dict) -> None:
        assert trial.cue is not None and trial.attended is not None
        cue, att = trial.cue, trial.talkers[trial.attended]
        visual = cue.modality in ("visual", "both")
        auditory = cue.modality in ("auditory", "both")
        if auditory:  # the tone is scheduled on a flip; the picture waits for it
            when = self.flip_after(self.now + AUDIO_LATENCY_S)
            while self.flip_after(self.now) < when - 0.5 * self.period:
                self.flip()
        t = self.flip()
        if auditory:
            rec["cue_tone"] = t
        rec["cue"] = t if visual else rec["cue_tone"]
        self.push("cue", rec["cue"], trial=trial.index, attended=trial.attended,
                  talker=att.talker, side=att.side, modality=cue.modality)  # fmt: skip
        self.wait_until(t + cue.duration_s)

    def present(self, trial: TrialPlan, played: list[dict], dur: float, rec: dict) -> None:
        when = self.flip_after(self.now + AUDIO_LATENCY_S)
        self.flip(not_before=when)
        onset = when + float(self._late.normal(0.0, 10e-6))
        rec["audio_onset"] = onset
        rec["audio_late_s"] = onset - when
        for entry in played:
            self.out.stimulus_log.append({**entry, "onset": onset + entry["offset_s"]})
        self.push(
            "trial_start", onset, trial=trial.index, attended=trial.attended,
            talkers=rec["talkers"], stims=rec["stims"], sides=[tp.side for tp in trial.talkers],
            snr_db=trial.noise.snr_db if trial.noise else None,
        )  # fmt: skip
        events = [(onset + trial.switch.at_s, "switch")] if trial.switch is not None else []
        events.append((onset + dur, "end"))
        next_turn = onset + self.auto.turn_gap()  # drawn on every trial, as the presenter does
        speakers = list(trial.turn_keys.values())
        for t_ev, what in sorted(events):
            f_ev = self.flip_after(max(t_ev, self.last_flip + 0.5 * self.period))
            while speakers:  # turns on the flips up to this event's (its own for the end)
                f_turn = self.flip_after(max(next_turn, self.last_flip + 0.5 * self.period))
                if f_turn > f_ev or (f_turn == f_ev and what == "switch"):
                    break
                t = self.flip(not_before=f_turn)
                who = speakers[int(self.auto.rng.integers(len(speakers)))]
                self.push("turn", t, trial=trial.index, speaker=who)
                next_turn = t + self.auto.turn_gap()
            t = self.flip(not_before=f_ev) if self.last_flip < f_ev else self.last_flip
            if what == "switch":
                assert trial.switch is not None
                rec["switch"] = t
                self.push("switch", t, trial=trial.index, attended=trial.switch.to)
            else:
                rec["audio_offset"] = onset + dur
                self.push("trial_end", onset + dur, trial=trial.index)

    def ask(self, trial: TrialPlan, rec: dict) -> None:
        q = trial.question
        text = ""
        if trial.response in ("typed", "experimenter"):
            text = " ".join(self.texts.get(t.stim_id, "") for t in trial.talkers).strip()
        t_q = self.flip()
        self.push("question", t_q, trial=trial.index)
        rt = self.auto.rt()
        t = self.flip(not_before=t_q + rt)
        if trial.response == "experimenter":
            resp = Response(self.auto.score(text), t, None)
        elif q is not None and q.options:
            c = self.auto.choice(q)
            resp = Response(c, t, None if q.correct is None else c == q.correct)
        else:
            from avlab.present.session import _words_right

            typed = self.auto.typed(trial, text)
            resp = Response(typed, t, _words_right(typed, text))
        self.push("response", resp.t_lsl, trial=trial.index, answer=resp.answer,
                  correct=resp.correct, rt_s=resp.t_lsl - t_q)  # fmt: skip
        rec |= {"question": t_q, "response": resp.answer, "correct": resp.correct,
                "rt_s": resp.t_lsl - t_q}  # fmt: skip

    def trial(self, trial: TrialPlan) -> dict:
        rec: dict = {"index": trial.index, "block": trial.block, "kind": trial.kind,
                     "talkers": [t.talker for t in trial.talkers],
                     "stims": [t.stim_id for t in trial.talkers], "attended": trial.attended,
                     "status": "aborted"}  # fmt: skip
        if trial.break_before:
            self.screen("break", trial.index)
        if trial.instructions:
            self.screen("instructions", trial.index)
        played, dur = self.prepare(trial)
        self.flip(not_before=self.now + _PREPARE_S)  # after loading the audio and videos
        if trial.cue is not None and trial.attended is not None:
            self.cue(trial, rec)
        self.present(trial, played, dur, rec)
        ms = self.period * 1e3
        rec |= {"dropped_frames": 0, "psychopy_dropped_frames": 0, "audio_underflows": 0,
                "audio_onset_uncertain": False,
                "frame_interval_ms": {"median": ms, "max": ms}}  # fmt: skip
        if trial.question is not None or trial.response in ("typed", "experimenter"):
            self.ask(trial, rec)
        self.wait_until(self.last_flip + trial.iti_s)
        rec["status"] = "completed"
        return rec


def present_offline(
    plan: SessionPlan,
    trials: list[TrialPlan],
    stimuli: StimulusFiles,
    *,
    t_go: float,
    seed: int,
    accuracy: float = 0.8,
    t_open: float | None = None,
) -> Presentation:
    """Run trials as the presenter would, with the auto responder, without a window.

    Parameters
    ----------
    plan : SessionPlan
        The plan (its stimuli give the texts for word scoring).
    trials : list of TrialPlan
        The trials to run, in order.
    stimuli : StimulusFiles
        The stimulus files (kept between calls: each file is read once).
    t_go : float
        When ``go`` arrives, s; the ``session_start`` marker is on the next flip.
    seed : int
        The presenter's seed (``avlab run`` gives it the run's seed + 7): answers,
        reaction times, turns and noise start positions.
    accuracy : float
        Probability of a right answer.
    t_open : float | None
        When the window opened, s (default 2 s before ``t_go``).

    Returns
    -------
    presentation : Presentation
    """
    run = _Run(plan, stimuli, AutoResponder(accuracy, seed), seed=seed, t_go=t_go)
    out = run.out
    out.t_open = t_go - 2.0 if t_open is None else t_open
    run.log(out.t_open, "open", window=[1280, 720], measured_hz=REFRESH_HZ, paced=True,
            refresh_hz=REFRESH_HZ, audio_backend="sounddevice", audio_device="default",
            audio_latency_s=0.09, psychopy_clock="simulated (offline)",
            realtime_priority=False, clock_offset_s=0.0,
            clock_uncertainty_s=2e-6)  # fmt: skip
    t = run.flip()
    run.push("session_start", t, protocol=plan.protocol, participant=plan.participant,
             session=plan.session)  # fmt: skip
    for trial in trials:
        out.trials.append(run.trial(trial))
    out.t_end = run.now
    run.push("session_end", out.t_end, status="complete")
    run.log(out.t_end + 1e-4, "end", status="complete", markers=len(out.markers),
            dropped_frames=0, psychopy_dropped_frames=0)  # fmt: skip
    return out
