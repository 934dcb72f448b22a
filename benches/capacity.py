#!/usr/bin/env python3
"""Throughput per Fargate task size, side by side with ffmpeg, and the autoscaling targets that follow.

For each task size (vCPU), the CPU is capped the way Fargate caps a task: a CFS quota of
vCPU x 100 ms per 100 ms period on a cgroup (v2 `cpu.max`, or v1 `cpu.cfs_quota_us`). In it, the
default pipeline (`anb process` with pipeline.toml, as a worker runs it) processes the 60 s 1080p
reference clip with 1, 2, ... jobs at a time; the ffmpeg command line doing the same work at the
same x264 settings (benches/ffmpeg-showcase.sh) runs the same jobs under the same quota. Each row:
videos per minute, realtime factor, p50/p95 job time, peak RSS, and the ffmpeg wall-time ratio.

Then, for a latency target (default: a clip processed within 5 minutes of upload), the
recommendations: the worker's backlog-per-task target, the cheapest task size per processed
video (Fargate prices are parameters), and the memory to reserve. Printed as a table and written
as JSON, CSV and PNG charts under target/bench-report/.

To fit `make bench` in 20 minutes on 2 cores, units of work run side by side when their quotas
leave some of the machine's cores free together: anb and ffmpeg at the same size, each in its own
cgroup with that size's quota (so a row's ratio compares like with like, at the same time), and
small sizes beside each other, as Fargate packs tasks onto shared hosts. A size whose two sides
would take every core (1 and 2 vCPU on 2 cores) runs its anb and ffmpeg jobs in turns (A B B A,
so drift in the machine's speed weighs on both sides alike): a Fargate task's vCPUs
are its own, while two cgroups that saturate the host make each thread hand-off wait for a core
(measured: two anb jobs in a 1-vCPU quota beside two ffmpeg jobs in another got 0.82 of their
CPU and took 39.4 s a job instead of 33.7 s alone; ffmpeg, one thread, is not affected). Each row
runs max(2, concurrency) jobs; with so few jobs, p95 is close to the slowest job.

Run by `cargo bench --bench capacity` and `make bench`; `benches/capacity.py --help` for options.
Local figures are relative: a Fargate vCPU is a hyperthread of some host generation. Read the
ratios and the shape; rerun on the target hardware for absolute numbers.
"""

import argparse
import concurrent.futures
import csv
import json
import math
import os
import statistics
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import quality  # benches/quality.py, beside this file

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "target" / "bench-report"
INPUT = ROOT / "target" / "bench-inputs" / "clip-60s-1080p.mp4"
OUTPUT_SECS = 30.0  # the default pipeline keeps the first 30 s
PERIOD_US = 100_000
# Fargate's valid memory sizes (GiB) per vCPU.
FARGATE_MEMORY_GB = {
    0.25: [0.5, 1, 2],
    0.5: [1, 2, 3, 4],
    1: [2, 3, 4, 5, 6, 7, 8],
    2: [4 + i for i in range(13)],
    4: [8 + i for i in range(23)],
}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--anb", default=str(ROOT / "target" / "release" / "anb"), help="the anb binary")
    p.add_argument("--sizes", default="0.25,0.5,1,2", help="task sizes in vCPU")
    p.add_argument("--max-concurrency", type=int, default=0, help="highest concurrency tried (default: 1 below one vCPU, else whole vCPUs + 1)")
    p.add_argument("--latency-target-secs", type=float, default=300, help="upload to processed, for the backlog target")
    p.add_argument("--task-start-secs", type=float, default=60, help="time for a new Fargate task to start taking jobs")
    p.add_argument("--price-vcpu-hour", type=float, default=0.04048, help="Fargate Linux/x86 price per vCPU-hour (USD)")
    p.add_argument("--price-gb-hour", type=float, default=0.004445, help="Fargate price per GB-hour (USD)")
    p.add_argument("--charts-only", action="store_true", help="redraw the PNG charts from target/bench-report/capacity.json")
    p.add_argument("--parameters", nargs="?", const="template", metavar="VCPU",
                   help="print the CloudFormation overrides the last report recommends for a task size (default: the "
                        "template's WorkerCpu), e.g. deploy/scripts/deploy.sh $(benches/capacity.py --parameters)")
    p.add_argument("--report", default=str(REPORT / "capacity.json"), help="the report --parameters reads")
    p.add_argument("--template", default=str(ROOT / "deploy" / "cloudformation" / "infrastructure-fargate.yaml"))
    return p.parse_args()


