"""``avlab run``: pre-flight, recorder, presenter (and simulated lab), finalize.

The order matters for "nothing lost":

1. plan the session (protocol + participant -> trial list; with ``--resume``
   only the trials not yet completed), build or verify the stimuli;
2. create the session folder and write the protocol snapshot, the plan and
   ``run.json`` (status ``starting``);
3. start the simulated lab (``--simulate``) and the presenter; the presenter
   opens its window and marker stream and reports ``ready``;
4. pre-flight: streams, disk, display, audio (a failure stops here, exit 10);
5. start the recorder (its own thread, writing ``session.h5``), then tell the
   presenter to go; the presenter appends every finished trial to
   ``trials.jsonl`` as it happens;
6. when the presenter ends (done, Esc, crash) or avlab is interrupted, record
   a short tail, stop the recorder, stop the simulator, and mark the session
   ``complete`` or ``incomplete`` in ``session.h5`` and ``run.json``.
"""

from __future__ import annotations

import json
import shutil
import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from avlab import __version__
from avlab._logging import logger
from avlab.errors import AvlabError, OutputError
from avlab.protocol.plan import SessionPlan
from avlab.run.check import CheckReport, CheckRow, check_disk, check_display, check_streams
from avlab.run.models import (
    PLAN_FILE,
    PROTOCOL_FILE,
    RUN_FILE,
    STIMULI_MANIFEST,
    PreflightError,
    RunIncompleteError,
    RunOptions,
    RunRecord,
    RunResult,
)
from avlab.run.procs import PresenterProcess, SimProcess
from avlab.run.resume import completed_trials, previous_runs, read_trials

__all__ = ["run_session"]

