"""``avlab protocol``: validate, show, list protocols and export their JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from avlab.cli import app

__all__ = ["protocol_app"]

protocol_app = typer.Typer(
    name="protocol",
    help="Validate, show and list paradigm protocols (YAML).",
    no_args_is_help=True,
)
app.add_typer(protocol_app, name="protocol")


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True)


@protocol_app.command("validate")
def validate_command(
    files: Annotated[list[str], typer.Argument(help="Protocol files or names.")],
) -> None:
    """Check protocol files; print each problem as file:line: field: message. Fix: ..."""
    from avlab.protocol import (
        ProtocolError,
        load_protocol,
        plan_session,
        planned_duration_s,
        validate_protocol,
    )

    console = _console()
    failed = False
    for f in files:
        try:
            issues = validate_protocol(f)
        except ProtocolError as exc:
            console.print(Text(f"{f}: {exc}", style="red"))
            failed = True
            continue
        for issue in issues:
            console.print(Text(str(issue), style="red" if issue.severity == "error" else "yellow"))
        if any(i.severity == "error" for i in issues):
            failed = True
            continue
        protocol = load_protocol(f)
        plan = plan_session(protocol, "sub-01", "01")
        minutes = planned_duration_s(plan) / 60.0
        console.print(
            Text(f"OK {protocol.name}: {len(plan.trials)} trials, ~{minutes:.0f} min", "green")
        )
    if failed:
        raise typer.Exit(8)


@protocol_app.command("show")
def show_command(
    protocol: Annotated[str, typer.Argument(help="Protocol name or file.")],
    participant: Annotated[str, typer.Option("--participant", "-p", help="Label.")] = "sub-01",
    session: Annotated[str, typer.Option("--session", "-s", help="Session label.")] = "01",
    seed: Annotated[int | None, typer.Option("--seed", help="Override the base seed.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
) -> None:
    """Print the trial list of one participant and session."""
    from avlab.protocol import load_protocol, plan_session, planned_duration_s

    plan = plan_session(load_protocol(protocol), participant, session, seed=seed)
    if as_json:
        typer.echo(plan.model_dump_json(indent=2))
        return
    table = Table(
        title=f"{plan.protocol}: {plan.participant} session {plan.session} (seed {plan.seed}, "
        f"group {plan.counterbalance}, ~{planned_duration_s(plan) / 60:.0f} min)",
        title_justify="left",
    )
    for col in ("#", "block", "kind", "talkers/sides", "attended", "cue", "switch", "SNR dB"):
        table.add_column(col, no_wrap=True)
    table.add_column("duration s", no_wrap=True)
    table.add_column("question", overflow="fold")
    for t in plan.trials:
        att = t.talkers[t.attended].talker if t.attended is not None else "-"
        sw = f"{t.switch.at_s:g}s->{t.talkers[t.switch.to].talker}" if t.switch else "-"
        table.add_row(
            str(t.index),
            t.block + (" (break)" if t.break_before else ""),
            t.kind,
            ", ".join(f"{p.talker}:{p.side}{'' if p.video else ' (no video)'}" for p in t.talkers)
            or t.prompt,
            att,
            f"{t.cue.modality} {t.cue.duration_s:g}s" if t.cue else "-",
            sw,
            f"{t.noise.snr_db:g}" if t.noise else "-",
            f"{t.duration_s:g}" if t.duration_s else "speech",
            (t.question.text if t.question else "-") + f" [{t.response}]",
        )
    console = _console()
    console.width = max(console.width, 160)
    console.print(table)


@protocol_app.command("schema")
def schema_command(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write to this file.")] = None,
) -> None:
    """Export the JSON Schema of protocol files (for editors)."""
    from avlab.protocol import protocol_schema

    text = json.dumps(protocol_schema(), indent=2)
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text + "\n")
        typer.echo(f"wrote {out}")


@protocol_app.command("list")
def list_command() -> None:
    """List the protocols found by name (./protocols/, then the packaged ones)."""
    from avlab.protocol import available_protocols

    table = Table(title="protocols", title_justify="left")
    table.add_column("name")
    table.add_column("file", overflow="fold")
    for name, path in available_protocols().items():
        table.add_row(name, str(path))
    _console().print(table)