class CpuLimit:
    """A cgroup with a CFS quota; processes started through `wrap` run inside it."""

    count = 0

    def __init__(self, vcpu):
        self.vcpu = vcpu
        self.path = None
        self.procs = None
        quota = int(vcpu * PERIOD_US)
        CpuLimit.count += 1
        name = f"anb-bench-{os.getpid()}-{CpuLimit.count}-{str(vcpu).replace('.', '_')}"
        v2 = Path("/sys/fs/cgroup")
        v1 = Path("/sys/fs/cgroup/cpu")
        try:
            if (v2 / "cgroup.controllers").exists() and "cpu" in (v2 / "cgroup.controllers").read_text().split():
                self.path = v2 / name
                self.path.mkdir()
                (self.path / "cpu.max").write_text(f"{quota} {PERIOD_US}")
            elif (v1 / "cpu.cfs_quota_us").exists():
                self.path = v1 / name
                self.path.mkdir()
                (self.path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
                (self.path / "cpu.cfs_quota_us").write_text(str(quota))
            else:
                raise OSError("no cgroup CPU controller")
            self.procs = self.path / "cgroup.procs"
        except OSError as e:
            self.close()
            self.error = str(e)

    @property
    def ok(self):
        return self.procs is not None

    def wrap(self, argv):
        # The shell joins the cgroup, then becomes the command: everything it starts is capped.
        return ["sh", "-c", f'echo $$ > {self.procs} && exec "$@"', "sh", *argv]

    def close(self):
        if self.path is not None:
            try:
                self.path.rmdir()
            except OSError:
                pass
            self.path = None


def run_row(make_argv, jobs, concurrency, limit, keep=None):
    """Run `jobs` commands, `concurrency` at a time, in the cgroup. Returns job wall times, peak
    RSS (KiB) per job (from /usr/bin/time), and the row's total wall time. The first output is
    moved to `keep` when that file does not exist yet (for the quality columns)."""
    pending = list(range(jobs))
    running = []
    walls, rss = [], []
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as work:
        while pending or running:
            while pending and len(running) < concurrency:
                i = pending.pop(0)
                timing = Path(work) / f"time-{i}"
                argv = limit.wrap(["/usr/bin/time", "-f", "%M", "-o", str(timing), *make_argv(Path(work) / f"out-{i}.mp4")])
                proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                running.append((proc, time.monotonic(), timing))
            time.sleep(0.05)
            for job in [j for j in running if j[0].poll() is not None]:
                proc, began, timing = job
                running.remove(job)
                if proc.returncode != 0:
                    sys.exit(f"job failed: {' '.join(proc.args)}\n{proc.stderr.read().decode(errors='replace')}")
                proc.stderr.close()
                walls.append(time.monotonic() - began)
                rss.append(int(timing.read_text().split()[-1]))
                output = Path(work) / f"out-{timing.name.removeprefix('time-')}.mp4"
                if keep is not None and not keep.exists():
                    shutil.move(output, keep)
    return walls, rss, time.monotonic() - start


def measure_sides(vcpu, sides, levels, keep_dir):
    """Sides (name, argv maker) of one size at each concurrency level, each side in its own cgroup.

    A row's jobs run in rounds of `concurrency` jobs. With several sides, the sides take turns
    round by round, the order flipping each round (A B, B A, A B, ...), so a machine that slows down
    or speeds up over the minutes of a size weighs on both sides alike."""
    limits = {name: CpuLimit(vcpu) for name, _ in sides}
    try:
        failed = [limit.error for limit in limits.values() if not limit.ok]
        if failed:
            return {name: {"error": failed[0]} for name, _ in sides}
        out = {name: {} for name, _ in sides}
        turn = 0
        for concurrency in levels:
            jobs = max(2, concurrency)
            threads = threads_for(vcpu, concurrency)
            for name, _ in sides:
                # One write per line: sides measured side by side print from their own threads.
                sys.stderr.write(f"  {vcpu} vCPU {name}: {concurrency} at a time, {jobs} jobs, {threads} thread(s) each\n")
            rows = {name: ([], [], 0.0) for name, _ in sides}
            for _ in range(jobs // concurrency):
                for name, make_argv_for in sides if turn % 2 == 0 else sides[::-1]:
                    keep = keep_dir / f"{name}-{threads}.mp4"  # outputs differ only by side and threads
                    walls, rss, total = run_row(make_argv_for(threads), concurrency, concurrency, limits[name], keep)
                    w, r, t = rows[name]
                    rows[name] = (w + walls, r + rss, t + total)
                turn += 1
            for name, row in rows.items():
                out[name][concurrency] = row + (jobs, threads)
        return out
    finally:
        for limit in limits.values():
            limit.close()


def concurrency_levels(vcpu, max_concurrency):
    # Below one vCPU, one single-threaded job already uses the whole quota: a second one only
    # halves each job's speed. From one vCPU up, try up to one job more than the whole vCPUs.
    top = max_concurrency or (1 if vcpu < 1 else math.ceil(vcpu) + 1)
    return list(range(1, top + 1))


def phases(sizes, cores):
    """Groups of (size, parallel sides?) whose quotas together leave some of the machine's cores free."""
    out, current, load = [], [], 0.0
    for vcpu in sorted(sizes):
        if 2 * vcpu >= cores:
            if current:
                out.append(current)
                current, load = [], 0.0
            out.append([(vcpu, False)])
            continue
        if load + 2 * vcpu >= cores and current:
            out.append(current)
            current, load = [], 0.0
        current.append((vcpu, True))
        load += 2 * vcpu
    if current:
        out.append(current)
    return out


def percentile(values, p):
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def threads_for(vcpu, concurrency):
    # What the worker gives each job: the CPUs the process may use (rounded up, as Rust's
    # available_parallelism rounds a quota) divided among its slots.
    return max(1, math.ceil(vcpu) // concurrency)


def fargate_memory(vcpu, need_mib):
    for gb in FARGATE_MEMORY_GB.get(vcpu, []):
        if gb * 1024 >= need_mib:
            return gb
    return None


def template_default(template, parameter):
    """A parameter's default in the CloudFormation template."""
    lines = Path(template).read_text().splitlines()
    if f"  {parameter}:" not in lines:
        return None
    i = lines.index(f"  {parameter}:")
    for line in lines[i + 1:i + 8]:
        if line.strip().startswith("Default:"):
            return line.split(":", 1)[1].strip().strip('"')
    return None


def stack_parameters(report, vcpu, template):
    """`ParameterKey=value` overrides for deploy/scripts/deploy.sh from a report's recommendation."""
    if vcpu == "template":
        vcpu = int(template_default(template, "WorkerCpu")) / 1024
    rec = next((r for r in report["recommendations"] if float(r["vcpu"]) == float(vcpu)), None)
    if rec is None:
        sys.exit(f"the report has no recommendation for {vcpu} vCPU (sizes: {', '.join(str(r['vcpu']) for r in report['recommendations'])})")
    if not rec["meets_latency_target"] or not rec["fargate_memory_gb"]:
        sys.exit(f"{vcpu} vCPU misses the report's latency target or memory sizes: pick another size")
    return [
        f"WorkerCpu={round(float(vcpu) * 1024)}",
        f"WorkerMemory={round(rec['fargate_memory_gb'] * 1024)}",
        f"WorkerConcurrency={rec['concurrency']}",
        f"WorkerBacklogPerTaskTarget={rec['backlog_per_task_target']}",
    ]


def main():
    args = parse_args()
    if args.parameters:
        print(" ".join(stack_parameters(json.loads(Path(args.report).read_text()), args.parameters, args.template)))
        return
    if args.charts_only:
        report = json.loads((REPORT / "capacity.json").read_text())
        charts(report["rows"], report["recommendations"])
        return
    anb = Path(args.anb)
    if not anb.exists():
        sys.exit(f"{anb} is missing: cargo build --release (or run through `cargo bench --bench capacity`)")
    subprocess.run([str(ROOT / "benches" / "gen-inputs.sh")], check=True, stdout=subprocess.DEVNULL)
    cores = os.cpu_count() or 1
    sizes = [float(s) for s in args.sizes.split(",")]
    sizes = [int(s) if s.is_integer() else s for s in sizes]
    REPORT.mkdir(parents=True, exist_ok=True)

    rows = []
    notes = []
    measurable = []
    for vcpu in sizes:
        if vcpu > cores:
            notes.append(f"{vcpu} vCPU skipped: this machine has {cores} cores")
        else:
            measurable.append(vcpu)
    probe = CpuLimit(measurable[0] if measurable else 1)
    if not probe.ok:
        notes.append(f"CPU quotas cannot be set here ({probe.error}): no task size can be emulated; "
                     "run as root on a host with a cgroup v1 or v2 CPU controller")
        measurable = []
    probe.close()

    def anb_argv(threads):
        return lambda out: [str(anb), "process", str(INPUT), str(out), "--threads", str(threads)]

    def ffmpeg_argv(threads):
        return lambda out: ["env", f"THREADS={threads}", str(ROOT / "benches" / "ffmpeg-showcase.sh"), str(INPUT), str(out)]

    measured = {}
    both = [("anb", anb_argv), ("ffmpeg", ffmpeg_argv)]
    kept_dir = tempfile.TemporaryDirectory()
    kept = Path(kept_dir.name)
    for phase in phases(measurable, cores):
        side_by_side = all(parallel for _, parallel in phase)
        how = "anb beside ffmpeg" if side_by_side else "anb and ffmpeg taking turns"
        print(f"running {', '.join(f'{v} vCPU' for v, _ in phase)}: {how}", file=sys.stderr, flush=True)
        if side_by_side:
            # Every side of every size of the phase at once, each in its own cgroup.
            work = [(vcpu, [side], concurrency_levels(vcpu, args.max_concurrency), kept) for vcpu, _ in phase for side in both]
            with concurrent.futures.ThreadPoolExecutor(max_workers=len(work)) as pool:
                results = list(pool.map(lambda w: measure_sides(*w), work))
        else:
            work = [(vcpu, both, concurrency_levels(vcpu, args.max_concurrency), kept) for vcpu, _ in phase]
            results = [measure_sides(*w) for w in work]
        for (vcpu, _, _, _), result in zip(work, results):
            for name, side_rows in result.items():
                measured[(vcpu, name)] = side_rows

    for vcpu in measurable:
        a, f = measured[(vcpu, "anb")], measured[(vcpu, "ffmpeg")]
        if "error" in a or "error" in f:
            notes.append(f"{vcpu} vCPU not measured: {a.get('error') or f.get('error')}")
            continue
        for concurrency, (a_walls, a_rss, a_total, jobs, threads) in a.items():
            f_walls, _, f_total, _, _ = f[concurrency]
            per_job_rss_mib = max(a_rss) / 1024
            rows.append({
                "vcpu": vcpu,
                "concurrency": concurrency,
                "jobs": jobs,
                "threads_per_job": threads,
                "videos_per_min": jobs / a_total * 60,
                "realtime_factor": OUTPUT_SECS / statistics.median(a_walls),
                "p50_job_secs": statistics.median(a_walls),
                "p95_job_secs": percentile(a_walls, 95),
                "peak_rss_per_job_mib": per_job_rss_mib,
                "peak_rss_task_mib": per_job_rss_mib * concurrency,
                "ffmpeg_videos_per_min": jobs / f_total * 60,
                "ffmpeg_p50_job_secs": statistics.median(f_walls),
                "ffmpeg_ratio": statistics.median(a_walls) / statistics.median(f_walls),
                "job_walls": a_walls,
                "ffmpeg_job_walls": f_walls,
            })

    if not rows:
        print("\n".join(notes))
        sys.exit("no rows: nothing could be measured here")

    # Quality beside speed: one output per side and thread count (a row's outputs differ only by
    # those), against the same reference, measured after the timed part and outside the quotas.
    print("quality: SSIM and PSNR of one output per side and thread count", file=sys.stderr, flush=True)
    scores = {out.stem: quality.measure(INPUT, out) for out in sorted(kept.glob("*.mp4"))}
    kept_dir.cleanup()
    for r in rows:
        a, f = scores[f"anb-{r['threads_per_job']}"], scores[f"ffmpeg-{r['threads_per_job']}"]
        r.update({"anb_ssim": a["ssim"], "anb_psnr_db": a["psnr_db"], "ffmpeg_ssim": f["ssim"], "ffmpeg_psnr_db": f["psnr_db"],
                  "quality_flagged": quality.flag(a, f)})

    # Best concurrency per size: the highest throughput; within 5 % of it, the fewest jobs at a
    # time (less memory, shorter jobs).
    best = {}
    for vcpu in dict.fromkeys(r["vcpu"] for r in rows):
        candidates = [r for r in rows if r["vcpu"] == vcpu]
        top = max(r["videos_per_min"] for r in candidates)
        best[vcpu] = min((r for r in candidates if r["videos_per_min"] >= 0.95 * top), key=lambda r: r["concurrency"])
        best[vcpu]["best"] = True

    recommendations = []
    for vcpu, r in best.items():
        per_sec = r["videos_per_min"] / 60
        budget = args.latency_target_secs - args.task_start_secs - r["p95_job_secs"]
        backlog = max(1, math.floor(budget * per_sec)) if budget > 0 else None
        reserve_mib = r["peak_rss_task_mib"] * 1.5 + 64  # headroom for longer inputs and the runtime
        memory_gb = fargate_memory(vcpu, reserve_mib)
        price_hour = vcpu * args.price_vcpu_hour + (memory_gb or 0) * args.price_gb_hour
        recommendations.append({
            "vcpu": vcpu,
            "concurrency": r["concurrency"],
            "videos_per_min": r["videos_per_min"],
            "p95_job_secs": r["p95_job_secs"],
            "meets_latency_target": backlog is not None,
            "backlog_per_task_target": backlog,
            "memory_reserve_mib": math.ceil(reserve_mib),
            "fargate_memory_gb": memory_gb,
            "price_per_task_hour": price_hour,
            "cost_per_1000_videos": price_hour / (r["videos_per_min"] * 60) * 1000 if memory_gb else None,
        })
    eligible = [r for r in recommendations if r["meets_latency_target"] and r["cost_per_1000_videos"]]
    cheapest = min(eligible, key=lambda r: r["cost_per_1000_videos"]) if eligible else None

    # ---- print
    print(f"\nThroughput per task size: default pipeline on a 60 s 1080p clip (30 s out), ffmpeg side by side")
    print(f"{'vCPU':>5} {'jobs@':>5} {'videos/min':>10} {'RTF':>6} {'p50 s':>7} {'p95 s':>7} {'RSS/job MiB':>11} {'ffmpeg p50':>10} {'ratio':>6}"
          f" {'SSIM anb':>9} {'ffmpeg':>8} {'PSNR anb':>9} {'ffmpeg':>7}")
    for r in rows:
        mark = (" *" if r.get("best") else "  ") + (" worse quality" if r["quality_flagged"] else "")
        print(f"{r['vcpu']:>5} {r['concurrency']:>5} {r['videos_per_min']:>10.2f} {r['realtime_factor']:>6.2f} {r['p50_job_secs']:>7.1f} "
              f"{r['p95_job_secs']:>7.1f} {r['peak_rss_per_job_mib']:>11.0f} {r['ffmpeg_p50_job_secs']:>10.1f} {r['ffmpeg_ratio']:>6.2f}"
              f" {r['anb_ssim']:>9.5f} {r['ffmpeg_ssim']:>8.5f} {r['anb_psnr_db']:>9.2f} {r['ffmpeg_psnr_db']:>7.2f}{mark}")
    print("  * best concurrency for the size; ratio = anb / ffmpeg median job wall time (target <= 0.90); SSIM and PSNR")
    print(f"    against the source scaled by ffmpeg, watermarks masked; 'worse quality' = anb's SSIM more than "
          f"{quality.SSIM_TOLERANCE} below ffmpeg's")
    print(f"\nRecommendations for a {args.latency_target_secs:.0f} s latency target (task start {args.task_start_secs:.0f} s; "
          f"${args.price_vcpu_hour}/vCPU-h, ${args.price_gb_hour}/GB-h)")
    print(f"{'vCPU':>5} {'jobs@':>5} {'backlog/task':>12} {'memory':>8} {'$/task-h':>9} {'$/1000 videos':>13}")
    for r in recommendations:
        backlog = r["backlog_per_task_target"] if r["meets_latency_target"] else "misses"
        memory = f"{r['fargate_memory_gb']} GB" if r["fargate_memory_gb"] else "n/a"
        cost = f"{r['cost_per_1000_videos']:.3f}" if r["cost_per_1000_videos"] else "n/a"
        print(f"{r['vcpu']:>5} {r['concurrency']:>5} {backlog:>12} {memory:>8} {r['price_per_task_hour']:>9.4f} {cost:>13}")
    if cheapest:
        print(f"\nCheapest per video: {cheapest['vcpu']} vCPU / {cheapest['fargate_memory_gb']} GB, "
              f"{cheapest['concurrency']} job(s) at a time, WorkerBacklogPerTaskTarget={cheapest['backlog_per_task_target']}")
    default_cpu = template_default(args.template, "WorkerCpu")
    default_target = template_default(args.template, "WorkerBacklogPerTaskTarget")
    if default_cpu:
        size = int(default_cpu) / 1024
        size = int(size) if float(size).is_integer() else size
        rec = next((r for r in recommendations if r["vcpu"] == size), None)
        if rec:
            agrees = str(rec["backlog_per_task_target"]) == default_target
            print(f"Template default: WorkerCpu={default_cpu} ({size} vCPU), WorkerBacklogPerTaskTarget={default_target}; "
                  f"this run recommends {rec['backlog_per_task_target']} for that size" + ("" if agrees else " (differs: see docs/capacity.md)"))
    for note in notes:
        print(f"note: {note}")

    # ---- write
    report = {"input": INPUT.name, "output_secs": OUTPUT_SECS, "cores": cores, "args": vars(args), "notes": notes,
              "rows": rows, "recommendations": recommendations, "cheapest": cheapest}
    (REPORT / "capacity.json").write_text(json.dumps(report, indent=2))
    columns = ["vcpu", "concurrency", "jobs", "threads_per_job", "videos_per_min", "realtime_factor", "p50_job_secs",
               "p95_job_secs", "peak_rss_per_job_mib", "peak_rss_task_mib", "ffmpeg_videos_per_min", "ffmpeg_p50_job_secs", "ffmpeg_ratio",
               "anb_ssim", "ffmpeg_ssim", "anb_psnr_db", "ffmpeg_psnr_db", "quality_flagged"]
    with open(REPORT / "capacity.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    with open(REPORT / "capacity-recommendations.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(recommendations[0].keys()))
        w.writeheader()
        w.writerows(recommendations)
    charts(rows, recommendations)
    print(f"\nWrote {REPORT}/capacity.json, capacity.csv, capacity-recommendations.csv, capacity-throughput.png, capacity-cost.png")


def charts(rows, recommendations):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("note: no matplotlib (apt package python3-matplotlib): PNG charts skipped", file=sys.stderr)
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    for concurrency in sorted({r["concurrency"] for r in rows}):
        pts = [r for r in rows if r["concurrency"] == concurrency]
        ax.plot([str(r["vcpu"]) for r in pts], [r["videos_per_min"] for r in pts], marker="o", label=f"anb, {concurrency} at a time")
    ff = [r for r in rows if r["concurrency"] == 1]
    ax.plot([str(r["vcpu"]) for r in ff], [r["ffmpeg_videos_per_min"] for r in ff], marker="x", linestyle="--", label="ffmpeg, 1 at a time")
    ax.set_xlabel("task size (vCPU)")
    ax.set_ylabel("videos per minute per task")
    ax.set_title("Throughput per Fargate task size (60 s 1080p in, 30 s 720p out)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(REPORT / "capacity-throughput.png", dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(7, 4))
    priced = [r for r in recommendations if r["cost_per_1000_videos"]]
    ax.bar([f"{r['vcpu']} vCPU\n{r['fargate_memory_gb']} GB" for r in priced], [r["cost_per_1000_videos"] for r in priced])
    ax.set_ylabel("USD per 1000 videos")
    ax.set_title("Fargate cost per processed video (best concurrency per size)")
    fig.tight_layout()
    fig.savefig(REPORT / "capacity-cost.png", dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
