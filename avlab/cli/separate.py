"""``avlab separate``: separate the talkers of a recording and keep the attended one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from avlab.cli import app

__all__ = ["separate_app"]

separate_app = typer.Typer(
    help="Separate talkers in microphone audio and steer to the attended one (EEG, gaze, "
    "truth); score separations; train the network.",
    no_args_is_help=True,
)
app.add_typer(separate_app, name="separate")

_MODE_HELP = "Network: causal (hearing-aid latency) or noncausal (offline, better)."


def _list(text: str | None) -> list[str] | None:
    return [x.strip() for x in text.split(",") if x.strip()] if text else None


def _floats(text: str, what: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise typer.BadParameter(f"{what} must be numbers separated by commas") from None
    if not values or min(values) <= 0:
        raise typer.BadParameter(f"{what} needs positive numbers, e.g. 1,2,5,10")
    return values


def _size(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    v = _floats(text, "--screen-size")
    if len(v) != 2:
        raise typer.BadParameter("--screen-size needs width,height in metres, e.g. 0.531,0.299")
    return (v[0], v[1])


def _progress(quiet: bool):  # type: ignore[no-untyped-def]
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=Console(stderr=True), disable=quiet,
                    transient=True)  # fmt: skip


@separate_app.command("run")
def run_command(
    source: Annotated[Path, typer.Argument(help="WAV/FLAC file, BIDS dataset or session folder.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder.")],
    steer: Annotated[
        str | None,
        typer.Option(
            "--steer",
            help="eeg, gaze, truth (several with commas; datasets only; "
            "default all three for a dataset, none for an audio file).",
        ),
    ] = None,
    mode: Annotated[str, typer.Option("--mode", help=_MODE_HELP)] = "noncausal",
    windows: Annotated[str, typer.Option("--windows", help="Decision windows, s.")] = "1,2,5,10",
    audio_window: Annotated[
        float,
        typer.Option("--audio-window", min=0.1, help="Steering window of the written audio, s."),
    ] = 5.0,
    mic_label: Annotated[
        str | None,
        typer.Option(
            "--mic-label",
            help="Label of the microphone recording in beh/ "
            "(recording-<label>; default: microphone, or the only one).",
        ),
    ] = None,
    screen_size: Annotated[
        str | None, typer.Option("--screen-size", help="Session folders: screen W,H in m.")
    ] = None,
    screen_distance: Annotated[
        float | None, typer.Option("--screen-distance", help="Session folders: eye-screen m.")
    ] = None,
    subjects: Annotated[str | None, typer.Option("--subjects", help="e.g. 01,02.")] = None,
    task: Annotated[str | None, typer.Option("--task", help="Task label.")] = None,
    all_audio: Annotated[
        bool, typer.Option("--all-audio", help="Also write the mixture and both talkers.")
    ] = False,
    no_audio: Annotated[bool, typer.Option("--no-audio", help="Write no audio.")] = False,
    no_pesq: Annotated[bool, typer.Option("--no-pesq", help="Skip PESQ (faster).")] = False,
    score_seconds: Annotated[
        float,
        typer.Option(
            "--score-seconds",
            min=0,
            help="STOI/ESTOI/PESQ/SRMR on this much of the "
            "middle of each trial, s (0: all; SI-SDR is always on the whole trial).",
        ),
    ] = 10.0,
    azimuth: Annotated[
        float | None,
        typer.Option(
            "--azimuth",
            help="4-channel hearing-aid array file: also write the MVDR "
            "beamformer steered to this direction, degrees (positive left).",
        ),
    ] = None,
    stream_ms: Annotated[
        float | None,
        typer.Option(
            "--stream-ms",
            help="Audio file, --mode causal: separate it block by block as a hearing aid "
            "would, in blocks of this many ms (whole hops: 2 ms for the shipped network), "
            "and time every block.",
        ),
    ] = None,
    model_dir: Annotated[
        Path | None, typer.Option("--model-dir", help="Weights from 'avlab separate train'.")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Reuse a non-empty --out.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Separate the talkers and write the steered (attended) talker with a report."""
    from rich.console import Console

    from avlab.separate.pipeline import run_separation
    from avlab.separate.report import print_result
    from avlab.separate.session import METHODS, SteerOptions

    methods = _list(steer)
    bad = [m for m in methods or [] if m not in METHODS]
    if bad:
        raise typer.BadParameter(f"unknown --steer {', '.join(bad)}; choose from eeg, gaze, truth")
    opts = SteerOptions(windows=_floats(windows, "--windows"), audio_window_s=audio_window,
                        subjects=_list(subjects), task=task, write_audio=not no_audio,
                        all_audio=all_audio, mic_label=mic_label, pesq=not no_pesq,
                        score_excerpt_s=score_seconds)  # fmt: skip
    with _progress(quiet) as bar:
        tasks: dict[str, int] = {}

        def on_progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        outcome = run_separation(source, out, mode=mode, steer=methods, options=opts,
                                 model_dir=model_dir, azimuth_deg=azimuth, stream_ms=stream_ms,
                                 overwrite=overwrite,
                                 screen_size_m=_size(screen_size),
                                 screen_distance_m=screen_distance,
                                 progress=on_progress)  # fmt: skip
    if outcome.result is not None:
        print_result(outcome.result, Console())
        typer.echo(f"report: {outcome.report_html}")
    else:
        for f in outcome.files:
            typer.echo(f"wrote {f}")
        st = outcome.stream
        if st is not None:
            typer.echo(
                f"streamed in {st.block_ms:g}-ms blocks ({st.engine}): latency "
                f"{st.latency_ms:g} ms, real-time factor {st.rtf:.3f}, slowest block "
                f"{st.max_ms:.2f} ms, {st.deadline_misses} of {st.n_blocks} blocks over "
                f"their {st.block_ms:g}-ms deadline"
            )
        else:
            typer.echo(f"real-time factor {outcome.rtf:.3f}")