_TAIL_S = 1.0  # recorded after the presenter ends (markers in flight, emit delay)
_ABORT_CODES = {10: "aborted with Esc", 11: "stopped by a signal"}


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def _write_json(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


class _Run:
    """State of one run (so that cleanup sees everything that was started)."""

    def __init__(self, opts: RunOptions) -> None:
        self.opts = opts
        self.stop = threading.Event()
        self.presenter: PresenterProcess | None = None
        self.sim: SimProcess | None = None
        self.devices = None
        self.recorder = None
        self.rec_thread: threading.Thread | None = None
        self.rec_error: BaseException | None = None
        self.record: RunRecord | None = None
        self.folder: Path | None = None
        self.reason = ""

    def save(self) -> None:
        if self.folder is not None and self.record is not None:
            _write_json(self.folder / RUN_FILE, self.record.model_dump_json(indent=1))


def _plan(opts: RunOptions) -> tuple[object, SessionPlan, list[int], list[str]]:
    from avlab.protocol import load_protocol, plan_session

    protocol = load_protocol(opts.protocol)
    plan = plan_session(protocol, opts.participant, opts.session, seed=opts.seed)
    todo = [t.index for t in plan.trials]
    resumes: list[str] = []
    prev = previous_runs(opts.out_dir, plan)
    if opts.resume:
        if not prev:
            raise AvlabError(
                f"nothing to resume: no earlier run of {plan.protocol!r} for participant "
                f"{opts.participant!r}, session {opts.session!r} in {opts.out_dir}.",
                "Run without --resume to start the session.",
            )
        done = completed_trials(prev)
        todo = [i for i in todo if i not in done]
        resumes = [p.name for p in prev]
        if not todo:
            raise AvlabError(
                f"participant {opts.participant!r}, session {opts.session!r} has completed "
                f"all {len(plan.trials)} trials of {plan.protocol!r} already.",
                "Nothing to resume; use another --session to record more.",
            )
        logger.info("resuming: %d of %d trials left", len(todo), len(plan.trials))
    elif prev:
        logger.warning(
            "an earlier run of this participant and session exists (%s); "
            "use --resume to continue it instead of starting over",
            prev[-1].name,
        )
    if opts.max_trials is not None:
        todo = todo[: opts.max_trials]
    return protocol, plan, todo, resumes


def _stimuli(opts: RunOptions, plan: SessionPlan, protocol_file: Path) -> Path:
    from avlab.stimuli import StimulusSet, build_stimuli

    folder = opts.stimuli_dir or Path("stimuli") / plan.protocol
    folder = folder.absolute()
    if not plan.stimuli:
        folder.mkdir(parents=True, exist_ok=True)
    else:
        build_stimuli(list(plan.stimuli), folder, base_dir=protocol_file.parent)
    stim = StimulusSet.load(folder)
    problems = stim.verify()
    if problems:
        raise AvlabError(
            f"stimuli in {folder} do not match their checksums: {problems[0]}",
            f"Rebuild them: avlab stimuli build {plan.protocol} --out {folder} --force.",
        )
    return folder


def _session_folder(opts: RunOptions) -> Path:
    from avlab.record.recorder import _session_name
    from avlab.record.writer import check_output_parent

    check_output_parent(opts.out_dir)
    folder = opts.out_dir / _session_name(opts.participant, opts.session)
    k = 1
    while folder.exists():
        k += 1
        folder = opts.out_dir / f"{_session_name(opts.participant, opts.session)}-{k}"
    try:
        folder.mkdir()
    except OSError as exc:
        raise OutputError(f"cannot create session folder {folder}: {exc}.") from exc
    return folder


def _sim_config(opts: RunOptions, folder: Path, stimuli: Path) -> Path:
    from avlab.sim.config import ParadigmConfig, SimConfig

    cfg = SimConfig(
        seed=opts.seed or 0,
        prefix=opts.sim_prefix,
        host_offset_s=float(opts.host_offset_s),
        truth_path=folder / "sim" / "sim_truth.json",
        paradigm=ParadigmConfig(marker_stream=opts.marker_stream, stimuli_dir=stimuli),
    )
    cfg.eeg.n_channels = opts.eeg_channels
    cfg.eeg.srate = opts.eeg_rate
    if opts.snr_db is not None:
        cfg.eeg.snr_db = opts.snr_db
    cfg.audio.mic_channels = 2
    (folder / "sim").mkdir(exist_ok=True)
    path = folder / "sim" / "sim_config.json"
    path.write_text(cfg.model_dump_json(indent=1))
    return path


def _presenter_config(
    opts: RunOptions, folder: Path, stimuli: Path, todo: list[int], accuracy_seed: int
) -> Path:
    from avlab.present import PresenterConfig

    cfg = PresenterConfig(
        plan_file=folder / PLAN_FILE,
        stimuli_dir=stimuli,
        out_dir=folder,
        marker_name=opts.marker_stream,
        fullscreen=opts.fullscreen,
        audio_backend=opts.audio_backend,
        audio_device=opts.audio_device,
        responder="auto" if opts.simulate else "keyboard",
        accuracy=opts.accuracy,
        seed=accuracy_seed,
        trials=todo,
        handshake=True,
        # real-time priority in a lab; not when the simulated lab shares the machine's cores
        rush=not opts.simulate,
    )
    path = folder / "presenter_config.json"
    path.write_text(cfg.model_dump_json(indent=1))
    return path


def _start_devices(run: _Run, protocol: object) -> list[str]:
    """Real runs: the protocol's cameras, microphones and Neon; returns their streams."""
    from avlab.run.devices import LabDevices

    opts = run.opts
    dev = getattr(getattr(protocol, "requirements", None), "devices", None)
    missing = [
        f"--{kind} {n}=..."
        for kind, names, given in (
            ("camera", getattr(dev, "cameras", []), opts.cameras),
            ("microphone", getattr(dev, "microphones", []), opts.microphones),
        )
        for n in names
        if n not in given
    ]
    if missing:
        raise PreflightError(
            f"the protocol needs devices that were not assigned: {', '.join(missing)}.",
            "Give each as NAME=SOURCE, e.g. --camera scene=0 --microphone partner=2 "
            "(`avlab devices` lists them).",
        )
    assert run.folder is not None
    run.devices = LabDevices(
        run.folder, cameras=opts.cameras, microphones=opts.microphones,
        neon=bool(getattr(dev, "neon", False)), neon_address=opts.neon_address,
        neon_relay=opts.neon_relay,
    )  # fmt: skip
    return run.devices.start()


def _streams_to_record(opts: RunOptions, protocol: object) -> list[str]:
    if opts.simulate:
        kinds = ["EEG", "Gaze", "Talkers", "Microphone", "Camera"]
        return [opts.sim_prefix + k for k in kinds] + [opts.marker_stream]
    reqs = getattr(getattr(protocol, "requirements", None), "streams", []) or []
    out = [opts.marker_stream]
    for r in reqs:
        if getattr(r, "type", "") == "Markers" and not getattr(r, "name", None):
            continue
        if not getattr(r, "optional", False):
            out.append(getattr(r, "name", None) or r.type)
    return out


def _start_recorder(run: _Run, names: list[str], status_cb: Callable | None) -> None:
    from avlab.record.recorder import Recorder
    from avlab.record.resolve import resolve_requested

    infos = resolve_requested(names, wait_s=run.opts.wait_s)
    assert run.folder is not None
    run.recorder = rec = Recorder(
        infos,
        run.folder,
        participant=run.opts.participant,
        session=run.opts.session,
        exist_ok=True,
    )

    folder, planned = run.folder, len(run.record.trials_planned if run.record else [])

    def on_status(rows: list) -> None:
        if status_cb is not None:
            status_cb(rows, sum(t.status == "completed" for t in read_trials(folder)), planned)

    def target() -> None:
        try:
            rec.run(stop_event=run.stop, status_callback=on_status)
        except BaseException as exc:  # re-raised by the main thread
            run.rec_error = exc
            run.stop.set()

    run.rec_thread = threading.Thread(target=target, name="recorder", daemon=True)
    run.rec_thread.start()


def _preflight(run: _Run, protocol: object, plan: SessionPlan, ready: dict) -> CheckReport:
    opts = run.opts
    reqs = getattr(getattr(protocol, "requirements", None), "streams", []) or []
    display = getattr(getattr(protocol, "requirements", None), "display", None)
    visible = None
    if opts.simulate:  # wait for every simulated stream, then check them
        from avlab.devices.lsl import describe_info
        from avlab.record.resolve import resolve_requested

        names = [n for n in _streams_to_record(opts, protocol) if n != opts.marker_stream]
        visible = [describe_info(i) for i in resolve_requested(names, wait_s=opts.wait_s)]
    rows: list[CheckRow] = check_streams(
        reqs, streams=visible, wait_s=3.0, prefix=opts.sim_prefix if opts.simulate else ""
    )
    from avlab.protocol import planned_duration_s

    duration = planned_duration_s(plan)
    from avlab.devices.lsl import list_streams

    streams = list_streams(1.0)
    from avlab.run.check import estimate_bytes

    rows.append(check_disk(opts.out_dir, estimate_bytes(streams, duration)))
    expected_hz = getattr(display, "refresh_hz", None)
    measured = ready.get("measured_hz")
    if ready.get("paced"):  # no vertical-blank sync: the presenter paces itself
        rows.append(
            CheckRow(
                item="display refresh",
                expected=f"{expected_hz or 60:g} Hz with vertical-blank sync",
                found=f"no sync ({float(measured or 0):.0f} flips/s): paced to "
                f"{float(ready.get('refresh_hz') or 0):g} Hz",
                status="pass" if opts.headless else "warn",
                fix="" if opts.headless else "Enable vsync in the graphics driver settings.",
            )
        )
    else:
        hz = float(measured) if measured else None
        rows.append(check_display(hz, expected_hz))
    dev = ready.get("audio_device") or ""
    rows.append(
        CheckRow(
            item="audio output",
            expected="stereo output opened by the presenter",
            found=f"{ready.get('audio_backend', '?')}: {dev}",
            status="pass" if ready.get("audio_backend") else "fail",
            fix="Check the sound card/headphones and --audio-device.",
        )
    )
    return CheckReport(protocol=plan.protocol, rows=rows)


def _headless_default(opts: RunOptions) -> bool:
    import os

    if opts.headless is not None:
        return opts.headless
    return opts.simulate and not os.environ.get("DISPLAY")


def run_session(
    opts: RunOptions,
    *,
    status_callback: Callable | None = None,
    check_callback: Callable[[CheckReport], None] | None = None,
) -> RunResult:
    """Run one participant session from pre-flight to a finalized recording.

    Parameters
    ----------
    opts : RunOptions
    status_callback : callable or None
        ``status_callback(streams, n_done, n_planned)`` about twice a second:
        the recorder's per-stream status and the trials completed so far.
    check_callback : callable or None
        Receives the pre-flight report (shown by the CLI).

    Returns
    -------
    result : RunResult

    Raises
    ------
    PreflightError
        A pre-flight check failed (the folder keeps the plan and the report; no recording).
    RunIncompleteError
        The run ended early; the session is kept, marked incomplete; ``--resume`` continues.
    """
    from contextlib import ExitStack

    opts = opts.model_copy(update={"headless": _headless_default(opts)})
    protocol, plan, todo, resumes = _plan(opts)
    protocol_file = Path(plan.protocol_file)
    stimuli = _stimuli(opts, plan, protocol_file)
    run = _Run(opts)
    run.folder = folder = _session_folder(opts)
    shutil.copyfile(protocol_file, folder / PROTOCOL_FILE)
    _write_json(folder / PLAN_FILE, plan.model_dump_json(indent=1))
    if (stimuli / STIMULI_MANIFEST).exists():
        shutil.copyfile(stimuli / STIMULI_MANIFEST, folder / STIMULI_MANIFEST)
    run.record = RunRecord(
        avlab_version=__version__, protocol=plan.protocol, protocol_file=str(protocol_file),
        participant=opts.participant, session=opts.session, simulate=opts.simulate,
        status="starting", started=_now(), trials_planned=todo, resumes=resumes,
        stimuli_dir=str(stimuli),
    )  # fmt: skip
    run.save()
    logger.info("session folder %s: %d trials", folder, len(todo))

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: _interrupt(run))
    try:
        with ExitStack() as stack:
            env: dict[str, str] = {}
            if opts.headless:
                from avlab.run.headless import virtual_av

                av = stack.enter_context(virtual_av())
                env = dict(av.env)
            if opts.simulate:
                run.sim = SimProcess(_sim_config(opts, folder, stimuli), folder / "sim" /
                                     "sim.log", env)  # fmt: skip
                run.sim.wait_started(folder / "sim" / "sim_truth.json")
            run.presenter = PresenterProcess(
                _presenter_config(opts, folder, stimuli, todo, (opts.seed or 0) + 7),
                folder / "presenter.log",
                env,
            )
            ready = run.presenter.wait_ready()
            run.record.presenter = {
                k: v for k, v in ready.items() if not isinstance(v, dict | list)
            }
            if not opts.skip_check:
                report = _preflight(run, protocol, plan, ready)
                _write_json(folder / "preflight.json", report.model_dump_json(indent=1))
                if check_callback is not None:
                    check_callback(report)
                if not report.ok:
                    bad = report.failures[0]
                    raise PreflightError(
                        f"pre-flight failed: {bad.item}: expected {bad.expected}, "
                        f"found {bad.found} ({len(report.failures)} failed checks; "
                        f"see {folder / 'preflight.json'}).",
                        bad.fix,
                    )
            names = _streams_to_record(opts, protocol)
            if not opts.simulate:
                names += _start_devices(run, protocol)
            _start_recorder(run, names, status_callback)
            time.sleep(0.5)  # the recorder's inlets are open and pulling
            run.record.status = "running"
            run.save()
            run.presenter.go()
            if run.devices is not None:
                run.devices.event("avlab.session_start")
            _supervise(run)
    except PreflightError:
        run.record.status = "incomplete"
        run.record.reason = "pre-flight failed"
        _cleanup(run)
        raise
    except BaseException as exc:
        run.reason = run.reason or f"error: {exc}"
        _cleanup(run)
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return _finalize(run, plan)


