#!/usr/bin/env bash
# End to end in the production shape, on loopback: `anb web` and `anb worker` (release build) on
# PostgreSQL, S3 and SQS (moto). A 60 s 1080p clip is uploaded through the API and the status
# polled every 100 ms until `completed`: the latency from the start of the upload to the
# processed video, and the worker's peak RSS (sampled every 20 ms). Medians of RUNS jobs, one at a
# time, with the default worker settings.
#   RUNS=3 benches/e2e-latency.sh
# Writes target/bench-report/e2e-latency.json.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib/web.sh
runs=${RUNS:-3}
[[ -x target/release/anb ]] || cargo build --release
benches/gen-inputs.sh >/dev/null
clip=target/bench-inputs/clip-60s-1080p.mp4
bench_services
worker_pid=
trap '[[ -n $worker_pid ]] && kill "$worker_pid" 2>/dev/null; bench_cleanup' EXIT

read -r queue dlq < <(.venv/bin/python - "anb-e2e-$$" <<'PY'
import boto3, json, os, sys
name = sys.argv[1]
kw = dict(endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1")
boto3.client("s3", **kw).create_bucket(Bucket=name)
sqs = boto3.client("sqs", **kw)
dlq = sqs.create_queue(QueueName=name + "-dlq")["QueueUrl"]
arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
q = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "120",
    "RedrivePolicy": json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": "3"})})["QueueUrl"]
print(q, dlq)
PY
)
export ANB_DATABASE_URL ANB_STORAGE_URL="s3://anb-e2e-$$/e2e" ANB_QUEUE_URL=$queue ANB_DLQ_URL=$dlq
ANB_DATABASE_URL=$(bench_database anb_bench_e2e)
export RUST_LOG=warn ANB_SECRET_KEY=bench-secret-key-0123456789abcdef
bench_start_web
target/release/anb worker > /dev/null 2>&1 &
worker_pid=$!
token=$(bench_token e2e@example.com)

rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
samples=$(mktemp)
( while kill -0 "$worker_pid" 2>/dev/null; do rss_kib "$worker_pid" >> "$samples"; sleep 0.02; done ) &
sampler=$!
idle_rss=$(rss_kib "$worker_pid")

results=()
for run in $(seq "$runs"); do
  start=$(date +%s.%N)
  id=$(curl -sf -H "authorization: Bearer $token" -F "file=@$clip;type=video/mp4" -F "title=e2e $run" \
    "$web_url/api/videos/upload" | python3 -c 'import json, sys; print(json.load(sys.stdin)["video_id"])')
  uploaded=$(date +%s.%N)
  status=
  for _ in $(seq 3000); do # at most 5 minutes
    status=$(curl -sf -H "authorization: Bearer $token" "$web_url/api/videos/$id" | python3 -c 'import json, sys; print(json.load(sys.stdin)["status"])')
    [[ $status == completed || $status == failed ]] && break
    sleep 0.1
  done
  done_at=$(date +%s.%N)
  [[ $status == completed ]] || { echo "run $run: $status" >&2; exit 1; }
  results+=("$(python3 -c "print($done_at - $start, $uploaded - $start)")")
  echo "  run $run: $(python3 -c "print(f'{$done_at - $start:.1f} s ({$uploaded - $start:.1f} s of it uploading)')")" >&2
done
kill "$sampler" 2>/dev/null || true
peak_rss=$(sort -n "$samples" | tail -1)
rm -f "$samples"

printf '%s\n' "${results[@]}" | python3 -c '
import json, statistics, sys
runs = [tuple(map(float, line.split())) for line in sys.stdin if line.strip()]
idle, peak, report = int(sys.argv[1]) / 1024, int(sys.argv[2]) / 1024, sys.argv[3]
latency = statistics.median(r[0] for r in runs)
upload = statistics.median(r[1] for r in runs)
print(f"Upload to completed, 60 s 1080p clip (30 s 720p out), {len(runs)} runs: median {latency:.1f} s "
      f"(upload {upload:.1f} s, queue + processing {latency - upload:.1f} s)")
print(f"Worker RSS: {idle:.0f} MiB idle, {peak:.0f} MiB peak")
json.dump({"runs": [{"latency_secs": r[0], "upload_secs": r[1]} for r in runs], "median_latency_secs": latency,
           "median_upload_secs": upload, "worker_idle_rss_mib": idle, "worker_peak_rss_mib": peak}, open(report, "w"), indent=2)
' "$idle_rss" "$peak_rss" target/bench-report/e2e-latency.json
