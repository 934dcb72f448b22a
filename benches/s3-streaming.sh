#!/usr/bin/env bash
# How much of a 10-minute input `anb process` fetches from S3 (moto on loopback) for the
# showcase output (the first 30 s). Target: under 25% of the object.
#   benches/s3-streaming.sh            uses target/release/anb (built if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
benches/gen-inputs.sh >/dev/null
input=target/bench-inputs/clip-600s-1080p.mp4
[[ -x target/release/anb ]] || cargo build --release
started_services=0
if [[ ! -f target/test-services.env ]]; then
  scripts/services.sh start >/dev/null
  started_services=1
fi
trap '[[ $started_services == 1 ]] && scripts/services.sh stop' EXIT
# shellcheck source=/dev/null
source target/test-services.env
bucket="anb-bench-$$"
.venv/bin/python - "$bucket" "$input" <<'PY'
import os, sys, boto3
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1")
s3.create_bucket(Bucket=sys.argv[1])
s3.upload_file(sys.argv[2], sys.argv[1], "uploads/ten.mp4")
PY
mkdir -p target/bench-report
target/release/anb process "s3://$bucket/uploads/ten.mp4" "s3://$bucket/processed/ten.mp4" --json \
  | tee target/bench-report/s3-streaming.json \
  | python3 -c 'import json, sys; r = json.load(sys.stdin); f = r["s3_bytes_fetched"]; n = r["input_size"]
print(f"fetched {f / 1e6:.1f} MB of {n / 1e6:.1f} MB from S3 ({100 * f / n:.1f}%), wall {r[\"wall_secs\"]:.1f} s")'
