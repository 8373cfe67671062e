"""``python -m avlab.sim CONFIG.json``: run the simulator from a config file.

Used to re-execute the simulator inside a time namespace without going through
the full command line.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from avlab._logging import logger
from avlab.sim.config import load_sim_config
from avlab.sim.run import INSIDE_NS_ENV, run_sim

__all__: list[str] = []

if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="avlab sim: %(message)s")
    logger.setLevel(logging.INFO if "-v" in sys.argv else logging.WARNING)
    cfg = load_sim_config(Path(sys.argv[1]))
    if os.environ.get(INSIDE_NS_ENV) is not None:
        cfg = cfg.model_copy(update={"host_offset_s": float(os.environ[INSIDE_NS_ENV])})
    run_sim(cfg)
