"""The official BIDS validator (bids-validator-deno), run offline by deno.

The bundle is the JavaScript validator of the BIDS project (schema BIDS 1.11.1), run by
deno directly with read and environment permissions only: the package's own
``bids-validator-deno`` command adds ``--allow-net``. Its JSON output becomes
:class:`avlab.bids.models.Issue` objects.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

from avlab._logging import logger
from avlab.bids.models import Issue, ValidatorUnavailableError

__all__ = ["parse_validator_output", "run_bids_validator", "validator_command", "validator_env"]

_VALIDATOR_RC_OK = (0, 16)  # 16: the dataset has errors; anything else: the tool failed
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


# -- official validator -----------------------------------------------------------------
def _bundle_path() -> Path:
    try:
        import bids_validator_deno
    except ImportError as exc:
        raise ValidatorUnavailableError(
            "the official BIDS validator (Python package bids-validator-deno) is not installed.",
            hint="pip install bids-validator-deno==3.0.2, or run with --no-official.",
        ) from exc
    return Path(bids_validator_deno.__file__).with_name("bids-validator.js")


def _deno_path() -> Path:
    try:
        from deno import find_deno_bin
    except ImportError as exc:
        raise ValidatorUnavailableError(
            "deno (needed to run the official BIDS validator) is not installed.",
            hint="pip install 'deno>=2.5', or run with --no-official.",
        ) from exc
    try:
        return Path(os.fsdecode(find_deno_bin()))
    except (FileNotFoundError, OSError) as exc:
        raise ValidatorUnavailableError(
            f"the deno binary of the Python package deno cannot be found: {exc}.",
            hint="pip install --force-reinstall 'deno>=2.5', or run with --no-official.",
        ) from exc


def validator_command(
    root: Path,
    *,
    ignore_warnings: bool = False,
    bundle: Path | None = None,
    deno_bin: Path | None = None,
) -> list[str]:
    """Build the command line that runs the official validator offline.

    Read and environment access only: no ``--allow-net``, ``--allow-write`` or
    ``--allow-run``; no config file, lock file, remote or npm modules.

    Parameters
    ----------
    root : Path
        Dataset root.
    ignore_warnings : bool
        Report errors only.
    bundle, deno_bin : Path | None
        Override the validator bundle (``bids-validator.js``) and the deno binary
        (default: from the installed packages).

    Returns
    -------
    list of str
    """
    bundle = bundle if bundle is not None else _bundle_path()
    deno_bin = deno_bin if deno_bin is not None else _deno_path()
    cmd = [
        str(deno_bin),
        "run",
        "--no-config",
        "--no-lock",
        "--no-remote",
        "--no-npm",
        "--allow-read",
        "--allow-env",
        "--no-prompt",
        str(bundle),
        str(root),
        "--format",
        "json",
    ]
    if ignore_warnings:
        cmd.append("--ignoreWarnings")
    return cmd


def validator_env() -> dict[str, str]:
    """Environment for the validator: no update check, no prompt, no colours."""
    return {**os.environ, "DENO_NO_UPDATE_CHECK": "1", "DENO_NO_PROMPT": "1", "NO_COLOR": "1"}


def parse_validator_output(text: str) -> tuple[list[Issue], dict[str, Any]]:
    """Turn the validator's ``--format json`` output into issues and its summary.

    Parameters
    ----------
    text : str
        The validator's standard output.

    Returns
    -------
    issues : list of Issue
        ``source="bids-validator"``; ``code`` is ``CODE/subCode`` when there is a
        sub-code (``SIDECAR_KEY_RECOMMENDED/EEGGround``, ``HED_ERROR/TAG_INVALID``).
    summary : dict
        The validator's summary (``subjects, sessions, tasks, modalities, dataTypes,
        totalFiles, size, schemaVersion``, ...).

    Raises
    ------
    ValueError
        ``text`` is not the validator's JSON.
    """
    data = json.loads(text)
    if not isinstance(data, dict) or not isinstance(data.get("issues"), dict):
        raise ValueError("no 'issues' object in the validator output")
    messages: dict[str, str] = data["issues"].get("codeMessages", {}) or {}
    issues = []
    for raw in data["issues"].get("issues", []):
        code = str(raw.get("code", "UNKNOWN"))
        sub = raw.get("subCode")
        generic = " ".join(str(messages.get(code, "")).split())
        detail = " ".join(str(raw.get("issueMessage") or "").split())
        # drop the schema's description of the key the sub-code names: noise in a table
        detail = detail.split("Field description:", 1)[0].strip()
        text_ = generic
        if sub and not detail.startswith(("ERROR", "WARNING")):
            text_ += f" [{sub}]"
        if detail:
            text_ = f"{text_} {detail}" if text_ else detail
        if raw.get("line") is not None:
            text_ += f" (line {raw['line']})"
        sev = "error" if raw.get("severity") == "error" else "warning"
        issues.append(
            Issue(
                code=f"{code}/{sub}" if sub else code,
                severity=sev,
                file=str(raw.get("location") or "").lstrip("/"),
                message=text_.strip() or code,
                source="bids-validator",
            )
        )
    summary = data.get("summary", {})
    return issues, summary if isinstance(summary, dict) else {}


def run_bids_validator(
    root: Path,
    *,
    ignore_warnings: bool = False,
    timeout_s: float = 600,
    bundle: Path | None = None,
) -> tuple[list[Issue], dict[str, Any]]:
    """Run the official BIDS validator (deno, offline) on a dataset.

    Parameters
    ----------
    root : Path
        Dataset root.
    ignore_warnings : bool
        Errors only.
    timeout_s : float
        Give up after this long (s).
    bundle : Path | None
        Validator bundle to run (default: the installed ``bids-validator-deno``'s).

    Returns
    -------
    issues : list of Issue
    summary : dict
        See :func:`parse_validator_output`.

    Raises
    ------
    ValidatorUnavailableError
        deno or the bundle is missing, the validator crashed, timed out or printed
        something that is not its JSON report.
    """
    bundle = bundle if bundle is not None else _bundle_path()
    if not bundle.is_file():
        raise ValidatorUnavailableError(
            f"the BIDS validator bundle {bundle} does not exist.",
            hint="pip install --force-reinstall bids-validator-deno==3.0.2, "
            "or run with --no-official.",
        )
    cmd = validator_command(root, ignore_warnings=ignore_warnings, bundle=bundle)
    logger.debug("running %s", " ".join(cmd))
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env=validator_env(), timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise ValidatorUnavailableError(
            f"the BIDS validator did not finish on {root} within {timeout_s:.0f} s.",
            hint="Run it again with a longer timeout, or with --no-official (avlab's checks only).",
        ) from exc
    except OSError as exc:
        raise ValidatorUnavailableError(
            f"cannot start deno ({cmd[0]}): {exc.strerror or exc}.",
            hint="pip install --force-reinstall 'deno>=2.5', or run with --no-official.",
        ) from exc
    err = _ANSI.sub("", proc.stderr).strip()
    try:
        if proc.returncode not in _VALIDATOR_RC_OK:
            raise ValueError(f"exit code {proc.returncode}")
        return parse_validator_output(proc.stdout)
    except ValueError as exc:
        tail = (err or proc.stdout.strip())[-600:]
        raise ValidatorUnavailableError(
            f"the BIDS validator failed on {root} ({exc}): {tail}",
            hint="Check that the folder is readable; reinstall bids-validator-deno==3.0.2 "
            "and deno, or run with --no-official.",
        ) from exc
