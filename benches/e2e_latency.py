"""The platform's latency around the pipeline, for one server (driven by benches/e2e-latency.sh).

Per run, against an idle worker: upload the clip through the API, note when the answer arrives,
poll the video until `completed`, and take
- the recorded completion (`processed_at`, written by the worker) minus the upload's answer,
- minus the pipeline's own time (`pipeline_secs` of the worker's "Job done" log line),
which leaves queue pickup, the database calls and the storage calls around the run. The time the
client saw `completed` is reported too: it adds the poll interval and the API's per-player cache.

    e2e_latency.py LABEL WEB_URL TOKEN CLIP WORKER_LOG RUNS OUT_JSON
"""

import json
import re
import statistics
import subprocess
import sys
import time
import urllib.request
from datetime import datetime

POLL_SECS = 0.05
IDLE_SECS = 1.5  # before each upload, so the worker sits in its long poll as an idle one does
JOB_TIMEOUT_SECS = 120
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def api(url, token):
    req = urllib.request.Request(url, headers={"authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)


def upload(web_url, token, clip, title):
    out = subprocess.run(
        ["curl", "-sf", "-H", f"authorization: Bearer {token}", "-F", f"file=@{clip};type=video/mp4",
         "-F", f"title={title}", f"{web_url}/api/videos/upload"],
        check=True, capture_output=True, text=True)
    return json.loads(out.stdout)["video_id"], time.time()


def timestamp(text):
    """RFC 3339 with any number of fraction digits, as seconds since the epoch."""
    m = re.fullmatch(r"(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text)
    head, frac, zone = m.groups()
    base = datetime.fromisoformat(head + ("+00:00" if zone == "Z" else zone)).timestamp()
    return base + (float("0." + frac) if frac else 0.0)


def job_done(log_path, video_id):
    """The fields of the worker's "Job done" line for this video, or None while it has none."""
    with open(log_path, errors="replace") as log:
        for line in log:
            line = ANSI.sub("", line)
            if "Job done" in line and video_id in line:
                return {k: v.strip('"') for k, v in re.findall(r"(\w+)=(\"[^\"]*\"|\S+)", line)}
    return None


def ms(secs):
    """Whole milliseconds (an int, so a value just below zero prints as 0, not -0)."""
    return round(secs * 1000)


def one_run(web_url, token, clip, log_path, n):
    time.sleep(IDLE_SECS)
    video_id, answered = upload(web_url, token, clip, f"latency {n}")
    deadline = answered + JOB_TIMEOUT_SECS
    while True:
        video = api(f"{web_url}/api/videos/{video_id}", token)
        if video["status"] in ("completed", "failed") or time.time() > deadline:
            break
        time.sleep(POLL_SECS)
    seen = time.time()
    if video["status"] != "completed":
        sys.exit(f"run {n}: video {video_id} is {video['status']}")
    done = None
    for _ in range(100):  # the log line follows the completion by a few milliseconds
        done = job_done(log_path, video_id)
        if done:
            break
        time.sleep(0.05)
    if not done:
        sys.exit(f"run {n}: no 'Job done' line for {video_id} in {log_path}")
    pipeline = float(done["pipeline_secs"])
    recorded = timestamp(video["processed_at"])
    return {
        "video_id": video_id,
        "pipeline_secs": pipeline,
        "answer_to_completed_secs": recorded - answered,
        "overhead_secs": recorded - answered - pipeline,
        "queued_secs": float(done["queued_secs"]),
        "worker_job_secs": float(done["secs"]),
        "client_saw_overhead_secs": seen - answered - pipeline,
    }


def main():
    label, web_url, token, clip, log_path, runs, out = sys.argv[1:8]
    results = []
    for n in range(1, int(runs) + 1):
        r = one_run(web_url, token, clip, log_path, n)
        results.append(r)
        print(f"  {label} run {n}: {ms(r['overhead_secs'])} ms around a {r['pipeline_secs']:.2f} s pipeline "
              f"(pickup {ms(r['queued_secs'])} ms; client saw it {ms(r['client_saw_overhead_secs'])} ms after)",
              file=sys.stderr)

    def median(key):
        return statistics.median(r[key] for r in results)

    summary = {
        "label": label,
        "runs": results,
        "median_overhead_secs": median("overhead_secs"),
        "median_queued_secs": median("queued_secs"),
        "median_pipeline_secs": median("pipeline_secs"),
        "median_client_saw_overhead_secs": median("client_saw_overhead_secs"),
    }
    with open(out, "w") as f:
        json.dump(summary, f, indent=2)
    print(f"{label}: upload answer to completed, minus the pipeline: median {ms(summary['median_overhead_secs'])} ms "
          f"over {len(results)} runs (queue pickup {ms(summary['median_queued_secs'])} ms; "
          f"seen by a client polling every {ms(POLL_SECS)} ms: {ms(summary['median_client_saw_overhead_secs'])} ms)")


if __name__ == "__main__":
    main()
