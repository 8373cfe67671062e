"""Write a simulated session folder offline, much faster than real time.

``avlab run PROTOCOL --simulate`` runs the presenter, the simulated lab and the
recorder in real time over LSL. :func:`simulate_session` writes the same
session folder without any of them running: the presenter's timeline comes from
:func:`avlab.sim.presentation.present_offline` (same markers, files and simulated
participant), the streams from the live lab's own models (a
:class:`~avlab.sim.lab.SimLab` in paradigm mode: EEG with TRF responses to the
envelopes of the stimuli played, gaze on the attended face, talkers, microphone,
camera frame times), fed the presenter's markers in time order, and the recorder's
file from :class:`~avlab.record.writer.SessionWriter`, with the clock offsets a
recorder would have measured.

Times: the recorder's LSL clock starts the file at :data:`T_RECORDER_S`; the
simulated lab starts 3 s earlier (its first samples are not recorded, as in a real
run), the presenter's ``go`` comes 0.5 s after the recorder's start, and the
recording ends 1.5 s after the presenter's ``session_end``. The times are the same
for every run (a seed gives the same file, stamps included); ``log.jsonl`` is put on
this clock too.

Speed and memory: data are generated in blocks of ``block_s`` seconds; the gaze
is generated up to each marker before the participant learns of it (its fixations
react to attention switches as in the live lab). The participant decodes each
stimulus once (audio and envelope, kept for later trials) in a thread ahead of its
trial; this fixed cost (about 1 s per 40-s stimulus) dominates short sessions.
Trials the participant no longer hears are dropped between blocks.
"""

from __future__ import annotations

import json
import math
import shutil
import socket
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from avlab import __version__
from avlab._logging import logger
from avlab.errors import AvlabError, OutputError
from avlab.protocol.models import Protocol
from avlab.protocol.plan import SessionPlan, TrialPlan
from avlab.record.writer import SessionWriter
from avlab.sim._offline_streams import (
    MARKER_STREAM,
    T_RECORDER_S,
    Ids,
    Prefetch,
    Recording,
    SceneVideo,
    lab_streams,
    marker_stream,
)
from avlab.sim.config import ParadigmConfig, SimConfig
from avlab.sim.lab import SimLab
from avlab.sim.presentation import (
    REFRESH_HZ,
    Presentation,
    StimulusFiles,
    present_offline,
)
from avlab.sim.truth import SimTruth, write_truth

__all__ = ["T_RECORDER_S", "simulate_session"]

_LAB_LEAD_S = 3.0  # the simulated lab starts this long before the recorder
_OPEN_LEAD_S = 1.5  # the presenter's window opens this long before the recorder
_GO_S = 0.5  # the presenter's go after the recorder's start
_TAIL_S = 1.5  # presenter close (0.2) + recorded tail (1.0) + drain (0.3)
_PREFIX = "sim-"


# -- the session folder ----------------------------------------------------------------------
def _session_folder(out_dir: Path, participant: str, session: str) -> Path:
    from avlab.record.recorder import _session_name
    from avlab.record.writer import check_output_parent

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output directory {out_dir}: {exc.strerror}.") from exc
    check_output_parent(out_dir)
    base = _session_name(participant, session)
    folder, k = out_dir / base, 1
    while folder.exists():
        k += 1
        folder = out_dir / f"{base}-{k}"
    try:
        folder.mkdir()
    except OSError as exc:
        raise OutputError(f"cannot create session folder {folder}: {exc}.") from exc
    return folder


