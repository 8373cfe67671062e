"""``avlab record`` and ``avlab recover``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from avlab.cli import app

if TYPE_CHECKING:  # library imports stay lazy: `avlab --help` and start-up stay cheap
    from avlab.record.recorder import StreamStatus

__all__ = ["record_command", "recover_command"]


def _table(rows: list[StreamStatus], elapsed: float) -> Table:
    t = Table(title=f"recording {elapsed:6.1f} s", title_justify="left")
    for col in ("stream", "samples", "rate (Hz)", "nominal", "lag (ms)", "gaps", "state"):
        t.add_column(col, justify="left" if col in ("stream", "state") else "right")
    for r in rows:
        lag = "-" if r.lag_s != r.lag_s else f"{r.lag_s * 1e3:.0f}"
        t.add_row(
            r.name,
            str(r.samples),
            f"{r.effective_rate:.2f}",
            f"{r.nominal_srate:g}",
            lag,
            str(r.gaps),
            "[red]stalled[/red]" if r.stalled else "ok",
        )
    return t


@app.command("record")
def record_command(
    out_dir: Annotated[
        Path, typer.Argument(help="Existing directory; the session folder goes in it.")
    ],
    stream: Annotated[
        list[str] | None,
        typer.Option(
            "--stream", "-s", help="Stream name or type to record (repeatable; default: all)."
        ),
    ] = None,
    duration: Annotated[
        float | None, typer.Option("--duration", "-d", help="Seconds to record.")
    ] = None,
    wait: Annotated[float, typer.Option("--wait", help="Seconds to wait for the streams.")] = 5.0,
    participant: Annotated[str, typer.Option("--participant", help="Participant label.")] = "",
    session: Annotated[str, typer.Option("--session", help="Session label.")] = "",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No live status.")] = False,
) -> None:
    """Record LSL streams into a crash-safe session folder (stop with Ctrl-C)."""
    console = Console(stderr=True)
    t0 = time.monotonic()
    state = {"last_line": 0.0}
    live: Live | None = None
    if not quiet and console.is_terminal:
        live = Live(console=console, refresh_per_second=2, transient=False)

    def on_status(rows: list[StreamStatus]) -> None:
        elapsed = time.monotonic() - t0
        if live is not None:
            live.update(_table(rows, elapsed))
        elif not quiet and elapsed - state["last_line"] >= 5.0:
            state["last_line"] = elapsed
            parts = ", ".join(
                f"{r.name}: {r.samples} ({r.effective_rate:.1f} Hz, {r.gaps} gaps"
                + (", stalled)" if r.stalled else ")")
                for r in rows
            )
            console.print(
                f"[{elapsed:.0f} s] {parts}", highlight=False, soft_wrap=True, markup=False
            )

    if live is not None:
        live.start()
    try:
        from avlab.record.recorder import record

        summary = record(
            out_dir,
            streams=stream or None,
            duration=duration,
            wait_s=wait,
            participant=participant,
            session=session,
            status_callback=on_status,
        )
    finally:
        if live is not None:
            live.stop()
    typer.echo(str(summary.path))


@app.command("recover")
def recover_command(
    session: Annotated[Path, typer.Argument(help="Session folder of a crashed recording.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Rewrite a crashed session's session.h5 as a clean file (status 'recovered')."""
    from avlab.record.recover import recover

    report = recover(session)
    if as_json:
        typer.echo(json.dumps(report.model_dump(mode="json"), indent=2))
        return
    t = Table(title=f"recovered {report.path} (was {report.previous_status!r})")
    for col in ("stream", "samples", "dropped rows", "duration (s)", "gaps", "clock offsets"):
        t.add_column(col, justify="left" if col == "stream" else "right")
    for s in report.streams:
        t.add_row(
            s.key,
            str(s.samples),
            str(s.dropped_rows),
            f"{s.duration_s:.3f}",
            str(s.gaps),
            str(s.clock_offsets),
        )
    Console().print(t)
