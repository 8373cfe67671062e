"""The simulated lab: real LSL outlets fed from threads, with exact ground truth.

Each stream has a worker thread that emits fixed-size blocks when their time
has come. Sample ``i`` of a stream happens at ``StreamClock.true_times(i)``
(recorder's clock) and carries ``StreamClock.source_stamps(i)``; the content is
a function of lab time ``tau = true - t_start`` (talkers, gaze, blinks) plus
seeded noise drawn in block order, so a seed fixes every value. Faults
(stall, restart) end a :class:`~avlab.sim.truth.Segment` and start a new one;
the truth file is rewritten before the new segment's first sample is pushed.
"""

from __future__ import annotations

import tempfile
import threading
import time
import uuid
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pylsl

from avlab._logging import logger
from avlab.devices.timeecho import TimeEchoServer
from avlab.errors import OutputError
from avlab.sim.blinks import Blinks
from avlab.sim.config import FaultConfig, SimConfig
from avlab.sim.eeg import EEGModel
from avlab.sim.gaze import GAZE_CHANNELS, GazeModel
from avlab.sim.outlets import StreamSpec, make_info, source_id
from avlab.sim.participant import MarkerListener, Paradigm, ParadigmGaze
from avlab.sim.schedule import make_schedule
from avlab.sim.speech import SpeechSynth
from avlab.sim.truth import AttentionSpan, Segment, SimTruth, StreamClock, write_truth

__all__ = ["SimLab"]

_LEAD_S = 0.2  # first sample this long after start()


class _Emitter(threading.Thread):
    """Pushes one regular-rate stream in blocks, handling faults."""

    def __init__(
        self,
        lab: SimLab,
        spec: StreamSpec,
        clock: StreamClock,
        generate: Callable[[np.ndarray], np.ndarray],
        faults: list[FaultConfig],
    ) -> None:
        super().__init__(name=f"sim-{spec.kind}", daemon=True)
        self.lab, self.spec, self.clock, self.generate = lab, spec, clock, generate
        self.faults = sorted(faults, key=lambda f: f.at_s)
        self.n_pushed = 0
        self.error: BaseException | None = None
        self._jitter = clock.jitter_generator()

    def _stamps(self, idx: np.ndarray, true: np.ndarray) -> np.ndarray:
        c = self.clock
        if c.stamping != "arrival":
            return c.source_stamps(idx)
        # same arithmetic as StreamClock.source_stamps, one jitter draw per chunk in order
        last = idx[-1]
        jitter = self._jitter.normal(0.0, 1.0, size=1) * c.jitter_sd_s
        stamp_last = c.true_times(np.array([last])) + c.host_offset_s + c.latency_s + jitter
        return stamp_last[0] - (last - idx) / c.nominal_srate

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by SimLab.stop()
            self.error = exc
            logger.exception("simulated %s stream failed", self.spec.name)

    def _run(self) -> None:
        lab, clock, n = self.lab, self.clock, self.clock.chunk_size
        outlet = lab.open_outlet(self.spec)
        i = 0
        while not lab.stopping.is_set():
            idx = np.arange(i, i + n)
            true = clock.true_times(idx)
            tau = true - lab.t_start
            if lab.end_true is not None and true[-1] > lab.end_true:
                break
            if self.faults and tau[0] >= self.faults[0].at_s:
                outlet = self._fault(self.faults.pop(0), outlet, i)
                if outlet is None:
                    break
                continue
            stamps = self._stamps(idx, true)
            due = float(true[-1]) + lab.host_offset_s + lab.emit_delay_s  # this process's clock
            if clock.stamping == "arrival":
                due = max(due, float(stamps[-1]))
            wait = due - pylsl.local_clock()
            if wait > 0 and lab.stopping.wait(wait):
                break
            data = self.generate(tau)
            outlet.push_chunk(data, timestamp=stamps.tolist())
            i += n
            self.n_pushed = i

    def _fault(
        self, fault: FaultConfig, outlet: pylsl.StreamOutlet, i: int
    ) -> pylsl.StreamOutlet | None:
        lab = self.lab
        had_consumers = outlet.have_consumers()
        logger.info("fault: %s %s for %.1f s", self.spec.name, fault.kind, fault.duration_s)
        if fault.kind == "restart":
            del outlet
        if lab.stopping.wait(fault.duration_s):
            return None
        if fault.kind == "restart":
            outlet = lab.open_outlet(self.spec)
            if had_consumers and lab.config.restart_wait_s > 0:
                outlet.wait_for_consumers(lab.config.restart_wait_s)
        t0 = pylsl.local_clock() - lab.host_offset_s + 0.02
        with lab.truth_lock:
            self.clock.segments.append(Segment(first_index=i, t0_true=t0))
            lab.write_truth()
        return outlet