def _stimuli(
    plan: SessionPlan, trials: list[TrialPlan], protocol: Protocol, folder: Path | None,
    out_dir: Path,
) -> Path:  # fmt: skip
    """Build what the trials play (keeping what the folder has), then verify the checksums."""
    from avlab.protocol import stimulus_requests
    from avlab.stimuli import StimulusSet, build_stimuli
    from avlab.stimuli.manifest import MANIFEST_NAME, StimulusManifest

    folder = (folder or out_dir.absolute().parent / "stimuli" / plan.protocol).absolute()
    needed = {p.stim_id for t in trials for p in t.talkers}
    needed |= {t.noise.stim_id for t in trials if t.noise is not None and t.noise.stim_id}
    have: set[str] = set()
    manifest = folder / MANIFEST_NAME
    if manifest.is_file():
        try:
            have = {s.stim_id for s in StimulusManifest.model_validate_json(
                manifest.read_bytes()).stimuli}  # fmt: skip
        except ValueError:
            have = set()
    if not needed:
        folder.mkdir(parents=True, exist_ok=True)
    elif not needed <= have:
        # the whole protocol's set, as `avlab run` builds it: noise and babble are made
        # from all of its speech, so a subset would give other noise under the same name
        requests = stimulus_requests(protocol)
        logger.info("building %d stimuli in %s", len(requests) - len(have), folder)
        build_stimuli(requests, folder, base_dir=Path(plan.protocol_file).parent, progress=False)
    if not manifest.is_file():
        return folder  # nothing to play (conversation): plain, empty folder
    problems = StimulusSet.load(folder, verify=False).verify()
    if problems:
        raise AvlabError(
            f"stimuli in {folder} do not match their checksums: {problems[0]}",
            f"Rebuild them: avlab stimuli build {plan.protocol} --out {folder} --force.",
        )
    return folder


def _cycle(base: list[TrialPlan], n: int) -> list[TrialPlan]:
    """``n`` trials repeating ``base``, renumbered 1..n; each repetition starts after a break."""
    out = []
    for k in range(n):
        t = base[k % len(base)]
        update: dict[str, object] = {"index": k + 1}
        if k >= len(base) and k % len(base) == 0:
            update["break_before"] = True
        out.append(t.model_copy(update=update))
    return out


def _present(
    plan: SessionPlan,
    base: list[TrialPlan],
    files: StimulusFiles,
    min_duration_s: float | None,
    *,
    seed: int,
    accuracy: float,
) -> tuple[list[TrialPlan], Presentation]:
    """Present the trials, repeated until the recording lasts ``min_duration_s``."""
    t_go = T_RECORDER_S + _GO_S
    trials = list(base)
    while True:
        pres = present_offline(plan, trials, files, t_go=t_go, seed=seed, accuracy=accuracy,
                               t_open=T_RECORDER_S - _OPEN_LEAD_S)  # fmt: skip
        duration = pres.t_end + _TAIL_S - T_RECORDER_S
        if min_duration_s is None or duration >= min_duration_s or not base:
            return trials, pres
        per_trial = max((pres.t_end - t_go) / max(len(trials), 1), 1.0)
        more = max(1, math.ceil((min_duration_s - duration) / per_trial))
        trials = _cycle(base, len(trials) + more)


# -- files -------------------------------------------------------------------------------------
def _jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, separators=(",", ":"), default=str) + "\n")