def _interrupt(run: _Run) -> None:
    if not run.reason:
        run.reason = "interrupted (Ctrl-C/SIGTERM)"
    logger.warning("interrupted: stopping the presenter, keeping what was recorded")
    if run.presenter is not None:
        run.presenter.terminate()
    else:
        run.stop.set()


def _supervise(run: _Run) -> None:
    assert run.presenter is not None
    while run.presenter.poll() is None:
        if run.rec_error is not None:
            run.reason = f"recorder failed: {run.rec_error}"
            run.presenter.terminate()
            break
        if run.sim is not None and run.sim.poll() is not None:
            run.reason = f"simulated lab stopped (status {run.sim.poll()}): {run.sim.stderr_tail()}"
            run.presenter.terminate()
            break
        time.sleep(0.2)
    rc = run.presenter.wait(30.0)
    assert run.record is not None
    run.record.presenter_exit = rc
    if rc != 0 and not run.reason:
        run.reason = _ABORT_CODES.get(rc) or (
            f"the presenter crashed (exit status {rc}): {run.presenter.stderr_tail()}"
        )
    _cleanup(run)


def _cleanup(run: _Run) -> None:
    if run.presenter is not None and run.presenter.poll() is None:
        run.presenter.terminate()
        run.presenter.wait(15.0)
    if run.rec_thread is not None and run.rec_thread.is_alive():
        time.sleep(_TAIL_S)
        run.stop.set()
        run.rec_thread.join(60.0)
    run.stop.set()
    if run.devices is not None:
        run.devices.event("avlab.session_end")
        run.devices.stop()
    if run.sim is not None and run.sim.poll() is None:
        run.sim.stop()
    if run.record is not None and run.folder is not None:
        trials = read_trials(run.folder)
        run.record.trials_done = [t.index for t in trials if t.status == "completed"]
        missing = [i for i in run.record.trials_planned if i not in run.record.trials_done]
        if run.reason or missing:
            run.record.status = "incomplete"
            run.record.reason = run.reason or f"{len(missing)} planned trials not completed"
        else:
            run.record.status = "complete"
        run.record.ended = _now()
        run.save()
        if run.recorder is not None and run.record.status == "incomplete":
            from avlab.record.writer import mark_status

            try:
                mark_status(run.folder, "incomplete", run.record.reason)
            except AvlabError as exc:
                logger.error("%s", exc)