@separate_app.command("eval")
def eval_command(
    mix_dir: Annotated[
        Path, typer.Argument(help="Folder of mixture_<i>.wav, source1_<i>.wav, source2_<i>.wav.")
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Folder for scores.csv, summary.json (default: MIX_DIR/eval-<mode>)."
        ),
    ] = None,
    mode: Annotated[str, typer.Option("--mode", help=_MODE_HELP)] = "noncausal",
    model_dir: Annotated[
        Path | None, typer.Option("--model-dir", help="Weights from 'avlab separate train'.")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace earlier results.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Separate and score a folder of mixtures with their reference talkers."""
    from rich.console import Console

    from avlab.separate.evaluate import evaluate_folder
    from avlab.separate.inference import SeparateError, Separator

    if mode not in ("causal", "noncausal"):
        raise SeparateError(f"unknown --mode {mode!r}.", "use causal or noncausal.")
    sep = Separator(mode, model_dir)  # type: ignore[arg-type]
    result = evaluate_folder(mix_dir, sep.separate, out=out or mix_dir / f"eval-{mode}",
                             progress=not quiet, overwrite=overwrite)  # fmt: skip
    Console().print(result.table())
    typer.echo(f"scores: {(out or mix_dir / f'eval-{mode}') / 'scores.csv'}")


@separate_app.command("export-onnx")
def export_onnx_command(
    out: Annotated[
        Path, typer.Argument(help="Folder for the .onnx step graphs and causal-step.json.")
    ],
    block_ms: Annotated[
        float, typer.Option("--block-ms", help="Block per call, ms (whole hops of 2 ms).")
    ] = 6.0,
    model_dir: Annotated[
        Path | None, typer.Option("--model-dir", help="Weights from 'avlab separate train'.")
    ] = None,
) -> None:
    """Write the causal network's streaming step as ONNX graphs, for a real-time host."""
    from avlab.separate.export import export_step
    from avlab.separate.inference import Separator
    from avlab.separate.stream import block_samples

    sep = Separator("causal", model_dir)
    desc = export_step(sep, block_samples(sep.config, block_ms, "--block-ms"), out)
    typer.echo(
        f"{len(desc.graphs)} step graph(s) and causal-step.json in {out}: blocks of "
        f"{desc.block} samples at {desc.srate} Hz, latency {desc.latency_ms:g} ms, "
        f"state {desc.state_shape[0]} x {desc.state_shape[1]}"
    )


@separate_app.command("train")
def train_command(
    out: Annotated[Path, typer.Argument(help="Folder for <mode>.pt, <mode>.json, the curve.")],
    mode: Annotated[str, typer.Option("--mode", help=_MODE_HELP)] = "causal",
    minutes: Annotated[float, typer.Option("--minutes", min=0.1, help="Wall-clock budget.")] = 60,
    speech: Annotated[
        Path | None, typer.Option("--speech", help="Recorded speech WAVs (some held out).")
    ] = None,
    rir: Annotated[Path | None, typer.Option("--rir", help="Measured impulse responses.")] = None,
    noise: Annotated[Path | None, typer.Option("--noise", help="Noise recordings.")] = None,
    cache: Annotated[Path | None, typer.Option("--cache", help="Synthesized-speech cache.")] = None,
    init: Annotated[
        Path | None, typer.Option("--init", help="Continue from these weights (.pt).")
    ] = None,
    threads: Annotated[int, typer.Option("--threads", min=1, help="Torch threads.")] = 1,
    seed: Annotated[int, typer.Option("--seed", min=0)] = 0,
    lr: Annotated[
        float,
        typer.Option(
            "--lr",
            min=1e-6,
            max=0.1,
            help="Peak learning rate (cosine to lr/20); lower it to continue with --init.",
        ),
    ] = 1e-3,
) -> None:
    """Train a separation network on synthesized and recorded speech (CPU)."""
    from avlab.separate.train import TrainOptions, train

    if mode not in ("causal", "noncausal"):
        raise typer.BadParameter("--mode must be causal or noncausal")
    info = train(
        out,
        TrainOptions(mode=mode, minutes=minutes, threads=threads, seed=seed, lr=lr),
        speech_dir=speech,
        rir_dir=rir,
        noise_dir=noise,
        cache=cache,
        init=init,
    )
    typer.echo(
        f"{info.steps} steps; best validation SI-SDRi {info.best_val_si_sdri_db:.2f} dB "
        f"at step {info.best_step}; weights in {out / (mode + '.pt')}"
    )
