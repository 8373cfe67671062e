"""``python -m avlab.present CONFIG.json``: the presenter process of ``avlab run``.

Exit codes: 0 all trials done, 10 aborted with Esc, 11 stopped by SIGTERM/SIGINT,
1 an error (one line on stderr).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from avlab._logging import logger
from avlab.errors import AvlabError
from avlab.present.config import EXIT_ERROR, PresenterConfig

__all__: list[str] = []


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def main(argv: list[str]) -> int:
    """Run the presenter from a config file; return the exit code."""
    logging.basicConfig(level=logging.WARNING, format="avlab present: %(message)s")
    logger.setLevel(logging.INFO)
    if len(argv) != 1:
        sys.stderr.write("usage: python -m avlab.present CONFIG.json\n")
        return EXIT_ERROR
    try:
        cfg = PresenterConfig.model_validate_json(Path(argv[0]).read_text())
        from avlab.present.session import present_session

        return present_session(cfg, announce=True).exit_code
    except AvlabError as exc:
        sys.stderr.write(f"error: {_one_line(exc)}\n")
        return EXIT_ERROR
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"error: presenter: {_one_line(exc)}\n")
        return EXIT_ERROR
    except Exception as exc:  # noqa: BLE001 - one clear line, whatever broke
        logger.debug("presenter crashed", exc_info=True)
        sys.stderr.write(f"error: presenter crashed: {type(exc).__name__}: {_one_line(exc)}\n")
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
