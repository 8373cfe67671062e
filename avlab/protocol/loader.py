"""Reading a protocol file with the line number of every key, and its problems.

The YAML is composed into nodes first, so that every mapping key and list item
keeps its line; pydantic's validation errors (all of them) and the semantic
checks of :mod:`avlab.protocol.checks` are then reported as
:class:`ProtocolIssue` objects, ``file:line: field.path: what is wrong. Fix: ...``.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from avlab._logging import logger
from avlab.errors import AvlabError
from avlab.protocol.models import Protocol

__all__ = [
    "ProtocolError",
    "ProtocolIssue",
    "format_path",
    "read_protocol",
]

FieldPath = tuple[str | int, ...]


class ProtocolIssue(BaseModel):
    """One problem in a protocol file.

    Attributes
    ----------
    file : str
        The protocol file.
    line : int
        1-based line of the offending key or item (0 when unknown).
    field : str
        Field path, e.g. ``blocks[0].trials[2].switch.at_s`` (0-based indices).
    message : str
        What is wrong.
    fix : str
        How to fix it.
    severity : {"error", "warning"}
        Warnings (an engine not installed here) do not make the file invalid.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str
    line: int = 0
    field: str = ""
    message: str
    fix: str = ""
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        text = f"{where}: {self.field or '(file)'}: {self.message}"
        if self.fix:
            text += f". Fix: {self.fix}"
        if self.severity == "warning":
            text = text.replace(": ", ": warning: ", 1)
        return text


class ProtocolError(AvlabError, ValueError):
    """A protocol file is missing, unreadable or invalid.

    Parameters
    ----------
    message : str
    hint : str
    issues : list of ProtocolIssue
        Every problem found (empty when the file itself is missing).
    """

    exit_code = 8

    def __init__(self, message: str, hint: str = "", issues: list[ProtocolIssue] | None = None):
        super().__init__(message, hint)
        self.issues = list(issues or [])

    @classmethod
    def from_issues(cls, path: Path, issues: list[ProtocolIssue]) -> ProtocolError:
        """Build the error of an invalid file from its issues (errors only are listed)."""
        errors = [i for i in issues if i.severity == "error"]
        lines = "\n".join(f"  {i}" for i in errors)
        n = len(errors)
        message = f"protocol {path} has {n} problem{'s' if n != 1 else ''}:\n{lines}\n"
        hint = (
            errors[0].fix
            if n == 1 and errors[0].fix
            else f"fix each line above as its 'Fix:' says; `avlab protocol validate {path}` "
            "lists them again."
        )
        return cls(message, hint, issues)


