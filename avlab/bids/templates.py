"""Dataset-level files from templates a lab can override.

``avlab/data/bids_templates/`` holds ``README``, ``CHANGES``, ``lab.json`` (facts no
session records: institution, cap, reference, line frequency, screen size and
distance), ``dataset_description.json`` and ``participants.json``. A lab puts its own
versions of any of them in a folder and passes it as ``--templates DIR``; files it does
not give come from avlab. ``README`` and ``CHANGES`` may use ``$name``, ``$tasks``,
``$avlab_version`` and ``$date`` (:class:`string.Template`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from pydantic import ValidationError

from avlab.bids.models import LabInfo
from avlab.errors import AvlabError

__all__ = ["Templates", "load_templates"]

_NAMES = ("README", "CHANGES", "lab.json", "dataset_description.json", "participants.json")


class TemplateError(AvlabError):
    """A BIDS template file is unreadable or invalid."""

    exit_code = 2


@dataclass(frozen=True)
class Templates:
    """The template texts, each from the lab's folder or avlab's defaults.

    Attributes
    ----------
    texts : dict of str to str
        File name -> text.
    sources : dict of str to Path
        File name -> where it came from.
    """

    texts: dict[str, str]
    sources: dict[str, Path]

    def lab(self) -> LabInfo:
        """Return ``lab.json`` as a :class:`LabInfo`.

        Raises
        ------
        TemplateError
            The file is not valid JSON or has an unknown or ill-typed field.
        """
        src = self.sources["lab.json"]
        try:
            return LabInfo.model_validate_json(self.texts["lab.json"])
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(x) for x in err["loc"]) or "(file)"
            raise TemplateError(
                f"{src}: {field}: {err['msg']}.",
                hint="Fix the field (see avlab/data/bids_templates/lab.json for the keys).",
            ) from exc

    def json(self, name: str) -> dict[str, Any]:
        """Return a JSON template as a dict."""
        try:
            obj = json.loads(self.texts[name])
        except ValueError as exc:
            raise TemplateError(
                f"{self.sources[name]} is not valid JSON ({exc}).",
                hint="Fix the file or remove it from the templates folder.",
            ) from exc
        if not isinstance(obj, dict):
            raise TemplateError(
                f"{self.sources[name]} must hold a JSON object.",
                hint="Wrap the keys in { }.",
            )
        return obj

    def render(self, template: str, **values: str) -> str:
        """Fill ``$name``-style placeholders of a text template."""
        return Template(self.texts[template]).safe_substitute(values)


def load_templates(folder: Path | None = None) -> Templates:
    """Read the templates, taking each file from ``folder`` when it is there.

    Parameters
    ----------
    folder : Path | None
        A lab's templates folder (``--templates``).

    Returns
    -------
    templates : Templates

    Raises
    ------
    TemplateError
        ``folder`` does not exist.
    """
    if folder is not None and not folder.is_dir():
        raise TemplateError(
            f"templates folder {folder} does not exist.",
            hint="Give a folder holding any of: " + ", ".join(_NAMES) + ".",
        )
    base = resources.files("avlab") / "data" / "bids_templates"
    texts: dict[str, str] = {}
    sources: dict[str, Path] = {}
    for name in _NAMES:
        own = folder / name if folder is not None else None
        if own is not None and own.is_file():
            texts[name], sources[name] = own.read_text(encoding="utf-8"), own
        else:
            ref = base / name
            texts[name], sources[name] = ref.read_text(encoding="utf-8"), Path(str(ref))
    return Templates(texts, sources)
