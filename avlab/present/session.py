"""The trial loop: instructions, cue, talkers, switch, question, with markers at flip time.

Every marker carries the LSL time of what the participant saw or heard: the
flip that first showed a cue, a switch or a question (``Stage.flip`` returns
it), the audio onset of the trial's sound as the output stream scheduled it
(``trial_start``), its offset (onset + length: ``trial_end``), the key press
(``response``, ``turn``). Files are appended and flushed as things happen,
so a crash loses nothing already run.
"""

from __future__ import annotations

import json
import math
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import numpy as np
import pylsl
import soundfile as sf
from scipy.signal import resample_poly

from avlab._logging import logger
from avlab.errors import AvlabError, OutputError, SessionError
from avlab.present.audio import (
    SRATE,
    AudioPlayer,
    open_player,
    spatialize,
    tone,
    trial_mix,
)
from avlab.present.config import (
    EXIT_ABORTED,
    EXIT_COMPLETE,
    EXIT_SIGNAL,
    PresenterConfig,
    PresentResult,
)
from avlab.present.markers import MarkerOutlet
from avlab.present.responder import AutoResponder, Response
from avlab.present.stage import Stage, VideoReader
from avlab.present.stimuli import load_stimuli, sha256_file
from avlab.protocol.plan import SessionPlan, TrialPlan

__all__ = ["Presenter", "present_session"]

_OPTION_KEYS = [str(k) for k in range(1, 10)]
_CUE_TONE_HZ = 1000.0


