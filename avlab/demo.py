"""``avlab demo``: the whole pipeline on the built-in simulated lab.

Part 1, the recorder: start the simulated lab (in its own time namespace when
the machine allows it, so that its clock is a "remote host's"), record 60 s of
every stream, inspect the session and print the synchronization error against
the simulator's ground truth.

Part 2, a participant session: validate the ``competing-talkers`` protocol,
build its stimuli (speech synthesis, talker videos, loudness), and run two of
its trials with ``avlab run --simulate``: the PsychoPy presenter in a private
virtual screen with a null sound card, the simulated participant following
its markers, every stream recorded; then inspect that session.

Part 3, the data steward: convert the participant session into a BIDS dataset
(``avlab bids convert``), validate it with the official validator and avlab's
cross-modal checks (``avlab bids validate``), and report what it holds.

Part 4, the researcher: simulate two more participants offline, add them to the
dataset, and decode the attended talker from EEG, gaze and both (``avlab decode``).

Part 5, the hearing aid: separate participant 01's microphone recording into the
two talkers with the shipped network and keep the attended one, steered by EEG,
by gaze and by the ground truth (``avlab separate run``).

Every step runs the same ``avlab`` command a user would type, and prints it first.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from avlab._format import TRUTH_FILE
from avlab._logging import logger
from avlab.errors import AvlabError, OutputError
from avlab.lslconfig import use_loopback

__all__ = ["DemoResult", "run_demo", "time_namespaces_available"]

console = Console(stderr=True)


@dataclass(frozen=True)
class DemoResult:
    """The demo's two session folders.

    Attributes
    ----------
    recording : Path
        Part 1: the plain recording of the simulated lab.
    participant_session : Path | None
        Part 2: the simulated participant session (None with ``trials=0``).
    bids_root : Path | None
        Part 3: the BIDS dataset (None with ``trials=0``).
    decode_out : Path | None
        Part 4: the attention-decoding results (None with ``trials=0`` or
        ``decode_trials=0``).
    separate_out : Path | None
        Part 5: the participant's microphone separated and steered (None with
        ``trials=0``).
    """

    recording: Path
    participant_session: Path | None
    bids_root: Path | None = None
    decode_out: Path | None = None
    separate_out: Path | None = None


def time_namespaces_available() -> bool:
    """Tell whether this process may create a time namespace (``unshare --time``).

    Returns
    -------
    ok : bool
        True when ``unshare --time --monotonic 1 --fork true`` succeeds.
    """
    exe = shutil.which("unshare")
    if exe is None:
        return False
    res = subprocess.run(
        [exe, "--time", "--monotonic", "1", "--fork", "true"], capture_output=True, check=False
    )
    return res.returncode == 0


def _only_child(folder: Path) -> Path:
    children = [p for p in folder.iterdir() if p.is_dir()]
    if len(children) != 1:
        raise AvlabError(f"expected one session folder in {folder}, found {len(children)}.")
    return children[0]


def _avlab(*args: str) -> list[str]:
    return [sys.executable, "-m", "avlab", *args]


def _run_steps(steps: list[tuple[str, list[str]]]) -> None:
    for title, cmd in steps:
        _step(title, cmd)
        res = subprocess.run(cmd, check=False)
        if res.returncode != 0:
            raise AvlabError(
                f"demo step '{title}' failed (exit code {res.returncode}).",
                "Read the error above.",
            )


def _step(title: str, cmd: list[str]) -> None:
    shown = " ".join(["avlab", *cmd[3:]])
    console.rule(f"[bold]{title}")
    console.print(f"$ {shown}", style="cyan", highlight=False)


def run_demo(
    out: Path,
    *,
    duration_s: float = 60.0,
    host_offset_s: float = 37.0,
    seed: int = 1,
    eeg_channels: int = 64,
    eeg_rate: float = 1000.0,
    trials: int = 2,
    decode_trials: int = 8,
) -> DemoResult:
    """Run the demo pipeline and return the session folder.

    Parameters
    ----------
    out : Path
        Folder for everything the demo writes (replaced if it holds an earlier demo).
    duration_s : float
        Length of the recording, in seconds.
    host_offset_s : float
        Clock offset of the simulated "remote host", in seconds (0: same host).
    seed : int
        Seed of the simulated lab.
    eeg_channels, eeg_rate : int, float
        Size of the simulated EEG (channels, Hz).
    trials : int
        Trials of the participant session (part 2); 0 leaves parts 2-5 out.
    decode_trials : int
        Trials of each of the two participants simulated offline for part 4
        (attention decoding); 0 leaves part 4 out.

    Returns
    -------
    result : DemoResult
        Both session folders.
    """
    use_loopback()
    out = Path(out)
    try:
        for sub in ("sessions", "sim"):
            shutil.rmtree(out / sub, ignore_errors=True)
            (out / sub).mkdir(parents=True)
    except OSError as exc:
        raise OutputError(
            f"cannot write the demo folder {out}: {exc.strerror}.", "Choose a writable folder."
        ) from exc
    if host_offset_s and not time_namespaces_available():
        logger.warning(
            "time namespaces are not available here (unshare --time needs root); the "
            "simulated lab runs on this host's clock, without the %.0f s host offset.",
            host_offset_s,
        )
        host_offset_s = 0.0
    truth = (out / "sim" / TRUTH_FILE).resolve()
    sim_cmd = _avlab(
        "sim", "--seed", str(seed), "--duration", str(duration_s + 30),
        "--eeg-channels", str(eeg_channels), "--eeg-rate", str(eeg_rate),
        "--host-offset", str(int(host_offset_s)), "--truth", str(truth),
        "--trial-s", "15",
    )  # fmt: skip
    _step("1. start the simulated lab (background)", sim_cmd)
    sim_log = open(out / "sim" / "sim.log", "w")  # noqa: SIM115 - closed below
    sim = subprocess.Popen(sim_cmd, stdout=sim_log, stderr=subprocess.STDOUT)
    sessions = out / "sessions"
    try:
        deadline = time.monotonic() + 30
        while not truth.exists():
            if sim.poll() is not None or time.monotonic() > deadline:
                raise AvlabError(
                    f"the simulated lab did not start (see {out / 'sim' / 'sim.log'}).",
                    "Run `avlab sim --duration 10` to see its error.",
                )
            time.sleep(0.2)
        from avlab.sim.truth import load_truth

        names = sorted(load_truth(truth).streams)
        rec_cmd = _avlab(
            "record", str(sessions), "--duration", str(duration_s), "--wait", "15",
            "--participant", "demo", "--session", "01",
        )  # fmt: skip
        for name in names:
            rec_cmd += ["--stream", name]
        _step(f"2. record {duration_s:.0f} s of every stream", rec_cmd)
        subprocess.run(rec_cmd, check=True)
    except subprocess.CalledProcessError as exc:
        raise AvlabError(
            f"the recording failed (exit code {exc.returncode}); see {sessions}.",
            "Read the error above.",
        ) from exc
    finally:
        sim.terminate()
        sim.wait(timeout=20)
        sim_log.close()
    session = _only_child(sessions)
    ins_cmd = _avlab("inspect", str(session))
    _step("3. inspect the session (sync error against the simulator's truth)", ins_cmd)
    subprocess.run(ins_cmd, check=True)
    run_session = (
        _participant_session(out, host_offset_s=host_offset_s, trials=trials) if trials else None
    )
    bids_root = _bids(out, run_session) if run_session is not None else None
    decode_out = (
        _decode(out, bids_root, decode_trials) if bids_root is not None and decode_trials else None
    )
    separate_out = _separate(out, bids_root) if bids_root is not None else None
    console.rule("[bold green]demo done")
    console.print(
        f"recording: {session}\nparticipant session: {run_session}\nBIDS dataset: {bids_root}"
        f"\nattention decoding: {decode_out}\nsteered separation: {separate_out}",
        highlight=False,
    )
    return DemoResult(recording=session, participant_session=run_session, bids_root=bids_root,
                      decode_out=decode_out, separate_out=separate_out)  # fmt: skip


def _bids(out: Path, session: Path) -> Path:
    root = out / "bids"
    shutil.rmtree(root, ignore_errors=True)
    steps = [
        ("9. convert the participant session to BIDS",
         _avlab("bids", "convert", str(session), "--bids-root", str(root),
                "--screen-size", "0.531,0.299", "--screen-distance", "0.65")),
        ("10. validate the dataset (official BIDS validator + avlab's checks)",
         _avlab("bids", "validate", str(root))),
        ("11. report what the dataset holds", _avlab("bids", "report", str(root))),
    ]  # fmt: skip
    _run_steps(steps)
    return root


def _decode(out: Path, bids_root: Path, n_trials: int) -> Path:
    protocol = "competing-talkers"
    sessions = out / "sessions-offline"
    shutil.rmtree(sessions, ignore_errors=True)
    dec = out / "decode"
    _run_steps([
        (f"12. simulate participant 0{k} offline ({n_trials} trials; EEG at -40 dB SNR, "
         "gaze on the attended face for 80 % of fixations)",
         _avlab("simulate", protocol, str(sessions), "--participant", f"0{k}", "--seed", str(k),
                "--trials", str(n_trials), "--snr-db", "-40", "--no-audio",
                "--look-attended", "0.8", "--stimuli", str(out / "stimuli" / protocol),
                "--quiet"))
        for k in (2, 3)
    ])  # fmt: skip
    folders = sorted(str(f) for f in sessions.iterdir() if f.is_dir())
    _run_steps([
        ("13. convert them into the same BIDS dataset",
         _avlab("bids", "convert", *folders, "--bids-root", str(bids_root),
                "--screen-size", "0.531,0.299", "--screen-distance", "0.65")),
        ("14. decode the attended talker from EEG (linear), gaze, and both (fusion)",
         _avlab("decode", str(bids_root), "--method", "linear,gaze,fusion", "--out", str(dec),
                "--null-shuffles", "5", "--quiet")),
    ])  # fmt: skip
    return dec


def _separate(out: Path, bids_root: Path) -> Path:
    sep = out / "separate"
    shutil.rmtree(sep, ignore_errors=True)
    _run_steps([
        ("15. separate the participant's microphone into the two talkers and keep the "
         "attended one, steered by EEG, gaze and the ground truth",
         _avlab("separate", "run", str(bids_root), "--subjects", "01", "--out", str(sep),
                "--steer", "eeg,gaze,truth", "--all-audio", "--quiet")),
    ])  # fmt: skip
    return sep


def _participant_session(out: Path, *, host_offset_s: float, trials: int) -> Path:
    protocol = "competing-talkers"
    stimuli = out / "stimuli" / protocol
    runs = out / "runs"
    shutil.rmtree(runs, ignore_errors=True)
    runs.mkdir(parents=True)
    steps = [
        ("4. validate the protocol", _avlab("protocol", "validate", protocol)),
        ("5. show the trial list of participant 01",
         _avlab("protocol", "show", protocol, "--participant", "01", "--session", "01")),
        ("6. build the stimuli (speech, talker videos, loudness)",
         _avlab("stimuli", "build", protocol, "--out", str(stimuli))),
        (f"7. run {trials} trials of participant 01 against the simulated lab (headless)",
         _avlab("run", protocol, str(runs), "--participant", "01", "--session", "01",
                "--simulate", "--headless", "--trials", str(trials), "--stimuli", str(stimuli),
                "--host-offset", str(int(host_offset_s)), "--quiet")),
    ]  # fmt: skip
    _run_steps(steps)
    session = _only_child(runs)
    ins_cmd = _avlab("inspect", str(session))
    _step("8. inspect the participant session", ins_cmd)
    subprocess.run(ins_cmd, check=True)
    return session
