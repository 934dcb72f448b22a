#!/usr/bin/env bash
# What the platform adds around the pipeline, for an idle worker: from the upload's answer to the
# recorded `completed`, minus the pipeline's own time (queue pickup, database and storage calls),
# on loopback in both shapes:
#   embedded  `anb serve` on its defaults (SQLite, data/blobs, the embedded queue), as `make run`
#   postgres  `anb web` + `anb worker` on PostgreSQL, S3 and SQS (moto), as on AWS
# Medians of RUNS jobs per shape (default 5), a 10 s 1080p clip each (benches/e2e_latency.py).
# Target: ≤ 0.5 s median each. Writes target/bench-report/e2e-latency.json.
#   RUNS=5 benches/e2e-latency.sh [embedded|postgres]...
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
source benches/lib/web.sh
runs=${RUNS:-5}
shapes=("$@")
[[ ${#shapes[@]} -gt 0 ]] || shapes=(embedded postgres)
[[ -x target/release/anb ]] || cargo build --release --bin anb
clip=target/bench-inputs/clip-10s-1080p.mp4
mkdir -p target/bench-inputs target/bench-report
[[ -s $clip ]] || scripts/make-sample.sh "$clip" 10 1920x1080
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  bench_cleanup
  rm -rf "$work"
}
trap cleanup EXIT
# The worker's "Job done" lines carry the pipeline's time; plain text, no colours.
export RUST_LOG=warn,anb_worker=info NO_COLOR=1 ANB_PIPELINE=$root/pipeline.toml
export ANB_SECRET_KEY=bench-secret-key-0123456789abcdef

embedded() {
  local port log=$work/serve.log
  port=$(bench_free_port)
  web_url="http://127.0.0.1:$port"
  mkdir -p "$work/serve"
  (cd "$work/serve" && exec env ANB_LISTEN="127.0.0.1:$port" "$root/target/release/anb" serve > "$log" 2>&1) &
  pids+=($!)
  bench_wait_for_web
  token=$(bench_token latency@example.com)
  python3 benches/e2e_latency.py embedded "$web_url" "$token" "$clip" "$log" "$runs" "$work/embedded.json"
}

postgres() {
  local log=$work/worker.log queue dlq name="anb-latency-$$"
  bench_services
  read -r queue dlq < <(.venv/bin/python - "$name" <<'PY'
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
  ANB_DATABASE_URL=$(bench_database anb_bench_latency)
  export ANB_DATABASE_URL ANB_STORAGE_URL="s3://$name/latency" ANB_QUEUE_URL=$queue ANB_DLQ_URL=$dlq
  bench_start_web
  target/release/anb worker > "$log" 2>&1 &
  pids+=($!)
  token=$(bench_token latency@example.com)
  python3 benches/e2e_latency.py postgres "$web_url" "$token" "$clip" "$log" "$runs" "$work/postgres.json"
}

for shape in "${shapes[@]}"; do
  case $shape in
    embedded) embedded ;;
    postgres) postgres ;;
    *) echo "unknown shape: $shape (embedded or postgres)" >&2; exit 2 ;;
  esac
done
python3 - "$work" target/bench-report/e2e-latency.json "${shapes[@]}" <<'PY'
import json, sys
work, out, shapes = sys.argv[1], sys.argv[2], sys.argv[3:]
json.dump({s: json.load(open(f"{work}/{s}.json")) for s in shapes}, open(out, "w"), indent=2)
PY
