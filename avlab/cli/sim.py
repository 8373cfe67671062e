"""``avlab sim``: run the simulated lab."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from avlab.cli import app

__all__ = ["sim"]


@app.command("sim")
def sim(
    seed: int = typer.Option(0, "--seed", min=0, help="Random seed: same seed, same data."),
    duration: float | None = typer.Option(
        None, "--duration", min=0.1, help="Seconds to run (default: until Ctrl-C/SIGTERM)."
    ),
    eeg_channels: int | None = typer.Option(None, "--eeg-channels", min=8, max=256),
    eeg_rate: float | None = typer.Option(None, "--eeg-rate", min=250, max=2048, help="Hz."),
    snr_db: float | None = typer.Option(None, "--snr-db", help="TRF response vs background, dB."),
    host_offset: int | None = typer.Option(
        None, "--host-offset", min=0, help="Run N s ahead in a time namespace (root)."
    ),
    jitter_ms: float | None = typer.Option(
        None, "--jitter-ms", min=0, help="EEG arrival jitter SD."
    ),
    rate_ppm: float | None = typer.Option(None, "--rate-ppm", help="EEG true rate vs nominal."),
    gaze_drift_ppm: float | None = typer.Option(None, "--gaze-drift-ppm"),
    trials: int | None = typer.Option(None, "--trials", min=0, help="Number of trials."),
    trial_s: float | None = typer.Option(None, "--trial-s", min=1, help="Trial length, s."),
    prefix: str | None = typer.Option(None, "--prefix", help="Prefix of every stream name."),
    truth: Path | None = typer.Option(  # noqa: B008
        None, "--truth", help="Where to write sim_truth.json."
    ),
    no_audio: bool = typer.Option(False, "--no-audio", help="Leave out the audio streams."),
    config: Path | None = typer.Option(  # noqa: B008
        None, "--config", exists=True, dir_okay=False, help="SimConfig as YAML or JSON."
    ),
) -> None:
    """Publish a simulated lab (EEG, gaze, markers, audio, camera) on LSL, with ground truth."""
    from avlab.sim.config import SimConfig, load_sim_config
    from avlab.sim.run import INSIDE_NS_ENV, run_sim

    cfg = load_sim_config(config) if config is not None else SimConfig()
    data = cfg.model_dump()
    top = {"seed": seed if seed or config is None else None, "duration_s": duration,
           "prefix": prefix, "truth_path": truth, "host_offset_s": host_offset}  # fmt: skip
    data |= {k: v for k, v in top.items() if v is not None}
    eeg = {"n_channels": eeg_channels, "srate": eeg_rate, "snr_db": snr_db, "rate_ppm": rate_ppm,
           "jitter_sd_s": None if jitter_ms is None else jitter_ms / 1000.0}  # fmt: skip
    data["eeg"] |= {k: v for k, v in eeg.items() if v is not None}
    if gaze_drift_ppm is not None:
        data["gaze"]["drift_ppm"] = gaze_drift_ppm
    if no_audio:
        data["audio"]["enabled"] = False
    tr = {"n_trials": trials, "trial_s": trial_s}
    data["trials"] |= {k: v for k, v in tr.items() if v is not None}
    if os.environ.get(INSIDE_NS_ENV) is not None:
        data["host_offset_s"] = float(os.environ[INSIDE_NS_ENV])
    final = run_sim(SimConfig.model_validate(data))
    typer.echo(str(final.extra.get("truth_file", "")))  # the result: where the truth is
