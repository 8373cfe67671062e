"""``avlab run`` and ``avlab check``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from avlab.cli import app

if TYPE_CHECKING:
    from avlab.record.recorder import StreamStatus
    from avlab.run.check import CheckReport

__all__ = ["check_command", "run_command"]

_STYLE = {"pass": "green", "fail": "bold red", "warn": "yellow", "skip": "dim"}


def _check_table(report: CheckReport) -> Table:
    t = Table(title=f"pre-flight: {report.protocol}", title_justify="left")
    for col in ("check", "expected", "found", "result", "fix"):
        t.add_column(col, overflow="fold")
    for r in report.rows:
        s = _STYLE[r.status]
        t.add_row(
            r.item,
            r.expected,
            r.found,
            f"[{s}]{r.status}[/{s}]",
            r.fix if r.status != "pass" else "",
        )
    return t


@app.command("check")
def check_command(
    protocol: Annotated[str, typer.Argument(help="Protocol name or YAML file.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Where sessions will be written.")] = Path(
        "."
    ),
    simulate: Annotated[
        bool, typer.Option("--simulate", help="Check against the simulated lab.")
    ] = False,
    audio_device: Annotated[
        str | None, typer.Option("--audio-device", help="Audio output (part of its name).")
    ] = None,
    wait: Annotated[float, typer.Option("--wait", help="Seconds of LSL discovery.")] = 2.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Pre-flight: every stream the protocol needs, disk space, audio, display, Neon."""
    from avlab.run.check import preflight_check

    report = preflight_check(
        protocol, out_dir, simulate=simulate, audio_device=audio_device, wait_s=wait
    )
    if as_json:
        typer.echo(report.model_dump_json(indent=1))
    else:
        Console().print(_check_table(report))
    if not report.ok:
        raise typer.Exit(10)


def _status_table(rows: list[StreamStatus], elapsed: float, trials: str) -> Table:
    from avlab.cli.record import _table

    t = _table(rows, elapsed)
    t.title = f"{trials}   recording {elapsed:6.1f} s"
    return t


@app.command("run")
def run_command(
    protocol: Annotated[
        str, typer.Argument(help="Protocol name (e.g. competing-talkers) or YAML file.")
    ],
    out_dir: Annotated[
        Path, typer.Argument(help="Existing folder; the session folder goes in it.")
    ] = Path("sessions"),
    participant: Annotated[
        str, typer.Option("--participant", "-p", help="Participant label (e.g. 07).")
    ] = "",
    session: Annotated[str, typer.Option("--session", "-s", help="Session label.")] = "01",
    simulate: Annotated[
        bool, typer.Option("--simulate", help="Run against the simulated lab.")
    ] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an incomplete run.")] = False,
    max_trials: Annotated[
        int | None, typer.Option("--trials", min=1, help="Run only the first N (remaining) trials.")
    ] = None,
    stimuli: Annotated[
        Path | None,
        typer.Option(
            "--stimuli", help="Built stimuli (default stimuli/<protocol>, built if missing)."
        ),
    ] = None,
    headless: Annotated[
        bool | None,
        typer.Option(
            "--headless/--window",
            help="Private virtual screen and null sound card "
            "(default: with --simulate and no DISPLAY).",
        ),
    ] = None,
    fullscreen: Annotated[bool, typer.Option("--fullscreen", help="Full-screen window.")] = False,
    audio_backend: Annotated[
        str, typer.Option("--audio-backend", help="auto, ptb or sounddevice.")
    ] = "auto",
    audio_device: Annotated[
        str | None, typer.Option("--audio-device", help="Audio output (part of its name).")
    ] = None,
    accuracy: Annotated[
        float,
        typer.Option("--accuracy", min=0, max=1, help="Simulated participant's answer accuracy."),
    ] = 0.8,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Randomization seed (default: the protocol's).")
    ] = None,
    host_offset: Annotated[
        int, typer.Option("--host-offset", min=0, help="Simulated lab's clock N s ahead (root).")
    ] = 0,
    skip_check: Annotated[
        bool, typer.Option("--skip-check", help="Do not stop on a failed pre-flight check.")
    ] = False,
    camera: Annotated[
        list[str] | None,
        typer.Option("--camera", help="Protocol camera NAME=SOURCE (OpenCV index/URL)."),
    ] = None,
    microphone: Annotated[
        list[str] | None,
        typer.Option("--microphone", help="Protocol microphone NAME=DEVICE (sounddevice)."),
    ] = None,
    neon: Annotated[
        str | None, typer.Option("--neon", help="Neon Companion host[:port] (default: discover).")
    ] = None,
    neon_relay: Annotated[
        bool, typer.Option("--neon-relay", help="Relay Neon gaze into LSL (app's LSL off).")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No live status.")] = False,
) -> None:
    """Run a participant session: pre-flight, record all streams, present, finalize."""
    if not participant:
        raise typer.BadParameter(
            "give the participant label with --participant", param_hint="--participant"
        )
    from avlab.run import RunOptions, run_session
    from avlab.run.devices import parse_assignments

    opts = RunOptions(
        protocol=protocol, participant=participant, session=session, out_dir=out_dir,
        simulate=simulate, resume=resume, max_trials=max_trials, stimuli_dir=stimuli,
        headless=headless, fullscreen=fullscreen, audio_backend=audio_backend,  # type: ignore[arg-type]
        audio_device=audio_device, accuracy=accuracy, seed=seed, host_offset_s=host_offset,
        skip_check=skip_check, cameras=parse_assignments(camera or [], "--camera"),
        microphones=parse_assignments(microphone or [], "--microphone"),
        neon_address=neon, neon_relay=neon_relay,
    )  # fmt: skip
    console = Console(stderr=True)
    live = (
        Live(console=console, refresh_per_second=2) if not quiet and console.is_terminal else None
    )
    t0 = time.monotonic()
    state = {"last": 0.0}

    def on_check(report: CheckReport) -> None:
        console.print(_check_table(report))

    def on_status(rows: list[StreamStatus], n_done: int, n_planned: int) -> None:
        elapsed = time.monotonic() - t0
        trials = f"trials {n_done}/{n_planned}"
        if live is not None:
            live.update(_status_table(rows, elapsed, trials))
        elif not quiet and elapsed - state["last"] >= 10.0:
            state["last"] = elapsed
            parts = ", ".join(
                f"{r.name}: {r.samples}" + (" STALLED" if r.stalled else "") for r in rows
            )
            console.print(f"[{elapsed:.0f} s] {trials} {parts}", highlight=False, markup=False)

    if live is not None:
        live.start()
    try:
        result = run_session(opts, status_callback=on_status, check_callback=on_check)
    finally:
        if live is not None:
            live.stop()
    lost = sum(result.samples_lost.values())
    console.print(
        f"[green]session complete[/green]: {result.trials_done}/{result.trials_planned} trials, "
        f"{lost} samples lost"
    )
    typer.echo(str(result.folder))
