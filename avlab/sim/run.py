"""Run the simulated lab until its duration, Ctrl-C or SIGTERM; optionally on "another host".

``host_offset_s = N > 0`` re-executes the simulator under
``unshare --time --monotonic N --fork`` (root needed), so that its LSL clock is
``N`` s ahead of the recorder's and LSL ``time_correction`` reads about ``-N``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from avlab._logging import logger
from avlab.errors import AvlabError
from avlab.sim.config import SimConfig
from avlab.sim.lab import SimLab
from avlab.sim.truth import SimTruth, load_truth

__all__ = ["INSIDE_NS_ENV", "run_sim", "run_sim_in_namespace"]

#: Set (to the offset, seconds) in the environment of a simulator already in its namespace.
INSIDE_NS_ENV = "AVLAB_SIM_TIME_NS_OFFSET"


def run_sim(config: SimConfig) -> SimTruth:
    """Run the simulated lab in this process until done, Ctrl-C or SIGTERM.

    With ``config.host_offset_s > 0`` and not yet inside a time namespace, the
    simulator is re-executed in one (:func:`run_sim_in_namespace`).

    Parameters
    ----------
    config : SimConfig
        What to simulate.

    Returns
    -------
    truth : SimTruth
        The final ground truth (also in the truth file).
    """
    if config.host_offset_s > 0 and os.environ.get(INSIDE_NS_ENV) is None:
        return run_sim_in_namespace(config)
    lab = SimLab(config)
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda *_: lab.stopping.set())
    try:
        lab.start()
        logger.info("simulating %s (run %s)", ", ".join(lab.stream_names), lab.run_id)
        while not lab.wait(0.2) and not lab.stopping.is_set():
            pass
    except KeyboardInterrupt:
        logger.info("interrupted: stopping the simulator")
    finally:
        truth = lab.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return truth


def namespace_command(config: SimConfig, config_file: Path) -> list[str]:
    """Command line that runs the simulator in its own time namespace.

    Parameters
    ----------
    config : SimConfig
        Must have a whole-second ``host_offset_s > 0``.
    config_file : Path
        Where the config is written for the inner process.

    Returns
    -------
    argv : list of str
    """
    unshare = shutil.which("unshare")
    if unshare is None:
        raise AvlabError(
            "`unshare` (util-linux) is not installed; cannot simulate another host.",
            "Install util-linux, or run with --host-offset 0.",
        )
    config_file.write_text(config.model_dump_json())
    return [
        unshare, "--time", "--monotonic", str(int(config.host_offset_s)), "--fork",
        "--kill-child=SIGTERM", "--", sys.executable, "-m", "avlab.sim", str(config_file),
    ]  # fmt: skip


def run_sim_in_namespace(config: SimConfig) -> SimTruth:
    """Run the simulator in a child process whose monotonic clock is ``host_offset_s`` ahead.

    Parameters
    ----------
    config : SimConfig
        ``host_offset_s`` must be a whole number > 0; root (or CAP_SYS_ADMIN) needed.

    Returns
    -------
    truth : SimTruth
        Read back from the truth file the child wrote.
    """
    if config.run_id is None:
        import uuid

        config = config.model_copy(update={"run_id": uuid.uuid4().hex[:12]})
    if config.truth_path is None:
        path = Path(tempfile.gettempdir()) / f"avlab-sim-{config.run_id}" / "sim_truth.json"
        config = config.model_copy(update={"truth_path": path.absolute()})
    config.truth_path.parent.mkdir(parents=True, exist_ok=True)
    cfg_file = config.truth_path.with_name("sim_config.json")
    argv = namespace_command(config, cfg_file)
    env = dict(os.environ, **{INSIDE_NS_ENV: str(int(config.host_offset_s))})
    logger.info("running the simulator %d s ahead: %s", int(config.host_offset_s), " ".join(argv))
    if config.truth_path.exists():
        config.truth_path.unlink()
    # unshare --fork ignores SIGTERM/SIGINT while it waits for its child, so the
    # child runs in its own process group and stop signals go to the whole group.
    proc = subprocess.Popen(argv, env=env, process_group=0)

    def _forward(*_: object) -> None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _forward)
    try:
        proc.wait()
    except KeyboardInterrupt:
        _forward()
        proc.wait()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if not config.truth_path.exists():
        raise AvlabError(
            f"the simulator did not start in a time namespace {int(config.host_offset_s)} s "
            f"ahead (exit status {proc.returncode}; see the message above).",
            "Time namespaces need root (or CAP_SYS_ADMIN) and Linux >= 5.6: "
            "run as root, or use --host-offset 0.",
        )
    return load_truth(config.truth_path)
