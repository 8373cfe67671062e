"""HED validation of ``events.json`` / ``events.tsv`` with hedtools, offline.

hedtools 1.3.0 bundles the HED schema XML files, so :func:`validate_hed` never touches
the network. The schema is :data:`avlab.bids.models.HED_VERSION` (8.4.0, the newest one
the official validator also has offline). Top-level scalar keys of a sidecar (for
example ``TaskName``) are left out before hedtools sees the sidecar: hedtools reads every
top-level key as a column description and fails on a string.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from avlab._logging import logger
from avlab.bids.models import HED_VERSION, Issue, ValidatorUnavailableError

__all__ = ["validate_hed"]

_HINT_URL = "https://www.hedtags.org/display_hed.html"


@lru_cache(maxsize=2)
def _schema(version: str) -> Any:  # noqa: ANN401 - hedtools' HedSchema
    from hed import load_schema_version
    from hed.errors.exceptions import HedFileError

    try:
        return load_schema_version(version)
    except HedFileError as exc:
        raise ValidatorUnavailableError(
            f"hedtools cannot load the HED schema {version}: {exc}.",
            hint="Reinstall hedtools 1.3.0 (it bundles the schema files): "
            "pip install --force-reinstall hedtools==1.3.0.",
        ) from exc


def _rel(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return str(path.resolve().relative_to(root.resolve()))
        except ValueError:
            pass
    return str(path)


def _hed_code(code: str) -> str:
    return code if code.startswith("HED_") else f"HED_{code}"


def _to_issue(raw: dict[str, Any], default_file: str) -> Issue:
    from hed.errors import ErrorSeverity

    parts = [str(raw.get("message", "")).strip()]
    where = []
    if raw.get("ec_sidecarColumnName"):
        where.append(f"column {raw['ec_sidecarColumnName']!r}")
    if raw.get("ec_sidecarKeyName"):
        where.append(f"key {raw['ec_sidecarKeyName']!r}")
    if raw.get("ec_row") is not None:
        where.append(f"row {raw['ec_row']}")
    if raw.get("ec_column") is not None and not raw.get("ec_sidecarColumnName"):
        where.append(f"column {raw['ec_column']}")
    if where:
        parts.append(f"({', '.join(where)})")
    if raw.get("ec_HedString"):
        parts.append(f"in HED string {str(raw['ec_HedString'])!r}")
    parts[-1] = parts[-1].rstrip(".") + "."
    fix = (
        "the table's value or the sidecar's HED for its column"
        if raw.get("ec_row")
        else ("the HED annotation in the sidecar")
    )
    parts.append(f"Fix {fix}; valid tags of HED {HED_VERSION}: {_HINT_URL}.")
    severity = int(raw.get("severity", ErrorSeverity.ERROR))
    return Issue(
        code=_hed_code(str(raw.get("code", "UNKNOWN"))),
        severity="warning" if severity >= ErrorSeverity.WARNING else "error",
        file=str(raw.get("ec_filename") or default_file),
        message=" ".join(p for p in parts if p),
        source="hed",
    )


def _load_sidecar_dict(paths: Sequence[Path], root: Path | None) -> tuple[dict, list[Issue]]:
    """Merge sidecars in inheritance order (later overrides); keep only object values."""
    merged: dict[str, Any] = {}
    issues = []
    for p in paths:
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            issues.append(
                Issue(
                    code="HED_SIDECAR_UNREADABLE",
                    severity="error",
                    file=_rel(p, root),
                    message=f"cannot read {p.name} as JSON: {exc}. Fix the JSON syntax "
                    "(a trailing comma or an unquoted key is the usual cause).",
                    source="hed",
                )
            )
            continue
        if not isinstance(data, dict):
            issues.append(
                Issue(
                    code="HED_SIDECAR_UNREADABLE",
                    severity="error",
                    file=_rel(p, root),
                    message=f"{p.name} is not a JSON object. An events sidecar maps column "
                    'names to their descriptions ({"trial_type": {...}}).',
                    source="hed",
                )
            )
            continue
        merged.update({k: v for k, v in data.items() if isinstance(v, dict)})
    return merged, issues


def validate_hed(
    events_json: Path,
    events_tsv: Path | None = None,
    *,
    root: Path | None = None,
    parents: Sequence[Path] = (),
) -> list[Issue]:
    """Validate the HED annotations of an events sidecar (and its table) offline.

    Parameters
    ----------
    events_json : Path
        The ``…_events.json`` sidecar.
    events_tsv : Path | None
        The ``…_events.tsv`` it describes; its rows are assembled with the sidecar and
        validated too (values that fill ``#`` placeholders, ``HED`` column).
    root : Path | None
        Dataset root: file names in the issues are made relative to it.
    parents : sequence of Path
        Sidecars higher in the BIDS inheritance chain (e.g. ``task-X_events.json`` at the
        root), merged first; ``events_json`` overrides their keys. Issues the parents
        have on their own are left out (validate each parent by itself for those).

    Returns
    -------
    list of Issue
        ``source="hed"``, ``code`` = hedtools' code prefixed ``HED_`` (``HED_TAG_INVALID``),
        severity error or warning; empty when the annotations are valid.

    Raises
    ------
    ValidatorUnavailableError
        hedtools cannot load its bundled schema.
    """
    from hed import Sidecar, TabularInput
    from hed.errors.exceptions import HedFileError

    schema = _schema(HED_VERSION)
    json_name = _rel(events_json, root)
    merged, issues = _load_sidecar_dict([*parents, events_json], root)
    if issues:
        return issues
    raws: list[dict[str, Any]] = []
    try:
        sidecar = Sidecar(io.StringIO(json.dumps(merged)), name=json_name)
        raws += sidecar.validate(schema, name=json_name)
        if parents:  # issues of the parents alone belong to them: validate them separately
            inherited, _ = _load_sidecar_dict(parents, root)
            theirs = Sidecar(io.StringIO(json.dumps(inherited))).validate(schema)
            known = {(r.get("code"), r.get("message")) for r in theirs}
            raws = [r for r in raws if (r.get("code"), r.get("message")) not in known]
        if events_tsv is not None:
            tsv_name = _rel(events_tsv, root)
            table = TabularInput(str(events_tsv), sidecar=sidecar, name=tsv_name)
            raws += table.validate(schema, name=tsv_name, validate_sidecar=False)
    except HedFileError as exc:
        bad = events_tsv if events_tsv is not None else events_json
        return [
            Issue(
                code=_hed_code(str(getattr(exc, "code", "FILE_ERROR"))),
                severity="error",
                file=_rel(bad, root),
                message=f"hedtools cannot read {bad.name}: {exc}. "
                "Check that the file is a tab-separated table with a header line.",
                source="hed",
            )
        ]
    seen = set()
    out = []
    for raw in raws:
        issue = _to_issue(raw, json_name)
        key = (issue.code, issue.file, issue.message)
        if key not in seen:
            seen.add(key)
            out.append(issue)
    logger.debug("HED %s: %d issues", json_name, len(out))
    return out