def _write_json(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _retime_log(path: Path, t_stop: float) -> None:
    """Put the recorder log's times on the simulated clock (the writer stamps them with now)."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not rows:
        return
    wall0 = datetime.fromisoformat(rows[0]["wall"])
    for k, r in enumerate(rows):
        at_end = r.get("event") in ("summary", "close")
        t = (t_stop if at_end else T_RECORDER_S) + 1e-5 * k
        r["time"] = t
        r["wall"] = (wall0 + timedelta(seconds=t - T_RECORDER_S)).isoformat(timespec="milliseconds")
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _sim_config(config: SimConfig | None, *, seed: int, run_id: str, folder: Path,
                stimuli: Path) -> SimConfig:  # fmt: skip
    if config is None:
        config = SimConfig()
        config.audio.mic_channels = 2  # as avlab run --simulate
    return config.model_copy(update={
        "seed": seed, "prefix": config.prefix or _PREFIX, "run_id": run_id, "duration_s": None,
        "truth_path": (folder / "sim" / "sim_truth.json").absolute(),
        "paradigm": ParadigmConfig(marker_stream=MARKER_STREAM, stimuli_dir=stimuli),
    })  # fmt: skip


def _truth(lab: SimLab, recording: Recording, cpu_s: float, wall_s: float) -> SimTruth:
    """Return the ground truth as the live lab writes it when it stops."""
    cfg = lab.config
    eeg = lab.eeg
    lags, trf = (eeg.trf_lags, eeg.trf) if eeg else (np.zeros(0), np.zeros(0))
    gain = eeg.trf_gain if eeg else 0.0
    lab.truth = SimTruth(
        run_id=lab.run_id, seed=cfg.seed, host_offset_s=lab.host_offset_s,
        streams={s.name: s.clock for s in recording.streams
                 if s.clock is not None and not s.name.startswith("avlab-")},
        attention=[], trf_times_s=lags.tolist(), trf_attended=(gain * trf).tolist(),
        trf_unattended=(gain * cfg.eeg.unattended_gain * trf).tolist(),
        eeg_snr_db=cfg.eeg.snr_db if eeg else None,
        extra={"t_start": lab.t_start, "truth_file": str(lab.truth_path),
               "trf_input": "talker amplitude envelope (audio units)",
               "trf_units": "microvolts per envelope unit", "config": cfg.model_dump_json()},
    )  # fmt: skip
    lab._paradigm_truth()  # attention spans from the markers heard (writes the file)
    extra = lab.truth.extra
    for s in recording.streams:
        if s.clock is not None and not s.name.startswith("avlab-"):
            extra[f"n_samples:{s.name}"] = s.stop
    extra["t_stop"] = recording.t_stop
    extra["cpu_s"] = cpu_s
    extra["cpu_percent"] = 100.0 * cpu_s / max(wall_s, 1e-9)
    extra["offline"] = 1
    return lab.truth


def _write_setup(
    folder: Path,
    plan: SessionPlan,
    trials: list[TrialPlan],
    stimuli: Path,
    cfg: SimConfig,
    *,
    accuracy: float,
    seed: int,
) -> None:
    """Write what ``avlab run`` writes before the recording starts."""
    from avlab.present import PresenterConfig

    shutil.copyfile(plan.protocol_file, folder / "protocol.yaml")
    _write_json(folder / "plan.json", plan.model_dump_json(indent=1))
    if (stimuli / "stimuli.json").is_file():
        shutil.copyfile(stimuli / "stimuli.json", folder / "stimuli.json")
    (folder / "sim").mkdir()
    (folder / "sim" / "sim_config.json").write_text(cfg.model_dump_json(indent=1))
    _write_json(folder / "presenter_config.json", PresenterConfig(
        plan_file=folder / "plan.json", stimuli_dir=stimuli, out_dir=folder,
        responder="auto", accuracy=accuracy, seed=seed + 7, handshake=True, rush=False,
        trials=[t.index for t in trials],
    ).model_dump_json(indent=1))  # fmt: skip


def _record(
    folder: Path,
    lab: SimLab,
    pres: Presentation,
    ids: Ids,
    prefetch: Prefetch,
    *,
    participant: str,
    session: str,
    seed: int,
    video: bool,
    block_s: float,
    progress: Callable[[float, float], None] | None,
) -> Recording:
    """Write ``session.h5`` (and the scene video) as the recorder and the devices would."""
    host = socket.gethostname()
    streams = lab_streams(lab, ids, host, lab.truth_path)
    streams.append(marker_stream(ids, host, pres.t_open))
    scene = None
    if video:
        c = lab.config.camera
        scene = SceneVideo(folder, c.width, c.height, c.fps, seed)
        streams.append(scene.stream(ids, host, T_RECORDER_S + 0.05))
    t_stop = pres.t_end + _TAIL_S
    writer = SessionWriter(folder, [s.spec for s in streams], participant=participant,
                           session=session, created_lsl=T_RECORDER_S, exist_ok=True)  # fmt: skip
    status = "incomplete"
    try:
        for s in streams:
            sp = s.spec
            writer.log.write("stream", f"recording {sp.name!r} ({sp.type}, {sp.channel_count} ch, "
                             f"{sp.nominal_srate:g} Hz, {sp.channel_format}, source_id "
                             f"{sp.source_id!r}, clock {sp.clock_method}) [offline simulation]",
                             stream=sp.name)  # fmt: skip
        writer.log.write("start", f"recording to {folder} (simulated offline)")
        rec = Recording(lab, writer, streams, pres.markers, t_stop=t_stop, seed=seed,
                         video=scene, prefetch=prefetch)  # fmt: skip
        rec.run(block_s, progress)
        for k, s in enumerate(streams):
            writer.log.write("summary", f"{writer.n_samples(k)} samples, 0 gaps", stream=s.name)
        status = "complete"
    finally:
        if scene is not None:
            scene.close()
        writer.close(status)
    _retime_log(folder / "log.jsonl", t_stop)
    return rec


def _write_results(
    folder: Path,
    plan: SessionPlan,
    trials: list[TrialPlan],
    rec: Recording,
    stimuli: Path,
    started: datetime,
) -> None:
    """Write ``run.json`` and ``run_result.json`` as a complete run leaves them."""
    from avlab.run.models import RunRecord, RunResult

    marker_sid = next(s.spec.source_id for s in rec.streams if s.name == MARKER_STREAM)
    done = [t.index for t in trials]
    ended = started + timedelta(seconds=rec.t_stop - T_RECORDER_S + 2.0)
    record = RunRecord(
        avlab_version=__version__, protocol=plan.protocol, protocol_file=plan.protocol_file,
        participant=plan.participant, session=plan.session, simulate=True, status="complete",
        started=started.isoformat(timespec="seconds"), ended=ended.isoformat(timespec="seconds"),
        trials_planned=done, trials_done=done, stimuli_dir=str(stimuli), presenter_exit=0,
        presenter={"ready": True, "marker_stream": MARKER_STREAM, "source_id": marker_sid,
                   "refresh_hz": REFRESH_HZ, "measured_hz": REFRESH_HZ, "paced": True,
                   "audio_backend": "sounddevice", "audio_device": "default"},
    )  # fmt: skip
    _write_json(folder / "run.json", record.model_dump_json(indent=1))
    result = RunResult(folder=folder, status="complete", trials_done=len(done),
                       trials_planned=len(done),
                       samples_lost={s.name: 0 for s in rec.streams})  # fmt: skip
    _write_json(folder / "run_result.json", result.model_dump_json(indent=1))


def simulate_session(
    protocol: str | Path,
    out_dir: Path,
    *,
    participant: str = "01",
    session: str = "01",
    stimuli_dir: Path | None = None,
    max_trials: int | None = None,
    min_duration_s: float | None = None,
    config: SimConfig | None = None,
    seed: int = 0,
    accuracy: float = 0.8,
    video: bool = False,
    block_s: float = 10.0,
    progress: Callable[[float, float], None] | None = None,
) -> Path:
    """Write the session folder ``avlab run PROTOCOL --simulate`` would write, offline.

    Parameters
    ----------
    protocol : str | Path
        Protocol name or YAML file.
    out_dir : Path
        Folder (created if missing) in which the session folder (``sub-P_ses-S_<time>``)
        is created.
    participant, session : str
        Labels; the plan is the protocol's for this participant and session (the
        protocol's own randomization seed, as ``avlab run`` without ``--seed``).
    stimuli_dir : Path | None
        Built stimuli of the protocol; default ``out_dir/../stimuli/<protocol>``.
        Stimuli the plan needs are built there when missing; checksums are verified.
    max_trials : int | None
        Run only the first N trials of the plan.
    min_duration_s : float | None
        Repeat the trials (renumbered, a break before each repetition) until the
        recording lasts at least this long, s.
    config : SimConfig | None
        The simulated lab (EEG channels/rate/SNR, gaze, audio on/off, camera ...);
        default as ``avlab run --simulate`` (32 ch at 500 Hz, 2 microphone channels).
        ``seed`` replaces its seed; an empty prefix becomes ``sim-``.
    seed : int
        Seed of everything simulated (the presenter's answers use ``seed + 7``).
    accuracy : float
        Probability that the simulated participant answers right.
    video : bool
        Also write ``camera-scene.mp4`` with its ``avlab-camera-scene`` frame-time
        stream, as a real camera adapter does.
    block_s : float
        Seconds of data generated at a time (memory bound).
    progress : callable | None
        ``progress(done_s, total_s)`` after each block (seconds of recording).

    Returns
    -------
    folder : Path
        The session folder.

    Raises
    ------
    avlab.protocol.ProtocolError
        The protocol is missing or invalid.
    AvlabError
        Stimuli cannot be built or do not match their checksums.
    OutputError
        ``out_dir`` cannot be created or written.
    """
    from avlab.present.stimuli import load_stimuli
    from avlab.protocol import load_protocol, plan_session

    if block_s <= 0:
        raise ValueError(f"block_s must be > 0, got {block_s}")
    cpu0, wall0 = time.process_time(), time.perf_counter()
    out_dir = Path(out_dir)
    proto = load_protocol(protocol)
    plan = plan_session(proto, participant, session)
    base = list(plan.trials[:max_trials] if max_trials is not None else plan.trials)
    stimuli = _stimuli(plan, base, proto, stimuli_dir, out_dir)
    folder = _session_folder(out_dir, participant, session)
    started = datetime.now().astimezone()
    ids = Ids(seed, participant, session)
    run_id = config.run_id if config is not None and config.run_id else ids.hex(12)
    cfg = _sim_config(config, seed=seed, run_id=run_id, folder=folder, stimuli=stimuli)
    lab = SimLab(cfg)
    lab.t_start = T_RECORDER_S - _LAB_LEAD_S
    prefetch = Prefetch(lab.paradigm, base)  # decoding overlaps everything below
    prefetch.start()
    try:
        files = StimulusFiles(load_stimuli(stimuli))
        trials, pres = _present(plan, base, files, min_duration_s, seed=seed + 7,
                                accuracy=accuracy)  # fmt: skip
        if len(trials) > len(base):  # repeated: the plan lists every trial run
            plan = plan.model_copy(update={"trials": trials})
        _write_setup(folder, plan, trials, stimuli, cfg, accuracy=accuracy, seed=seed)
        rec = _record(folder, lab, pres, ids, prefetch, participant=participant,
                      session=session, seed=seed, video=video, block_s=block_s,
                      progress=progress)  # fmt: skip
    finally:
        prefetch.stop()
    _jsonl(folder / "presenter.jsonl", pres.events)
    _jsonl(folder / "trials.jsonl", pres.trials)
    _jsonl(folder / "stimulus_log.jsonl", pres.stimulus_log)
    truth = _truth(lab, rec, time.process_time() - cpu0, time.perf_counter() - wall0)
    write_truth(truth, lab.truth_path)
    write_truth(truth, folder / "sim_truth.json")
    _write_results(folder, plan, trials, rec, stimuli, started)
    wall = time.perf_counter() - wall0
    duration = rec.t_stop - T_RECORDER_S
    logger.info("simulated %s: %.0f s of recording in %.1f s (%.0fx real time)", folder,
                duration, wall, duration / max(wall, 1e-9))  # fmt: skip
    return folder
