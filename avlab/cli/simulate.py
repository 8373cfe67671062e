"""``avlab simulate``: write a simulated session folder offline (faster than real time)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from avlab.cli import app

__all__ = ["simulate_command"]


@app.command("simulate")
def simulate_command(
    protocol: Annotated[
        str, typer.Argument(help="Protocol name (e.g. competing-talkers) or YAML file.")
    ],
    out_dir: Annotated[
        Path, typer.Argument(help="Folder for the session folder (created if missing).")
    ],
    participant: Annotated[
        str, typer.Option("--participant", "-p", help="Participant label (e.g. 07).")
    ] = "01",
    session: Annotated[str, typer.Option("--session", "-s", help="Session label.")] = "01",
    trials: Annotated[
        int | None, typer.Option("--trials", min=1, help="Only the first N trials of the plan.")
    ] = None,
    min_duration: Annotated[
        float | None,
        typer.Option("--min-duration", min=1, help="Repeat the trials until this long, s."),
    ] = None,
    snr_db: Annotated[
        float | None, typer.Option("--snr-db", help="EEG TRF response vs background, dB.")
    ] = None,
    look_attended: Annotated[
        float,
        typer.Option(
            "--look-attended",
            min=0.0,
            max=1.0,
            help="Share of trial time on the attended face (the rest: glances at the other one).",
        ),
    ] = 1.0,
    eeg_channels: Annotated[int, typer.Option("--eeg-channels", min=8, max=256)] = 32,
    eeg_rate: Annotated[float, typer.Option("--eeg-rate", min=250, max=2048, help="Hz.")] = 500.0,
    no_audio: Annotated[
        bool, typer.Option("--no-audio", help="Leave out the talker and microphone streams.")
    ] = False,
    video: Annotated[
        bool, typer.Option("--video", help="Also write a scene-camera video (camera-scene.mp4).")
    ] = False,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Same seed, same data.")] = 0,
    stimuli: Annotated[
        Path | None,
        typer.Option("--stimuli", help="Built stimuli (default OUT/../stimuli/<protocol>)."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Write the session folder `avlab run PROTOCOL --simulate` would, without waiting for it."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from avlab.sim.config import SimConfig
    from avlab.sim.offline import simulate_session

    cfg = SimConfig()
    cfg.eeg.n_channels = eeg_channels
    cfg.eeg.srate = eeg_rate
    if snr_db is not None:
        cfg.eeg.snr_db = snr_db
    cfg.gaze.look_attended = look_attended
    cfg.audio.enabled = not no_audio
    cfg.audio.mic_channels = 2  # as avlab run --simulate
    console = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, disable=quiet, transient=True) as bar:
        task = bar.add_task("preparing (plan, stimuli)", total=None)

        def on_progress(done_s: float, total_s: float) -> None:
            bar.update(task, completed=done_s, total=total_s,
                       description=f"simulating {done_s:.0f}/{total_s:.0f} s")  # fmt: skip

        folder = simulate_session(
            protocol, out_dir, participant=participant, session=session, stimuli_dir=stimuli,
            max_trials=trials, min_duration_s=min_duration, config=cfg, seed=seed,
            video=video, progress=on_progress,
        )  # fmt: skip
    typer.echo(str(folder))