class _MarkerEmitter(threading.Thread):
    def __init__(self, lab: SimLab, spec: StreamSpec) -> None:
        super().__init__(name="sim-Markers", daemon=True)
        self.lab, self.spec = lab, spec
        self.n_pushed = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        lab = self.lab
        try:
            outlet = lab.open_outlet(self.spec)
            for m in lab.truth.markers:
                if lab.end_true is not None and m.t_true > lab.end_true:
                    break
                stamp = m.t_true + lab.host_offset_s
                wait = stamp - pylsl.local_clock()
                if wait > 0 and lab.stopping.wait(wait):
                    break
                outlet.push_sample([m.value], stamp)
                self.n_pushed += 1
            # keep the outlet open until the lab ends
            end = None if lab.end_true is None else lab.end_true + lab.host_offset_s
            while not lab.stopping.is_set():
                if end is not None and pylsl.local_clock() >= end:
                    break
                lab.stopping.wait(0.1)
        except BaseException as exc:
            self.error = exc
            logger.exception("simulated marker stream failed")


class SimLab:
    """The simulated lab: every stream as a real LSL outlet, plus its ground truth.

    Parameters
    ----------
    config : SimConfig
        What to simulate. ``host_offset_s`` must equal the offset of the time
        namespace this process runs in (see :func:`avlab.sim.run_sim`).

    Examples
    --------
    >>> with SimLab(SimConfig(duration_s=10, prefix="t1_")) as lab:  # doctest: +SKIP
    ...     lab.wait()
    """

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.run_id = config.run_id or uuid.uuid4().hex[:12]
        self.host_offset_s = float(config.host_offset_s)
        path = config.truth_path
        if path is None:
            path = Path(tempfile.gettempdir()) / f"avlab-sim-{self.run_id}" / "sim_truth.json"
        self.truth_path = Path(path).absolute()
        seed = config.seed
        self.paradigm: Paradigm | None = None
        self.emit_delay_s = 0.0
        self.blinks = Blinks(seed=seed, rate_hz=config.gaze.blink_rate_hz)
        if config.paradigm is not None:  # the participant follows a real presentation
            self.paradigm = Paradigm(config.paradigm.stimuli_dir, srate=config.audio.srate)
            self.emit_delay_s = config.paradigm.emit_delay_s
            self.schedule = self.speech = self.paradigm  # type: ignore[assignment]
        else:
            self.schedule = make_schedule(config.trials, seed=seed, duration_s=config.duration_s)
            self.speech = SpeechSynth(
                self.schedule,
                seed=seed,
                f0_hz=config.audio.f0_hz,
                srate=config.audio.srate,
                wavs=config.audio.talker_wavs,
            )
        self.eeg = (
            EEGModel(
                config.eeg,
                speech=self.speech,
                schedule=self.schedule,
                blinks=self.blinks,
                seed=seed,
            )
            if config.eeg.enabled
            else None
        )
        self.gaze = (
            ParadigmGaze(
                self.paradigm, self.blinks, seed=seed, look_attended=config.gaze.look_attended
            )
            if self.paradigm is not None
            else GazeModel(self.schedule, self.blinks, seed=seed)
        )
        self.truth_lock = threading.Lock()
        self.stopping = threading.Event()
        self.t_start = 0.0
        self.end_true: float | None = None
        self.truth: SimTruth | None = None
        self.echo: TimeEchoServer | None = None
        self._workers: list[_Emitter | _MarkerEmitter] = []
        self._listener: MarkerListener | None = None
        self._mic_rng = np.random.default_rng([seed, 0x31C])
        self._cpu0 = self._wall0 = 0.0

    # -- names --------------------------------------------------------------
    def name(self, kind: str) -> str:
        """LSL name of a simulated stream kind (``"EEG"`` -> ``prefix + "EEG"``)."""
        return f"{self.config.prefix}{kind}"

    @property
    def stream_names(self) -> list[str]:
        """Names of the streams this lab emits."""
        return [w.spec.name for w in self._workers]

    # -- plumbing used by the emitters ---------------------------------------
    def open_outlet(self, spec: StreamSpec) -> pylsl.StreamOutlet:
        """Create the outlet of a stream (again, after a restart)."""
        info = make_info(spec, run_id=self.run_id, truth_file=str(self.truth_path))
        return pylsl.StreamOutlet(info, chunk_size=0, max_buffered=360)

    def write_truth(self) -> None:
        """Write the truth file (call with :attr:`truth_lock` held)."""
        write_truth(self.truth, self.truth_path)

    # -- set-up -------------------------------------------------------------
    def _clock(
        self, kind: str, srate: float, chunk_s: float, stamping: str, **kw: float
    ) -> StreamClock:
        chunk = max(1, int(round(chunk_s * srate)))
        return StreamClock(
            name=self.name(kind),
            nominal_srate=srate,
            stamping=stamping,
            host_offset_s=self.host_offset_s,
            chunk_size=chunk,
            seed=zlib.crc32(f"{self.config.seed}|{kind}".encode()),
            segments=[Segment(first_index=0, t0_true=self.t_start)],
            **kw,
        )

    def _streams(self) -> list[tuple[StreamSpec, StreamClock | None, Callable | None]]:
        cfg, out = self.config, []
        sid = lambda kind: source_id(cfg.prefix, cfg.seed, kind)  # noqa: E731
        if cfg.eeg.enabled and self.eeg is not None:
            e = cfg.eeg
            spec = StreamSpec(
                kind="EEG", name=self.name("EEG"), type="EEG", srate=e.srate, fmt="float32",
                channels=[(lb, "microvolts", "EEG") for lb in self.eeg.labels], sid=sid("EEG"),
            )  # fmt: skip
            spec.positions = self.eeg.positions
            clock = self._clock(
                "EEG", e.srate, e.chunk_s, e.stamping,
                rate_ppm=e.rate_ppm, jitter_sd_s=e.jitter_sd_s, latency_s=e.latency_s,
            )  # fmt: skip
            out.append((spec, clock, self.eeg.block))
        if cfg.gaze.enabled:
            g = cfg.gaze
            spec = StreamSpec(
                kind="Gaze", name=self.name("Gaze"), type="Gaze", srate=g.srate, fmt="float32",
                channels=list(GAZE_CHANNELS), sid=sid("Gaze"),
            )  # fmt: skip
            delta = g.drift_ppm * 1e-6
            clock = self._clock(
                "Gaze", g.srate, g.chunk_s, g.stamping,
                device_offset_s=g.device_offset_s, drift_ppm=g.drift_ppm,
                rate_ppm=(1.0 / (1.0 + delta) - 1.0) * 1e6,  # samples regular on the device clock
            )  # fmt: skip
            if g.stamping == "device" and self.echo is not None:
                spec.extra["time_echo"] = {"host": g.echo_host, "port": str(self.echo.port)}
            spec.extra["acquisition"] = {"camera_width": "1600", "camera_height": "1200"}
            out.append((spec, clock, self.gaze.block))
        if cfg.audio.enabled:
            a = cfg.audio
            for kind, n_ch in (("Talkers", 2), ("Microphone", a.mic_channels)):
                labels = ["talker0", "talker1"] if kind == "Talkers" else [
                    f"mic{k}" for k in range(n_ch)
                ]  # fmt: skip
                spec = StreamSpec(
                    kind=kind, name=self.name(kind), type="Audio", srate=a.srate, fmt="float32",
                    channels=[(lb, "normalized", "Audio") for lb in labels], sid=sid(kind),
                )  # fmt: skip
                clock = self._clock(kind, a.srate, a.chunk_s, a.stamping, rate_ppm=a.rate_ppm)
                gen = self.speech.audio if kind == "Talkers" else self._microphone
                out.append((spec, clock, gen))
        if cfg.camera.enabled:
            c = cfg.camera
            spec = StreamSpec(
                kind="Camera", name=self.name("Camera"), type="VideoFrames", srate=c.fps,
                fmt="int32", channels=[("frame", "index", "FrameIndex")], sid=sid("Camera"),
            )  # fmt: skip
            spec.extra["camera"] = {"width": str(c.width), "height": str(c.height)}
            clock = self._clock("Camera", c.fps, 1.0 / c.fps, c.stamping)
            start = [0]

            def frames(tau: np.ndarray, start: list[int] = start) -> np.ndarray:
                idx = np.arange(start[0], start[0] + tau.size, dtype=np.int32)[:, None]
                start[0] += tau.size
                return idx

            out.append((spec, clock, frames))
        if cfg.markers.enabled and self.paradigm is None:
            spec = StreamSpec(
                kind="Markers", name=self.name("Markers"), type="Markers", srate=0.0,
                fmt="string", channels=[("event", "json", "Marker")], sid=sid("Markers"),
            )  # fmt: skip
            clock = StreamClock(
                name=spec.name, nominal_srate=0.0, stamping="source",
                host_offset_s=self.host_offset_s,
                segments=[Segment(first_index=0, t0_true=self.t_start)],
            )  # fmt: skip
            out.append((spec, clock, None))
        return out

    def _microphone(self, tau: np.ndarray) -> np.ndarray:
        # A microphone at each ear (mic0 left, mic1 right): the talker on the left
        # face is louder at mic0, so the recording carries the talkers' sides (the
        # cue avlab.separate uses to map gaze to a separated talker). Gains keep the
        # mixture below full scale (the talkers peak near 1).
        by_side = getattr(self.speech, "audio_by_side", None)  # the free-running lab has no
        talkers = by_side(tau) if by_side is not None else self.speech.audio(tau)  # sides
        a = self.config.audio
        gains = np.array([[0.45, 0.2], [0.2, 0.45]])[: a.mic_channels]  # (n_mic, left/right)
        noise = self._mic_rng.normal(
            0.0, 0.25 * 10 ** (a.mic_noise_db / 20), (tau.size, a.mic_channels)
        )
        return (talkers @ gains.T + noise).astype(np.float32)

    # -- lifecycle ----------------------------------------------------------
    def start(self) -> SimLab:
        """Write the truth, open the time-echo server and every outlet, start emitting.

        Returns
        -------
        self : SimLab
        """
        cfg = self.config
        self._cpu0, self._wall0 = time.process_time(), time.perf_counter()
        self.t_start = pylsl.local_clock() - self.host_offset_s + _LEAD_S
        if cfg.duration_s is not None:
            self.end_true = self.t_start + cfg.duration_s
        if cfg.gaze.enabled and cfg.gaze.stamping == "device":
            g = cfg.gaze
            clk = lambda: int(  # noqa: E731
                (
                    g.device_offset_s
                    + (pylsl.local_clock() - self.host_offset_s) * (1 + g.drift_ppm * 1e-6)
                )
                * 1e9
            )
            self.echo = TimeEchoServer(clk, g.echo_host, g.echo_port).start()
        streams = self._streams()
        if self.paradigm is None:
            spans, markers = self.schedule.to_truth(self.t_start)
        else:
            spans, markers = [], []
        lags, trf = (self.eeg.trf_lags, self.eeg.trf) if self.eeg else (np.zeros(0), np.zeros(0))
        gain = self.eeg.trf_gain if self.eeg else 0.0
        self.truth = SimTruth(
            run_id=self.run_id,
            seed=cfg.seed,
            host_offset_s=self.host_offset_s,
            streams={spec.name: clock for spec, clock, _ in streams},
            markers=markers if cfg.markers.enabled else [],
            attention=spans,
            trf_times_s=lags.tolist(),
            trf_attended=(gain * trf).tolist(),
            trf_unattended=(gain * cfg.eeg.unattended_gain * trf).tolist(),
            eeg_snr_db=cfg.eeg.snr_db if self.eeg else None,
            extra={
                "t_start": self.t_start,
                "truth_file": str(self.truth_path),
                "trf_input": "talker amplitude envelope (audio units)",
                "trf_units": "microvolts per envelope unit",
                "config": cfg.model_dump_json(),
            },
        )
        try:
            self.truth_path.parent.mkdir(parents=True, exist_ok=True)
            with self.truth_lock:
                self.write_truth()
        except OSError as exc:
            self._stop_echo()
            raise OutputError(
                f"cannot write the simulator truth file {self.truth_path}: {exc.strerror}.",
                "Give a writable --truth path.",
            ) from exc
        logger.info("simulator truth: %s", self.truth_path)
        for spec, clock, gen in streams:
            if gen is None:
                worker: _Emitter | _MarkerEmitter = _MarkerEmitter(self, spec)
            else:
                faults = [f for f in cfg.faults if f.stream == spec.kind]
                worker = _Emitter(self, spec, clock, gen, faults)
            self._workers.append(worker)
        if self.paradigm is not None and cfg.paradigm is not None:
            self._listener = MarkerListener(
                cfg.paradigm.marker_stream,
                self.paradigm,
                to_lab_time=lambda t: t - self.host_offset_s - self.t_start,
                stopping=self.stopping,
                on_change=self._paradigm_truth,
                wait_s=cfg.paradigm.wait_s,
            )
            self._listener.start()
        for w in self._workers:
            w.start()
        return self

    def _paradigm_truth(self) -> None:
        """Rewrite the attention spans in the truth file after a presenter marker."""
        if self.paradigm is None or self.truth is None:
            return
        spans = self.paradigm.spans
        with self.truth_lock:
            self.truth.attention = [
                AttentionSpan(
                    t_start=self.t_start + s[0],
                    t_end=self.t_start + (s[1] if np.isfinite(s[1]) else s[0]),
                    talker=int(s[2]),
                    trial=int(s[3]),
                )
                for s in spans
                if np.isfinite(s[1])
            ]
            self.truth.extra["paradigm_markers"] = self.paradigm.n_markers
            self.write_truth()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every stream has finished (duration reached or stopped).

        Parameters
        ----------
        timeout : float | None
            Seconds; None waits for ever (use with a duration or another thread's stop()).

        Returns
        -------
        finished : bool
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        for w in self._workers:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            w.join(left)
            if w.is_alive():
                return False
        return True

    def _stop_echo(self) -> None:
        if self.echo is not None:
            self.echo.stop()
            self.echo = None

    def stop(self) -> SimTruth:
        """Stop every stream, close the outlets and write the final truth.

        Returns
        -------
        truth : SimTruth
            Markers limited to those emitted; ``extra`` holds samples per
            stream, CPU use and the stop time.
        """
        self.stopping.set()
        for w in self._workers:
            w.join(5.0)
        if self._listener is not None:
            self._listener.join(5.0)
        self._stop_echo()
        self._paradigm_truth()
        if self.truth is None:
            return SimTruth(run_id=self.run_id, seed=self.config.seed)
        cpu = time.process_time() - self._cpu0
        wall = max(time.perf_counter() - self._wall0, 1e-9)
        with self.truth_lock:
            extra = self.truth.extra
            for w in self._workers:
                extra[f"n_samples:{w.spec.name}"] = w.n_pushed
                if isinstance(w, _MarkerEmitter):
                    self.truth.markers = self.truth.markers[: w.n_pushed]
            extra["t_stop"] = pylsl.local_clock() - self.host_offset_s
            extra["cpu_s"] = cpu
            extra["cpu_percent"] = 100.0 * cpu / wall
            self.write_truth()
        logger.info("simulator stopped: %.1f s, CPU %.0f %%", wall, 100 * cpu / wall)
        errors = [w.error for w in [*self._workers, self._listener] if w and w.error is not None]
        if errors:
            raise RuntimeError(f"simulated stream failed: {errors[0]!r}") from errors[0]
        return self.truth

    def __enter__(self) -> SimLab:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
