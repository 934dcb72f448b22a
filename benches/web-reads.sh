#!/usr/bin/env bash
# Throughput of the public read routes of `anb web` on PostgreSQL seeded with 1,000 players (one
# completed video each) and 10,000 votes, driven by wrk on loopback at 64 connections.
# Target: at least 5,000 req/s per route with p99 under 50 ms on a 2-core machine.
#   benches/web-reads.sh [seconds per run, default 10] [runs, default 3]
# Prints the median run per route and writes target/bench-report/web-reads.json.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib/web.sh
duration=${1:-10}
runs=${2:-3}
scripts/install-deps.sh deploy/packages/bench.txt
[[ -x target/release/anb ]] || cargo build --release
bench_services
trap bench_cleanup EXIT

db_url=$(bench_database anb_bench_web)
psql "$db_url" -qtA <<'SQL' >/dev/null
-- 1,000 players in 20 cities, each with one completed video; each player votes for 10 others'
-- videos: 10,000 votes.
INSERT INTO users (id, email, password_hash, first_name, last_name, city, country, created_at)
SELECT gen_random_uuid(), 'player' || i || '@example.com', 'not-a-hash', 'Player', 'N' || i,
       'City ' || (i % 20), 'Colombia', now() - i * interval '1 minute'
FROM generate_series(1, 1000) AS i;
INSERT INTO videos (id, user_id, title, status, original_key, original_size, processed_key,
                    uploaded_at, processed_at, enqueued_at, updated_at)
SELECT gen_random_uuid(), id, 'Clip of ' || last_name, 'completed', 'uploads/' || id || '.mp4', 1000,
       'processed/' || id || '.mp4', created_at, created_at, created_at, created_at
FROM users;
WITH numbered AS (SELECT id, user_id, row_number() OVER (ORDER BY id) - 1 AS n FROM videos),
     voters AS (SELECT id AS voter, row_number() OVER (ORDER BY id) - 1 AS n FROM users)
INSERT INTO votes (video_id, user_id, created_at)
SELECT v.id, voters.voter, now()
FROM voters CROSS JOIN generate_series(1, 10) AS k
JOIN numbered v ON v.n = (voters.n * 7 + k * k * 13) % 1000
WHERE v.user_id <> voters.voter
ON CONFLICT DO NOTHING;
ANALYZE;
SQL
votes=$(psql "$db_url" -qtAc 'SELECT count(*) FROM votes')
players=$(psql "$db_url" -qtAc 'SELECT count(*) FROM users')

export ANB_DATABASE_URL=$db_url ANB_STORAGE_URL="file://$PWD/target/bench-web/blobs" ANB_QUEUE_URL=embedded
export RUST_LOG=${RUST_LOG:-warn}
bench_start_web

report=target/bench-report/web-reads.json
mkdir -p target/bench-report
results=()
for route in /api/public/rankings /api/public/videos "/api/public/rankings?city=City%207&page=2&page_size=20"; do
  curl -sf "$web_url$route" >/dev/null || { echo "GET $route failed" >&2; exit 1; }
  for run in $(seq "$runs"); do
    out=$(wrk -t2 -c64 -d"${duration}s" --latency "$web_url$route")
    results+=("$(python3 - "$route" "$run" "$out" <<'PY'
import json, re, sys
route, run, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def ms(text):
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
p50 = ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
p99 = ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
sock = re.search(r"Socket errors: (.*)", out)
print(json.dumps({"route": route, "run": run, "rps": rps, "p50_ms": p50, "p99_ms": p99,
                  "non_2xx": int(errors.group(1)) if errors else 0, "socket_errors": sock.group(1) if sock else None}))
PY
)")
  done
done
printf '%s\n' "${results[@]}" | python3 - "$report" "$players" "$votes" "$duration" <<'PY'
import json, statistics, sys
report, players, votes, duration = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
runs = [json.loads(line) for line in sys.stdin if line.strip()]
routes = {}
for r in runs:
    routes.setdefault(r["route"], []).append(r)
summary = []
print(f"anb web on PostgreSQL, {players} players, {votes} votes; wrk -t2 -c64, {duration} s x {len(runs) // len(routes)} runs (median)")
print(f"{'route':58} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
for route, rs in routes.items():
    row = {"route": route, "rps": statistics.median(r["rps"] for r in rs),
           "p50_ms": statistics.median(r["p50_ms"] for r in rs), "p99_ms": statistics.median(r["p99_ms"] for r in rs),
           "errors": sum(r["non_2xx"] for r in rs), "runs": rs}
    summary.append(row)
    print(f"{route:58} {row['rps']:9.0f} {row['p50_ms']:8.2f} {row['p99_ms']:8.2f} {row['errors']:7d}")
json.dump({"players": players, "votes": votes, "connections": 64, "duration_secs": duration, "routes": summary},
          open(report, "w"), indent=2)
PY
