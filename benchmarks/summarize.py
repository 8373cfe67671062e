"""Print the benchmark results as Markdown tables (for docs/benchmarks.md).

Usage: python benchmarks/summarize.py bench-out
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _fmt(x: object, nd: int = 3) -> str:
    return "–" if x is None else f"{x:.{nd}f}" if isinstance(x, float) else str(x)


def _err(e: dict | None) -> str:
    if not e or e.get("median") is None:
        return "–"
    if e["median"] > 1e3:
        return f"off by {e['median'] / 1e3:.3g} s"
    return f"{e['median']:.4f} / {e['p99']:.4f}"


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "bench-out")
    b1 = root / "b1" / "results.json"
    if b1.exists():
        r = json.loads(b1.read_text())
        u = r["usage"]
        print(f"### B1 load and cost ({r['duration_s']:.0f} s)\n")
        print("| recorder | CPU s | peak RSS MB | samples lost (all streams) |")
        print("|---|---|---|---|")
        for who, key in (("avlab record", "avlab"), ("LabRecorder (C++ core)", "labrecorder")):
            lost = sum(v[f"{key}_loss"]["lost"] for v in r["per_stream"].values())
            print(f"| {who} | {u[key]['cpu_s']:.1f} | {u[key]['max_rss_mb']:.0f} | {lost} |")
        rt = r["ratios"]
        print(
            f"\nRatios avlab/LabRecorder: CPU {rt['cpu_avlab_over_labrecorder']:.2f}×, "
            f"peak RSS {rt['rss_avlab_over_labrecorder']:.2f}×. "
            f"Simulator: {u['simulator']['cpu_s']:.0f} CPU s.\n"
        )
        print("| stream | samples (avlab) | lost avlab | lost LabRecorder |")
        print("|---|---|---|---|")
        for name, v in r["per_stream"].items():
            print(
                f"| {name} | {v['avlab_loss']['samples']} | {v['avlab_loss']['lost']} | "
                f"{v['labrecorder_loss']['lost']} |"
            )
        print("\n### B2 sync accuracy (|aligned − true|, ms; median / p99)\n")
        print(
            "| stream | avlab record + avlab sync | LabRecorder + pyxdf | "
            "LabRecorder file + avlab sync |"
        )
        print("|---|---|---|---|")
        for name, v in r["per_stream"].items():
            cells = [
                _err(v.get(k))
                for k in ("avlab_error_ms", "pyxdf_error_ms", "avlab_on_labrecorder_error_ms")
            ]
            print(f"| {name} | " + " | ".join(cells) + " |")
        print()
    b3 = root / "b3" / "results.json"
    if b3.exists():
        r = json.loads(b3.read_text())
        print(f"### B3 crash ({r['reps']} × kill -9)\n")
        print(
            f"Opened as is: {r['opened_as_is']}/{r['reps']}; "
            f"opened after `avlab recover`: {r['opened_after_recover']}/{r['reps']}.\n"
        )
        print("| stream | median s lost | max s lost |")
        print("|---|---|---|")
        for name, v in r["seconds_lost"].items():
            print(f"| {name} | {v['median_s']:.3f} | {v['max_s']:.3f} |")


def summarize_b4(root: Path) -> None:
    """B4: every protocol in full against the simulated lab."""
    path = root / "b4" / "b4_protocols.json"
    if not path.exists():
        return
    print("### B4 every protocol, simulated participant\n")
    print(
        "| protocol | status | trials | markers | wall s | dropped frames | "
        "samples lost (inspect) | samples lost (truth) | recorded s (sim streams) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in json.loads(path.read_text()):
        if r.get("returncode"):
            print(f"| {r['protocol']} | failed ({r['returncode']}) | | | | | | |")
            continue
        li, lt = r["samples_lost_inspect"], r["samples_lost_truth"]
        rec = [v for k, v in r["recorded_s"].items() if k.startswith("sim-")]
        print(
            f"| {r['protocol']} | {r['status']} | {r['trials_completed']} | {r['markers']} | "
            f"{r['wall_s']:.0f} | {r['dropped_frames']} | {sum(li.values())} over {len(li)} "
            f"streams | {sum(lt.values())} over {len(lt)} streams | "
            f"{min(rec):.1f}-{max(rec):.1f} |"
        )


def summarize_b5(root: Path) -> None:
    """B5: BIDS conversion of a 60-minute session beside mne-bids alone."""
    path = root / "b5" / "b5.json"
    if not path.exists():
        return
    r = json.loads(path.read_text())
    print(f"### B5 BIDS conversion, {r['duration_s'] / 60:.1f}-minute session "
          f"({r['session_mb']:.0f} MB)\n")  # fmt: skip
    print("| converter | what | wall s | x real time | peak RSS MB | output MB |")
    print("|---|---|---|---|---|---|")
    for key, what in (("avlab", "everything"), ("mne_bids_alone", "EEG only (RawArray)")):
        x = r[key]
        print(f"| {key} | {what} | {x['wall_s']:.1f} | {x['x_real_time']:.0f} | "
              f"{x['max_rss_mb']:.0f} | {x['output_mb']:.0f} |")  # fmt: skip
    print(f"\navlab / mne-bids wall time: {r['ratio_wall_avlab_over_mne_bids']:.2f}; "
          f"validator: {r['validator']}")  # fmt: skip


def summarize_b6(root: Path) -> None:
    """B6: linear decoder speed beside mtrf; B6b: accuracy at three SNRs per method."""
    path = root / "b6" / "b6_decode.json"
    if path.exists():
        r = json.loads(path.read_text())
        z, ag = r["size"], r["agreement"] or {}
        print(f"### B6 linear decoder speed: {z['subjects']} subjects x "
              f"{z['minutes_per_subject']:g} min x {z['channels']} ch at {z['sfreq']:g} Hz, "
              f"{z['trials']} trials\n")  # fmt: skip
        print("| job | wall s | CPU s |\n|---|---|---|")
        for key in ("avlab_loto", "avlab_nested", "mtrf"):
            x = r.get(key)
            if x:
                print(f"| {key} | {x['wall_s']:.1f} | {x['cpu_s_total']:.1f} |")
        print(f"\nagreement: {ag}\n")
    path = root / "b6acc" / "b6_accuracy.json"
    if not path.exists():
        return
    r = json.loads(path.read_text())
    print("### B6b accuracy against window length (pooled over subjects)\n")
    for snr, entry in r["snr"].items():
        for summary in entry["summary"].values():
            for m in summary["methods"]:
                acc = " | ".join(f"{w['window_s']:g}s {w['accuracy']:.3f}" for w in m["windows"])
                null = [n for n in m["null"] if n.get("window_s") is None]
                nl = f"{null[0]['accuracy']:.3f}/{null[0]['n']}" if null else "-"
                print(f"| {snr} dB | {m['method']} | {acc} | MESD {m['mesd_median_s']} | "
                      f"null {nl} |")  # fmt: skip


def summarize_b7(root: Path) -> None:
    """B7: separation on held-out real speech, speed, beamformer, steering."""
    path = root / "b7" / "b7_realspeech.json"
    if path.exists():
        r = json.loads(path.read_text())
        print("### B7 held-out real speech (avlab separate eval)\n")
        print("| set / network | SI-SDRi dB | SI-SDR dB | STOI mix->est | ESTOI | PESQ | SRMR |")
        print("|---|---|---|---|---|---|---|")
        for key, v in r.items():
            if not isinstance(v, dict) or "mean" not in v:
                continue
            m = v["mean"]
            print(f"| {key} | {m['si_sdri_db']:.2f} | {m['si_sdr_db']:.2f} | "
                  f"{m['mix_stoi']:.3f} -> {m['stoi']:.3f} | {m['mix_estoi']:.3f} -> "
                  f"{m['estoi']:.3f} | {m['mix_pesq']:.2f} -> {m['pesq']:.2f} | "
                  f"{m['mix_srmr']:.2f} -> {m['srmr']:.2f} |")  # fmt: skip
        if "band_ceiling_16k" in r:
            c = r["band_ceiling_16k"]
            print(f"\n8-kHz band ceiling at 16 kHz: SI-SDRi {c['mean_si_sdri_db']:.2f} dB "
                  f"(min {c['min_si_sdri_db']:.2f}) over {c['n']} talkers")  # fmt: skip
    path = root / "b7" / "b7_speed.json"
    if path.exists():
        r = json.loads(path.read_text())
        print("\n### B7 speed\n\n| engine | threads | block ms | latency ms | RTF | misses |")
        print("|---|---|---|---|---|---|")
        for x in r["streaming"]:
            print(
                f"| streaming ({x.get('engine', 'fused')}) | {x['threads']} | "
                f"{x['block_ms']:.0f} | {x['total_latency_ms']:.0f} | {x['rtf']:.3f} | "
                f"{x['deadline_misses']} |"
            )
        for k, v in r["offline"].items():
            print(f"| offline {k} | | | | {v:.3f} | |")
        print(f"| MVDR (4 mics) | 2 | | | {r['mvdr_rtf']:.3f} | |")
    path = root / "b7" / "b7_beamformer.json"
    if path.exists():
        r = json.loads(path.read_text())["summary"]
        print("\n### B7 beamformer baseline\n")
        for cond, v in r.items():
            print(f"{cond}: gaze selection {v['gaze_selection_accuracy']:.3f} over {v['n']}")
            for k in ("mic0", "mvdr", "delay_and_sum", "network+gaze", "network+truth"):
                m = v[k]
                print(
                    f"| {cond} | {k} | {m['si_sdr']:.2f} | {m['stoi']:.3f} | "
                    f"{m['estoi']:.3f} | {m['pesq']:.2f} | {m['srmr']:.2f} |"
                )
    path = root / "b7" / "b7_steering.json"
    if path.exists():
        r = json.loads(path.read_text())
        print("\n### B7 steering\n")
        for a in r["accuracy"]:
            print(a)
        print(r["mean_scores"])


if __name__ == "__main__":
    main()
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "bench-out")
    summarize_b4(root)
    summarize_b5(root)
    summarize_b6(root)
    summarize_b7(root)
