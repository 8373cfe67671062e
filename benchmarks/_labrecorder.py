"""Record streams with LabRecorder's C++ core (PyPI ``labrecorder``) for a duration.

Usage: python _labrecorder.py OUT.xdf DURATION_S NAME [NAME ...]
"""

from __future__ import annotations

import sys
import time

import labrecorder
import pylsl


def main() -> None:
    out, duration, names = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
    infos = []
    for name in names:
        found = pylsl.resolve_byprop("name", name, timeout=10.0)
        if not found:
            raise SystemExit(f"LabRecorder runner: stream {name!r} not found")
        infos.append(found[0])
    # The binding takes each stream as its info XML (StreamInfo objects gave unreadable files).
    rec = labrecorder.Recording(out, [info.as_xml() for info in infos])
    time.sleep(duration)
    rec.stop()


if __name__ == "__main__":
    main()
