#!/usr/bin/env python3
"""Chart of benches/lookahead.sh's reports: each lookahead's peak RSS against its SSIM gap to
the preset's output, at CRF 23 and at equal file size, with the memory targets and the quality
tolerance drawn in.

    benches/lookahead_chart.py target/bench-report/lookahead-*.json   # writes lookahead.png beside them
"""

import json
import pathlib
import sys

# The memory targets of a job at 1 and 2 threads (MiB), and the SSIM tolerance of benches/quality.py.
TARGETS = {1: 120, 2: 160}
SSIM_TOLERANCE = 0.002


def main(paths):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("note: no matplotlib (apt package python3-matplotlib): chart skipped", file=sys.stderr)
        return
    reports = sorted((json.loads(pathlib.Path(p).read_text()) for p in paths), key=lambda r: r["threads"])
    fig, axes = plt.subplots(1, len(reports), figsize=(6 * len(reports), 4.5), squeeze=False)
    for ax, report in zip(axes[0], reports):
        rows = report["rows"]
        base = rows[0]["ssim"]
        rss = [row["peak_rss_mib"] for row in rows]
        ax.plot(rss, [row["ssim"] - base for row in rows], "o-", label="at CRF 23")
        ax.plot(rss, [row["ssim_gap_at_base_size"] for row in rows], "s--", label="at the preset's file size")
        for row in rows:
            ax.annotate(row["lookahead"], (row["peak_rss_mib"], row["ssim"] - base),
                        textcoords="offset points", xytext=(0, 8), ha="center")
        ax.axhline(-SSIM_TOLERANCE, color="red", linewidth=0.8, label="quality tolerance")
        if report["threads"] in TARGETS:
            ax.axvline(TARGETS[report["threads"]], color="gray", linestyle=":", label="memory target")
        ax.set_title(f"lookahead_frames, {report['threads']} thread(s): reference job")
        ax.set_xlabel("peak RSS (MiB)")
        ax.set_ylabel("SSIM minus the preset's")
        ax.margins(y=0.12)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize="small")
    out = pathlib.Path(paths[0]).parent / "lookahead.png"
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    print(f"Wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