def format_path(path: FieldPath) -> str:
    """Render a field path as ``a.b[0].c``.

    Parameters
    ----------
    path : tuple of str or int

    Returns
    -------
    text : str
    """
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class _Marked:
    """YAML data with the line of every key and list item."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.lines: dict[FieldPath, int] = {(): 1}
        self.issues: list[ProtocolIssue] = []

    def walk(self, node: yaml.Node, path: FieldPath) -> None:
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key_node, value_node in node.value:
                key = str(key_node.value)
                line = key_node.start_mark.line + 1
                if key in seen:
                    self.issues.append(
                        ProtocolIssue(
                            file=self.file,
                            line=line,
                            field=format_path((*path, key)),
                            message=f"duplicate key '{key}' (first on line {seen[key]}); "
                            "YAML would keep only the last one",
                            fix=f"remove one of the two '{key}' entries or merge them",
                        )
                    )
                    continue
                seen[key] = line
                self.lines[(*path, key)] = line
                self.walk(value_node, (*path, key))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self.lines[(*path, i)] = item.start_mark.line + 1
                self.walk(item, (*path, i))

    def line_of(self, path: FieldPath) -> int:
        path = tuple(path)
        while path and path not in self.lines:
            path = path[:-1]
        return self.lines.get(path, 1)

    def issue(
        self,
        path: FieldPath,
        message: str,
        fix: str,
        severity: Literal["error", "warning"] = "error",
    ) -> ProtocolIssue:
        return ProtocolIssue(
            file=self.file,
            line=self.line_of(path),
            field=format_path(path),
            message=message,
            fix=fix,
            severity=severity,
        )


def _parse_yaml(text: str, marked: _Marked) -> Any:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        marked.walk(node, ())
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        marked.issues.append(
            ProtocolIssue(
                file=marked.file,
                line=mark.line + 1 if mark else 0,
                field="(yaml)",
                message=f"YAML syntax error: {what}",
                fix="check indentation, colons and quotes on this line and the one above "
                "(a text containing ': ' needs quotes)",
            )
        )
        return None
    except yaml.YAMLError as exc:
        marked.issues.append(
            ProtocolIssue(
                file=marked.file, field="(yaml)", message=f"YAML error: {exc}", fix="fix the YAML"
            )
        )
        return None
    finally:
        loader.dispose()


def _model_at(path: FieldPath) -> type[BaseModel] | None:
    """Return the pydantic model class found at ``path`` inside :class:`Protocol`."""

    def unwrap(ann: Any) -> type[BaseModel] | None:
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            return ann
        for arg in typing.get_args(ann):
            found = unwrap(arg)
            if found is not None:
                return found
        return None

    cls: type[BaseModel] | None = Protocol
    for part in path:
        if isinstance(part, int):
            continue
        if cls is None or part not in cls.model_fields:
            return None
        cls = unwrap(cls.model_fields[part].annotation)
    return cls


def _data_path(data: Any, loc: tuple[Any, ...], etype: str) -> FieldPath:
    """Keep the parts of a pydantic error location that exist in the YAML data."""
    cur, out = data, []
    for i, part in enumerate(loc):
        if isinstance(cur, dict) and part in cur:
            out.append(part)
            cur = cur[part]
        elif isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur):
            out.append(part)
            cur = cur[part]
        elif etype == "missing" and i == len(loc) - 1 and isinstance(part, str):
            out.append(part)
    return tuple(out)


def _closest(word: str, choices: list[str]) -> str | None:
    hits = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return hits[0] if hits else None


def _describe(err: dict[str, Any], path: FieldPath) -> tuple[str, str]:
    """Message and fix of one pydantic error."""
    etype, msg, value = err["type"], err["msg"], err.get("input")
    key = path[-1] if path else ""
    if etype == "extra_forbidden":
        model = _model_at(path[:-1])
        allowed = sorted(model.model_fields) if model else []
        best = _closest(str(key), allowed)
        message = f"unknown key '{key}'" + (f" (did you mean '{best}'?)" if best else "")
        fix = f"rename it to '{best}'" if best else f"remove it; allowed here: {', '.join(allowed)}"
        return message, fix
    if etype == "missing":
        return f"required key '{key}' is missing", f"add '{key}:' here"
    if etype == "literal_error":
        options = re.findall(r"'([^']*)'", str(err.get("ctx", {}).get("expected", "")))
        best = _closest(str(value), options)
        message = f"'{value}' is not one of {', '.join(options)}"
        fix = f"write '{best}'" if best else f"use one of {', '.join(options)}"
        return message, fix
    if etype == "string_pattern_mismatch":
        return (
            f"'{value}' is not a valid id",
            "use only letters, digits, '-' and '_' (no spaces)",
        )
    if etype in ("too_short", "too_long"):
        return msg[0].lower() + msg[1:], "give the number of items the message says"
    if etype in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return f"{value!r} is out of range: {msg[0].lower() + msg[1:]}", f"use a value {msg[16:]}"
    shown = f"{value!r}" if not isinstance(value, dict | list) else type(value).__name__
    return f"{msg[0].lower() + msg[1:]}, got {shown}", _type_fix(etype, str(key))


def _type_fix(etype: str, key: str) -> str:
    if etype.startswith(("int_", "float_")):
        return f"write a number for '{key}' (no units or quotes)"
    if etype.startswith("bool"):
        return f"write true or false for '{key}'"
    if etype in ("model_type", "dict_type", "model_attributes_type"):
        return f"'{key}' takes indented 'key: value' lines, not a single value"
    if etype in ("list_type", "tuple_type"):
        return f"'{key}' takes a list: [a, b] or lines starting with '- '"
    if etype.startswith("string"):
        return f"write '{key}' as text (quote it if it looks like a number or a list)"
    return f"correct the value of '{key}'"


def _validation_issues(exc: ValidationError, data: Any, marked: _Marked) -> list[ProtocolIssue]:
    by_path: dict[FieldPath, tuple[list[str], str]] = {}
    for err in exc.errors(include_url=False):
        path = _data_path(data, err["loc"], err["type"])
        message, fix = _describe(err, path)
        if path in by_path:
            messages, first_fix = by_path[path]
            if message not in messages:
                messages.append(message)
        else:
            by_path[path] = ([message], fix)
    return [marked.issue(path, " or ".join(msgs), fix) for path, (msgs, fix) in by_path.items()]


def read_protocol(path: Path) -> tuple[Protocol | None, list[ProtocolIssue]]:
    """Read and check a protocol file, collecting every problem.

    Parameters
    ----------
    path : Path
        The YAML file.

    Returns
    -------
    protocol : Protocol or None
        The model, or None when the file has errors (warnings allowed).
    issues : list of ProtocolIssue
        Every problem found, sorted by line.
    """
    from avlab.protocol.checks import semantic_issues

    file = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        issue = ProtocolIssue(
            file=file, message=f"cannot read: {exc.strerror or exc}", fix="check the path"
        )
        return None, [issue]
    marked = _Marked(file)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, [marked.issue((), f"not UTF-8 text ({exc.reason})", "save it as UTF-8")]
    data = _parse_yaml(text, marked)
    issues = list(marked.issues)
    if issues and data is None:
        return None, issues
    if not isinstance(data, dict):
        issues.append(
            marked.issue(
                (),
                "a protocol is a YAML mapping (protocol:, talkers:, blocks:, ...)",
                "start from `avlab protocol show competing-talkers` or a shipped file",
            )
        )
        return None, issues
    try:
        protocol = Protocol.model_validate(data)
    except ValidationError as exc:
        issues += _validation_issues(exc, data, marked)
        return None, sorted(issues, key=lambda i: i.line)
    for p, message, fix, severity in semantic_issues(protocol, path.parent):
        issues.append(marked.issue(p, message, fix, severity))
    issues.sort(key=lambda i: i.line)
    if any(i.severity == "error" for i in issues):
        return None, issues
    protocol._path = path.resolve()
    protocol._sha256 = hashlib.sha256(raw).hexdigest()
    logger.debug("read protocol %s (%d warnings)", path, len(issues))
    return protocol, issues