def _finalize(run: _Run, plan: SessionPlan) -> RunResult:
    assert run.record is not None and run.folder is not None
    if run.rec_error is not None:
        raise run.rec_error
    rec = run.record
    lost = _samples_lost(run.folder)
    result = RunResult(
        folder=run.folder, status="complete" if rec.status == "complete" else "incomplete",
        reason=rec.reason, trials_done=len(rec.trials_done),
        trials_planned=len(rec.trials_planned), samples_lost=lost,
    )  # fmt: skip
    (run.folder / "run_result.json").write_text(result.model_dump_json(indent=1))
    if result.status != "complete":
        raise RunIncompleteError(
            f"session {run.folder} is incomplete: {rec.reason}; "
            f"{result.trials_done} of {result.trials_planned} trials done, all recorded data kept.",
            f"Continue it with: avlab run {rec.protocol} --participant {rec.participant} "
            f"--session {rec.session} --resume"
            + (" --simulate" if rec.simulate else "")
            + f" {run.opts.out_dir}",
        )
    return result


def _samples_lost(folder: Path) -> dict[str, int]:
    try:
        from avlab.session.summary import summarize

        return {st.name: int(st.samples_lost) for st in summarize(folder).streams}
    except Exception as exc:  # noqa: BLE001 - a summary failure must not hide the run result
        logger.warning("could not summarize %s: %s", folder, exc)
        return {}


def trials_json(folder: Path) -> str:
    """Return the trials as run, as a JSON array (for ``avlab run --json``)."""
    return json.dumps([t.model_dump() for t in read_trials(folder)], indent=1)
