"""Test outlet process: publishes LSL streams described by a JSON argument.

Usage: ``python outlet.py '<json>'`` with a list of streams, each
``{"name", "type", "channels", "srate", "format", "source_id", "n", "chunk"}``.
Numeric samples carry their index in channel 0 and time stamps
``t0 + i / srate`` on the local LSL clock, pushed in real time (``srate`` > 0)
or all at once; string streams push ``"m<i>"`` every 0.1 s. Prints ``ready``
when the outlets exist; starts once every outlet has a consumer and ``delay``
s passed; prints ``sent <n> ...`` when done, then lingers ``linger`` s.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import pylsl

FORMATS = {
    "float32": pylsl.cf_float32,
    "double64": pylsl.cf_double64,
    "int16": pylsl.cf_int16,
    "string": pylsl.cf_string,
}


def main() -> None:
    cfg = json.loads(sys.argv[1])
    outs = []
    for s in cfg["streams"]:
        info = pylsl.StreamInfo(
            s["name"], s["type"], s["channels"], s["srate"], FORMATS[s["format"]], s["source_id"]
        )
        outs.append((pylsl.StreamOutlet(info, chunk_size=s.get("chunk", 1)), s))
    print("ready", flush=True)  # noqa: T201 - protocol with the test
    if cfg.get("wait_consumers", True):
        for o, _ in outs:
            o.wait_for_consumers(timeout=30.0)
    time.sleep(cfg.get("delay", 0.5))
    t0 = pylsl.local_clock()
    sent = [0] * len(outs)
    realtime = cfg.get("realtime", True)
    while any(sent[k] < s["n"] for k, (_, s) in enumerate(outs)):
        el = pylsl.local_clock() - t0 if realtime else 1e9
        for k, (o, s) in enumerate(outs):
            if s["format"] == "string":
                want = min(s["n"], int(el * 10) + 1)
                while sent[k] < want:
                    o.push_sample([f"m{sent[k]}"], t0 + sent[k] / 10)
                    sent[k] += 1
                continue
            want = min(s["n"], int(el * s["srate"]) + 1)
            if want <= sent[k]:
                continue
            idx = np.arange(sent[k], want)
            x = np.zeros(
                (len(idx), s["channels"]),
                np.float64
                if s["format"] == "double64"
                else np.int16
                if s["format"] == "int16"
                else np.float32,
            )
            x[:, 0] = idx % 30000 if s["format"] == "int16" else idx
            o.push_chunk(x, (t0 + idx / s["srate"]).tolist())
            sent[k] = want
        time.sleep(0.005)
    print("sent", *sent, flush=True)  # noqa: T201
    time.sleep(cfg.get("linger", 5.0))


if __name__ == "__main__":
    main()
