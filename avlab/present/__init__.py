"""The PsychoPy presenter: a session plan shown and heard, with markers at flip time.

Run as its own process (``python -m avlab.present CONFIG.json``, what ``avlab
run`` does) so that a crash in the window or audio driver cannot take the
recorder down. PsychoPy is imported only when a window is opened.
"""

from __future__ import annotations

from avlab.present.config import (
    EXIT_ABORTED,
    EXIT_COMPLETE,
    EXIT_ERROR,
    EXIT_SIGNAL,
    PresenterConfig,
    PresentResult,
)

__all__ = [
    "EXIT_ABORTED",
    "EXIT_COMPLETE",
    "EXIT_ERROR",
    "EXIT_SIGNAL",
    "PresentResult",
    "PresenterConfig",
    "present_session",
]


def present_session(cfg: PresenterConfig) -> PresentResult:
    """Run a plan in a window; see :func:`avlab.present.session.present_session`.

    Parameters
    ----------
    cfg : PresenterConfig

    Returns
    -------
    result : PresentResult
    """
    from avlab.present.session import present_session as _run

    return _run(cfg)
