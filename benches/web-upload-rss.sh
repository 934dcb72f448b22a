#!/usr/bin/env bash
# Memory of `anb web` while a 300 MiB upload streams through it: the resident set is sampled
# every 20 ms from /proc. Target: it grows by under 50 MiB. Three paths are measured:
#   multipart POST /api/videos/upload into folder storage, the same into S3 (moto, multipart
#   upload), and a direct upload's PUT to the folder backend's signed /files link.
#   benches/web-upload-rss.sh [MiB, default 300]
# Writes target/bench-report/web-upload-rss.json.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib/web.sh
mib=${1:-300}
[[ -x target/release/anb ]] || cargo build --release
bench_services
trap 'bench_cleanup; [[ -n "${sampler:-}" ]] && kill "$sampler" 2>/dev/null; true' EXIT

file=target/bench-inputs/upload-${mib}m.mp4
mkdir -p target/bench-inputs target/bench-report
if [[ ! -s $file ]]; then
  { printf '\0\0\0\x20ftypisom\0\0\x02\0isomiso2avc1mp41'; head -c $((mib * 1024 * 1024)) /dev/urandom; } > "$file"
fi
size=$(stat -c %s "$file")

rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }

# Run "$@" while sampling the server's RSS; prints "baseline_kib peak_kib seconds".
measure() {
  local samples
  samples=$(mktemp)
  local baseline
  baseline=$(rss_kib "$web_pid")
  ( while kill -0 "$web_pid" 2>/dev/null; do rss_kib "$web_pid" >> "$samples"; sleep 0.02; done ) &
  sampler=$!
  local start end
  start=$(date +%s.%N)
  "$@" > /dev/null
  end=$(date +%s.%N)
  sleep 0.2
  kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true
  sampler=
  echo "$baseline $(sort -n "$samples" | tail -1) $(python3 -c "print($end - $start)")"
  rm -f "$samples"
}

multipart() {
  curl -sf -H "authorization: Bearer $token" -F "file=@$file;type=video/mp4" -F title=big "$web_url/api/videos/upload"
}

direct_put() {
  local announced url
  announced=$(curl -sf -H "authorization: Bearer $token" -H 'content-type: application/json' \
    -d "{\"title\":\"big\",\"size\":$size,\"filename\":\"big.mp4\"}" "$web_url/api/videos/uploads")
  url=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["upload_url"])' "$announced")
  curl -sf -T "$file" "$url"
}

rows=()
run_case() { # name storage-url command
  local name=$1
  export ANB_DATABASE_URL ANB_STORAGE_URL=$2 ANB_QUEUE_URL=embedded ANB_MAX_UPLOAD_BYTES=$((size + 1024 * 1024))
  ANB_DATABASE_URL=$(bench_database anb_bench_upload)
  RUST_LOG=warn bench_start_web
  token=$(bench_token "rss-$name@example.com")
  # Warm the allocator and connection pools with a small upload first, as a running server is.
  head -c 100000 "$file" > target/bench-inputs/warm.mp4
  curl -sf -H "authorization: Bearer $token" -F "file=@target/bench-inputs/warm.mp4;type=video/mp4" -F title=warm "$web_url/api/videos/upload" >/dev/null
  read -r base peak secs < <(measure "$3")
  rows+=("$name $base $peak $secs")
  kill "$web_pid"; wait "$web_pid" 2>/dev/null || true; web_pid=
}

run_case multipart-folder "file://$PWD/target/bench-web/blobs" multipart
run_case direct-put-folder "file://$PWD/target/bench-web/blobs" direct_put
bucket="anb-bench-rss-$$"
.venv/bin/python -c 'import boto3, os, sys; boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1").create_bucket(Bucket=sys.argv[1])' "$bucket"
run_case multipart-s3 "s3://$bucket/bench" multipart
rm -rf target/bench-web/blobs

printf '%s\n' "${rows[@]}" | python3 -c '
import json, sys
size = int(sys.argv[1]); report = sys.argv[2]
rows = []
print(f"anb web RSS during a {size / 2**20:.0f} MiB upload (target: growth under 50 MiB)")
print("%-20s %11s %9s %11s %7s" % ("path", "before MiB", "peak MiB", "growth MiB", "MiB/s"))
for line in sys.stdin:
    name, base, peak, secs = line.split()
    base, peak, secs = int(base) / 1024, int(peak) / 1024, float(secs)
    rows.append({"path": name, "rss_before_mib": base, "rss_peak_mib": peak, "growth_mib": peak - base, "secs": secs})
    print(f"{name:20} {base:11.1f} {peak:9.1f} {peak - base:11.1f} {size / 2**20 / secs:7.0f}")
json.dump({"upload_bytes": size, "rows": rows}, open(report, "w"), indent=2)
' "$size" target/bench-report/web-upload-rss.json