class _Abort(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Jsonl:
    def __init__(self, path: Path) -> None:
        self.f: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def write(self, obj: dict) -> None:
        self.f.write(json.dumps(obj, separators=(",", ":"), default=str) + "\n")
        self.f.flush()
        os.fsync(self.f.fileno())

    def close(self) -> None:
        self.f.close()


class Presenter:
    """Runs a session plan in a PsychoPy window.

    Parameters
    ----------
    cfg : PresenterConfig
    """

    def __init__(self, cfg: PresenterConfig) -> None:
        self.cfg = cfg
        self.plan = _load_plan(Path(cfg.plan_file))
        self.texts = {s.stim_id: s.text for s in self.plan.stimuli}
        self._stimuli = load_stimuli(Path(cfg.stimuli_dir))
        self.abort_reason: str | None = None
        self.out = Path(cfg.out_dir)
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            self.log = _Jsonl(self.out / "presenter.jsonl")
            self.trials_out = _Jsonl(self.out / "trials.jsonl")
            self.stim_log = _Jsonl(self.out / "stimulus_log.jsonl")
        except OSError as exc:
            raise OutputError(
                f"cannot write the presenter's files in {self.out}: {exc}.",
                "Check that the folder is writable and the disk not full.",
            ) from exc
        self.stage: Stage | None = None
        self.player: AudioPlayer | None = None
        try:
            self.stage = Stage(cfg.size, fullscreen=cfg.fullscreen, screen=cfg.screen,
                               refresh_hz=cfg.refresh_hz, photodiode=cfg.photodiode,
                               rush=cfg.rush)  # fmt: skip
            self.player = open_player(cfg.audio_backend, cfg.audio_device,
                                      buffer_s=cfg.audio_buffer_s)  # fmt: skip
            self.markers = MarkerOutlet(cfg.marker_name, cfg.source_id)
        except BaseException:
            self.close()
            raise
        self.auto = (
            AutoResponder(cfg.accuracy, cfg.seed, cfg.rt_median_s, cfg.rt_sigma)
            if cfg.responder == "auto"
            else None
        )
        self.n_dropped = 0
        self._event(
            "open", window=[int(x) for x in self.stage.win.size],
            measured_hz=self.stage.measured_hz,
            paced=self.stage.pace, refresh_hz=self.stage.refresh_hz,
            audio_backend=self.player.backend, audio_device=self.player.device_name,
            audio_latency_s=self.player.latency_s, psychopy_clock=self.stage.clock_source,
            realtime_priority=self.stage.rushed,
            clock_offset_s=self.stage.clock.offset_s,
            clock_uncertainty_s=self.stage.clock.uncertainty_s,
        )  # fmt: skip

    # -- set-up ----------------------------------------------------------------------
    def _event(self, what: str, **fields: object) -> None:
        self.log.write({"t_lsl": pylsl.local_clock(), "event": what, **fields})

    def ready_message(self) -> dict:
        """Return the handshake line: what is open and how it measured."""
        return {
            "ready": True, "marker_stream": self.markers.name,
            "source_id": self.markers.source_id, "refresh_hz": self.stage.refresh_hz,
            "measured_hz": self.stage.measured_hz, "paced": self.stage.pace,
            "audio_backend": self.player.backend, "audio_device": self.player.device_name,
        }  # fmt: skip

    # -- helpers -------------------------------------------------------------------------
    def _check_abort(self) -> None:
        if self.abort_reason is not None:
            raise _Abort(self.abort_reason)
        if self.stage.keys(["escape"]):
            self.abort_reason = "escape"
            raise _Abort("escape")

    def _flip(self, marked: bool = False) -> float:
        self._check_abort()
        t = self.stage.flip(marked=marked)
        return t

    def _wait_key(
        self,
        keys: list[str],
        draw: Callable[[], None],
        auto_after: float | None,
        clickable: list | None = None,
    ) -> tuple[str, float]:
        """Flip until one of ``keys`` is pressed (or ``clickable[i]`` clicked: ``keys[i]``).

        Key times are the keyboard events' own times; a click's time is when
        its press event was handled (events are handled at every flip).
        """
        t0 = None
        self.stage.keys()  # drop earlier presses
        self.stage.clicks()
        self.stage.show_pointer(bool(clickable))
        try:
            while True:
                draw()
                t = self._flip()
                t0 = t0 or t
                got = self.stage.keys(keys + ["escape"])
                for k, tk in got:
                    if k == "escape":
                        self.abort_reason = "escape"
                        raise _Abort("escape")
                    return k, tk
                for tc, (x, y) in self.stage.clicks():
                    for k, box in zip(keys, clickable or [], strict=False):
                        bx, by = box.pos
                        if abs(x - bx) <= box.width / 2 and abs(y - by) <= box.height / 2:
                            return k, tc
                if auto_after is not None and t - t0 >= auto_after:
                    return keys[0], t
        finally:
            self.stage.show_pointer(False)

    def _screen(self, text: str, event: str, trial: int) -> None:
        def draw() -> None:
            self.stage.text.text = text
            self.stage.text.draw()
            self.stage.small.text = "Press space to continue"
            self.stage.small.draw()

        draw()
        t = self._flip(marked=True)
        self.markers.push(event, t, trial=trial)
        self._wait_key(["space"], draw, 0.5 if self.auto else None)

    # -- one trial -------------------------------------------------------------------------
    def _audio(self, stim_id: str) -> np.ndarray:
        try:
            st = self._stimuli.get(stim_id)
        except KeyError as exc:
            raise SessionError(
                f"stimulus {stim_id!r} is not in {self.cfg.stimuli_dir}.",
                "Build the stimuli for this protocol: avlab stimuli build PROTOCOL.",
            ) from exc
        data, fs = sf.read(st.wav, dtype="float64", always_2d=True)
        mono = data.mean(axis=1)
        if fs != SRATE:  # plain files may come at any rate
            g = math.gcd(int(fs), SRATE)
            mono = resample_poly(mono, SRATE // g, int(fs) // g)
        return mono

    def _prepare(self, trial: TrialPlan) -> tuple[np.ndarray, list, list]:
        talkers, faces, readers = [], [], []
        self._played: list[dict] = []
        for tp in trial.talkers:
            audio = self._audio(tp.stim_id)
            st = self._stimuli.get(tp.stim_id)
            self._played.append({
                "trial": trial.index, "stim_id": tp.stim_id, "file": str(st.wav),
                "sha256": st.sha256, "video": str(st.video) if st.video and tp.video else None,
                "offset_s": tp.onset_s, "gain_db": tp.level_db, "azimuth_deg": tp.azimuth_deg,
            })  # fmt: skip
            talkers.append((audio, tp.level_db, tp.azimuth_deg, tp.onset_s))
            reader = VideoReader(st.video) if st.video else None
            readers.append(reader if tp.video else None)
            if reader is not None:
                faces.append(self.stage.face_stim(reader.first, tp.position))
                if not tp.video:
                    reader.close()
            else:
                faces.append(None)
        noise = None
        if trial.noise is not None:
            kind = trial.noise.stim_id if trial.noise.kind == "file" else trial.noise.kind
            noise_file = self._stimuli.noise(kind)
            nd, _ = sf.read(noise_file, dtype="float64", always_2d=True)
            self._played.append({
                "trial": trial.index, "stim_id": f"noise-{kind}", "file": str(noise_file),
                "sha256": sha256_file(noise_file), "video": None, "offset_s": 0.0,
                "gain_db": -trial.noise.snr_db, "azimuth_deg": None,
            })  # fmt: skip
            start = int(np.random.default_rng([self.cfg.seed, trial.index]).integers(
                max(1, nd.shape[0] // 2)))  # fmt: skip
            noise = (np.roll(nd.mean(axis=1), -start), trial.noise.snr_db)
        mix, gain = trial_mix(talkers, noise, trial.duration_s)
        for entry in self._played:
            entry["gain_db"] += gain
        if gain:
            self._event("mix_scaled", trial=trial.index, gain_db=gain)
        return mix, faces, readers

    def _draw_faces(
        self, faces: list, readers: list, t_rel: float | None, onsets: list[float] | None = None
    ) -> None:
        """Draw the faces, on their video frame for ``t_rel`` when given.

        ``t_rel`` is the coming flip's time after the audio onset, s; each video
        shows frame ``floor((t_rel - talker onset) * fps)`` (0 before it). A
        texture is uploaded only when its frame index changes (a 25 fps video on
        a 60 Hz display: 25 uploads per second, not 60).
        """
        for k, (face, reader) in enumerate(zip(faces, readers, strict=True)):
            if face is None:
                continue
            if reader is not None and t_rel is not None:
                start = onsets[k] if onsets else 0.0
                index = max(int(np.floor((t_rel - start) * reader.fps)), 0)
                if self._shown.get(k) != index:
                    face.image = reader.frame(index)
                    self._shown[k] = index
            face.draw()

    def _cue(self, trial: TrialPlan, faces: list) -> dict:
        """Show/play the cue; the visual cue's first flip and the tone coincide.

        The ``cue`` marker carries the first flip of the visual cue, or, for an
        auditory-only cue, the tone's audio onset.
        """
        assert trial.cue is not None and trial.attended is not None
        cue, att = trial.cue, trial.talkers[trial.attended]
        visual = cue.modality in ("visual", "both")
        auditory = cue.modality in ("auditory", "both")
        self.stage.cue_rect.pos = att.position
        text = cue.text or f"Listen to the talker on the {att.side}"
        fields = {"trial": trial.index, "attended": trial.attended, "talker": att.talker,
                  "side": att.side, "modality": cue.modality}  # fmt: skip
        times: dict[str, float] = {}
        if auditory:
            buf = spatialize(tone(_CUE_TONE_HZ, 0.15), att.azimuth_deg).astype(np.float32)
            when = self.stage.next_flip_after(pylsl.local_clock() + self.cfg.audio_latency_s)
            self.player.play(buf, when)
            # hold the picture until the flip that comes with the tone
            while self.stage.next_flip_after(pylsl.local_clock()) < when - 0.5 * self.stage.period:
                self._draw_faces(faces, [None] * len(faces), None)
                self._flip()
        t_end = None
        while t_end is None or self.stage.last_flip_lsl < t_end:
            self._draw_faces(faces, [None] * len(faces), None)
            if visual:
                self.stage.cue_rect.draw()
                self.stage.text.text = text
                self.stage.text.pos = (0, -0.32)
                self.stage.text.draw()
            t = self._flip(marked=visual and t_end is None)
            if t_end is None:
                t_end = t + cue.duration_s
                if auditory:
                    times["cue_tone"] = self.player.onset_lsl()
                times["cue"] = t if visual else times["cue_tone"]
                self.markers.push("cue", times["cue"], **fields)
        self.stage.text.pos = (0, 0)
        return times

    def _run_trial(self, trial: TrialPlan) -> dict:
        rec: dict = {"index": trial.index, "block": trial.block, "kind": trial.kind,
                     "talkers": [t.talker for t in trial.talkers],
                     "stims": [t.stim_id for t in trial.talkers], "attended": trial.attended,
                     "status": "aborted"}  # fmt: skip
        if trial.break_before:
            self._screen("Take a break.\nPress space when you are ready to go on.", "break",
                         trial.index)  # fmt: skip
        if trial.instructions:
            self._screen(trial.instructions, "instructions", trial.index)
        shift = self.stage.remeasure_clock()
        if abs(shift) > 0.5e-3:
            self._event("clock_shift", trial=trial.index, shift_s=shift)
        under0, drop0 = self.player.underflows, self.stage.win.nDroppedFrames
        mix, faces, readers = self._prepare(trial)
        self._shown: dict[int, int] = {}
        self._draw_faces(faces, readers, 0.0)
        self._flip()
        if trial.cue is not None and trial.attended is not None:
            rec |= self._cue(trial, faces)
        n_drop, intervals = self._present(trial, mix, faces, readers, rec)
        for r in readers:
            if r is not None:
                r.close()
        rec["dropped_frames"] = n_drop
        rec["psychopy_dropped_frames"] = int(self.stage.win.nDroppedFrames - drop0)
        rec["audio_underflows"] = int(self.player.underflows - under0)
        rec["audio_onset_uncertain"] = bool(self.player.onset_underflow)
        if rec["audio_underflows"]:
            self._event("audio_underflow", trial=trial.index, n=rec["audio_underflows"],
                        near_onset=rec["audio_onset_uncertain"])  # fmt: skip
        self.n_dropped += n_drop
        rec["frame_interval_ms"] = {
            "median": float(np.median(intervals) * 1e3) if intervals else None,
            "max": float(np.max(intervals) * 1e3) if intervals else None,
        }
        if trial.question is not None or trial.response in ("typed", "experimenter"):
            rec |= self._ask(trial)
        t_iti = self.stage.last_flip_lsl + trial.iti_s
        while self.stage.last_flip_lsl < t_iti:
            self._flip()
        rec["status"] = "completed"
        return rec

    def _present(self, trial: TrialPlan, mix: np.ndarray, faces: list, readers: list,
                 rec: dict) -> tuple[int, list[float]]:  # fmt: skip
        when = self.stage.next_flip_after(pylsl.local_clock() + self.cfg.audio_latency_s)
        self.player.play(mix, when)
        dur = mix.shape[0] / SRATE
        onset = None
        switched = trial.switch is None
        next_turn = None
        turn_keys = dict(getattr(trial, "turn_keys", {}) or {})
        intervals: list[float] = []
        prev = self.stage.last_flip_lsl
        while True:
            ref = onset if onset is not None else when
            t_rel = self.stage.next_flip_after(pylsl.local_clock()) - ref
            self._draw_faces(faces, readers, t_rel, [tp.onset_s for tp in trial.talkers])
            if trial.kind == "conversation" and getattr(trial, "prompt", ""):
                self.stage.text.text = trial.prompt  # type: ignore[attr-defined]
                self.stage.text.draw()
            if not switched and onset is not None:
                assert trial.switch is not None
                if self.stage.next_flip_after(pylsl.local_clock()) >= onset + trial.switch.at_s:
                    self.stage.cue_rect.pos = trial.talkers[trial.switch.to].position
            if (
                trial.switch is not None
                and onset is not None
                and (self.stage.next_flip_after(pylsl.local_clock()) >= onset + trial.switch.at_s)
            ):
                self.stage.cue_rect.draw()
            mark_switch = (not switched and onset is not None and trial.switch is not None
                           and self.stage.next_flip_after(pylsl.local_clock())
                           >= onset + trial.switch.at_s)  # fmt: skip
            t = self._flip(marked=mark_switch)
            intervals.append(t - prev)
            prev = t
            if onset is None and t >= when - 0.5 * self.stage.period:
                onset = self.player.onset_lsl()
                rec["audio_onset"] = onset
                rec["audio_late_s"] = onset - when
                for entry in self._played:
                    self.stim_log.write({**entry, "onset": onset + entry.pop("offset_s")})
                self.markers.push(
                    "trial_start", onset, trial=trial.index, attended=trial.attended,
                    talkers=rec["talkers"], stims=rec["stims"],
                    sides=[tp.side for tp in trial.talkers],
                    snr_db=trial.noise.snr_db if trial.noise else None,
                )  # fmt: skip
                next_turn = onset + (self.auto.turn_gap() if self.auto else 0.0)
            if mark_switch:
                assert trial.switch is not None
                switched = True
                rec["switch"] = t
                self.markers.push("switch", t, trial=trial.index, attended=trial.switch.to)
            if turn_keys:
                speakers = list(turn_keys.values())
                for k, tk in self.stage.keys(list(turn_keys)):
                    self.markers.push("turn", tk, trial=trial.index, speaker=turn_keys[k])
                if self.auto and next_turn is not None and t >= next_turn:
                    who = speakers[int(self.auto.rng.integers(len(speakers)))]
                    self.markers.push("turn", t, trial=trial.index, speaker=who)
                    next_turn = t + self.auto.turn_gap()
            if onset is not None and t >= onset + dur:
                rec["audio_offset"] = onset + dur
                self.markers.push("trial_end", onset + dur, trial=trial.index)
                break
        drops = int(sum(i > 1.5 * self.stage.period for i in intervals[1:]))
        if drops:
            self._event("dropped_frames", trial=trial.index, n=drops)
        return drops, intervals[1:]

    def _ask(self, trial: TrialPlan) -> dict:
        q = trial.question
        text = ""
        if trial.response in ("typed", "experimenter"):
            text = " ".join(self.texts.get(t.stim_id, "") for t in trial.talkers).strip()
        if trial.response == "experimenter":
            prompt = "Experimenter: how many words were right? (0-9)"
            keys = _OPTION_KEYS[: min(9, len(text.split()))] + ["0"]
        elif q is not None and q.options:
            prompt = q.text
            keys = _OPTION_KEYS[: len(q.options)]
        else:
            prompt = (q.text if q else "Type what you heard") + "\n(type, then press Return)"
            keys = []

        def draw() -> None:
            self.stage.text.text = prompt
            self.stage.text.pos = (0, 0.25) if options else (0, 0)
            self.stage.text.draw()
            for label, box in options:
                box.draw()
                label.draw()

        options: list = []
        if q is not None and q.options and trial.response != "experimenter":
            options = self.stage.options([f"{k + 1}. {o}" for k, o in enumerate(q.options)])
        draw()
        t_q = self._flip(marked=True)
        self.markers.push("question", t_q, trial=trial.index)
        resp = self._collect(trial, keys, draw, t_q, text, [b for _, b in options])
        self.stage.text.pos = (0, 0)
        self.markers.push("response", resp.t_lsl, trial=trial.index, answer=resp.answer,
                          correct=resp.correct, rt_s=resp.t_lsl - t_q)  # fmt: skip
        return {"question": t_q, "response": resp.answer, "correct": resp.correct,
                "rt_s": resp.t_lsl - t_q}  # fmt: skip

    def _collect(self, trial: TrialPlan, keys: list[str], draw: Callable[[], None], t_q: float,
                 text: str, boxes: list) -> Response:  # fmt: skip
        q = trial.question
        if self.auto is not None:
            rt = self.auto.rt()
            while self.stage.last_flip_lsl < t_q + rt:
                draw()
                self._flip()
            t = self.stage.last_flip_lsl
            if trial.response == "experimenter":
                return Response(self.auto.score(text), t, None)
            if q is not None and q.options:
                c = self.auto.choice(q)
                return Response(c, t, None if q.correct is None else c == q.correct)
            typed = self.auto.typed(trial, text)
            return Response(typed, t, _words_right(typed, text))
        if keys:
            k, tk = self._wait_key(keys, draw, None, boxes or None)
            if trial.response == "experimenter":
                return Response(int(k), tk, None)
            c = int(k) - 1
            return Response(c, tk, None if q is None or q.correct is None else c == q.correct)
        typed = ""
        while True:
            self.stage.text.text = f"{q.text if q else 'Type what you heard'}\n\n{typed}_"
            self.stage.text.draw()
            self._flip()
            for k, tk in self.stage.keys():
                if k == "escape":
                    self.abort_reason = "escape"
                    raise _Abort("escape")
                if k == "return":
                    return Response(typed, tk, _words_right(typed, text))
                if k == "backspace":
                    typed = typed[:-1]
                elif k == "space":
                    typed += " "
                elif len(k) == 1:
                    typed += k

    # -- the session ---------------------------------------------------------------------------
    def wait_for_go(self, stream: IO[str]) -> PresentResult | None:
        """Keep the window alive until ``go`` arrives on ``stream``.

        Returns
        -------
        result : PresentResult | None
            None on ``go``; an aborted result on Esc, a signal or a closed stream.
        """
        lines: queue.Queue[str] = queue.Queue()

        def read() -> None:
            for line in stream:
                lines.put(line)
            lines.put("")

        threading.Thread(target=read, daemon=True, name="handshake").start()
        while True:
            try:
                line = lines.get_nowait()
            except queue.Empty:
                try:
                    self._flip()
                except _Abort as exc:
                    return self._abort_before_start(exc.reason)
                continue
            if line.strip() == "go":
                return None
            if not line:
                raise AvlabError(
                    "the presenter's controller closed stdin before sending `go`.",
                    "Send a line `go` to start, or run without handshake.",
                )

    def _abort_before_start(self, reason: str) -> PresentResult:
        self.markers.push("abort", pylsl.local_clock(), trial=None, reason=reason)
        self._event("abort", trial=None, reason=reason)
        code = EXIT_ABORTED if reason == "escape" else EXIT_SIGNAL
        return PresentResult(exit_code=code, status="aborted", reason=reason,
                             n_markers=self.markers.n_pushed, out_dir=self.out)  # fmt: skip

    def run(self) -> PresentResult:
        """Run the (selected) trials.

        Returns
        -------
        result : PresentResult
        """
        wanted = set(self.cfg.trials) if self.cfg.trials is not None else None
        trials = [t for t in self.plan.trials if wanted is None or t.index in wanted]
        t = self._flip(marked=True)
        self.markers.push("session_start", t, protocol=self.plan.protocol,
                          participant=self.plan.participant, session=self.plan.session)  # fmt: skip
        code, status, reason = EXIT_COMPLETE, "complete", None
        current = None
        done: list[int] = []
        try:
            for trial in trials:
                current = trial.index
                self.trials_out.write(self._run_trial(trial))
                done.append(trial.index)
                current = None
        except _Abort as exc:
            reason = exc.reason
            code = EXIT_ABORTED if exc.reason == "escape" else EXIT_SIGNAL
            status = "aborted"
            self.player.stop_sound()
            t = pylsl.local_clock()
            self.markers.push("abort", t, trial=current, reason=exc.reason)
            if current is not None:
                self.trials_out.write({"index": current, "status": "aborted", "reason": exc.reason})
            self._event("abort", trial=current, reason=exc.reason)
        except Exception as exc:
            # a crash: say so on the marker stream and in the files, then let it out
            self.player.stop_sound()
            self.markers.push("abort", pylsl.local_clock(), trial=current, reason="error")
            if current is not None:
                self.trials_out.write({"index": current, "status": "aborted", "reason": "error"})
            self._event("abort", trial=current, reason="error", error=repr(exc))
            self.markers.push("session_end", pylsl.local_clock(), status="aborted")
            raise
        self.markers.push("session_end", pylsl.local_clock(), status=status)
        self._event("end", status=status, markers=self.markers.n_pushed,
                    dropped_frames=self.n_dropped,
                    psychopy_dropped_frames=int(self.stage.win.nDroppedFrames))  # fmt: skip
        return PresentResult(
            exit_code=code, status=status, reason=reason, completed=done,
            aborted_trial=current if status == "aborted" else None,
            n_markers=self.markers.n_pushed, dropped_frames=self.n_dropped,
            out_dir=self.out,
        )  # fmt: skip

    def close(self) -> None:
        """Close the audio, the window and the files (whatever was opened)."""
        if getattr(self, "markers", None) is not None:
            time.sleep(0.2)  # the last markers reach their consumers
        if self.player is not None:
            self.player.close()
        if self.stage is not None:
            self.stage.close()
        for f in (self.log, self.trials_out, self.stim_log):
            f.close()


def _load_plan(path: Path) -> SessionPlan:
    try:
        return SessionPlan.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise AvlabError(
            f"cannot read the session plan {path}: {exc.strerror}.",
            "Give plan_file as the plan.json that `avlab run` writes.",
        ) from exc
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        first = " ".join(str(exc).split())[:300]
        raise AvlabError(
            f"{path} is not a valid session plan: {first}",
            "Write it with SessionPlan.model_dump_json().",
        ) from exc


def _words_right(typed: str, text: str) -> bool:
    norm = lambda s: [w.strip(".,;:!?'\"").lower() for w in s.split()]  # noqa: E731
    return norm(typed) == norm(text)


def present_session(
    cfg: PresenterConfig,
    *,
    handshake_in: IO[str] | None = None,
    announce: bool | None = None,
) -> PresentResult:
    """Open the window and run the plan.

    Parameters
    ----------
    cfg : PresenterConfig
    handshake_in : text stream or None
        Where ``go`` is read from with ``cfg.handshake`` (default stdin).
    announce : bool or None
        Write the ``ready`` JSON line to stdout once the window, the audio and
        the marker stream are open (None: only with ``cfg.handshake``;
        ``python -m avlab.present`` always does).

    Returns
    -------
    result : PresentResult
        Its ``exit_code`` is 0 (complete), 10 (Esc) or 11 (SIGTERM/SIGINT).
    """
    pres = Presenter(cfg)
    previous = {}
    if threading.current_thread() is threading.main_thread():

        def on_signal(*_: object) -> None:
            pres.abort_reason = "signal"

        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        if cfg.handshake if announce is None else announce:
            sys.stdout.write(json.dumps(pres.ready_message()) + "\n")
            sys.stdout.flush()
        if cfg.handshake:
            early = pres.wait_for_go(handshake_in or sys.stdin)
            if early is not None:
                return early
        return pres.run()
    finally:
        pres.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        logger.info("presenter closed")
