#!/usr/bin/env bash
# `anb web` under load on loopback: PostgreSQL seeded with 1,000 players (one completed video
# each) and 10,000 votes; wrk (installed from apt) drives the public reads (rankings, videos)
# and the authenticated reads at 64 connections (one player's list and one of their videos, as an
# app polls them; and the list of 200 players in turn, so most reads miss the per-player cache),
# and uploads (a 256 KiB clip, multipart, into folder storage) at 16. Targets on a 2-core machine
# (wrk shares the cores with the server and PostgreSQL): public reads at least 5,000 req/s with
# p99 under 50 ms; a player's own reads at least 10,000 req/s with p99 under 20 ms.
#   benches/web-load.sh [seconds per run, default 10] [runs, default 3]
# Prints the median run per route and writes target/bench-report/web-load.json.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib/web.sh
duration=${1:-10}
runs=${2:-3}
scripts/install-deps.sh deploy/packages/bench.txt
[[ -x target/release/anb ]] || cargo build --release
bench_services
trap 'bench_cleanup; rm -rf "${work:-}" target/bench-web' EXIT

db_url=$(bench_database anb_bench_web)
psql "$db_url" -qtA <<'SQL' >/dev/null
-- 1,000 players in 20 cities, each with one completed video, and 10,000 votes.
INSERT INTO users (id, email, password_hash, first_name, last_name, city, country, created_at)
SELECT gen_random_uuid(), 'player' || i || '@example.com', 'not-a-hash', 'Player', 'N' || i,
       'City ' || (i % 20), 'Colombia', now() - i * interval '1 minute'
FROM generate_series(1, 1000) AS i;
INSERT INTO videos (id, user_id, title, status, original_key, original_size, processed_key,
                    uploaded_at, processed_at, enqueued_at, updated_at)
SELECT gen_random_uuid(), id, 'Clip of ' || last_name, 'completed', 'uploads/' || id || '.mp4', 1000,
       'processed/' || id || '.mp4', created_at, created_at, created_at, created_at
FROM users;
-- Player n votes for the videos of players n+38, n+75, ... (k * 37 + 1 ahead, modulo 1,000):
-- ten distinct videos, never their own.
WITH players AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM users),
     clips AS (SELECT v.id, p.n FROM videos v JOIN players p ON p.id = v.user_id)
INSERT INTO votes (video_id, user_id, created_at)
SELECT c.id, p.id, now()
FROM players p CROSS JOIN generate_series(1, 10) AS k
JOIN clips c ON c.n = (p.n + k * 37 + 1) % 1000;
ANALYZE;
SQL
votes=$(psql "$db_url" -qtAc 'SELECT count(*) FROM votes')
players=$(psql "$db_url" -qtAc 'SELECT count(*) FROM users')

export ANB_DATABASE_URL=$db_url ANB_STORAGE_URL="file://$PWD/target/bench-web/blobs" ANB_QUEUE_URL=embedded
export RUST_LOG=${RUST_LOG:-warn}
# wrk's 16 upload connections share one account: let it have that many uploads at once; and the
# 200 players of the many-players case log in from one address.
export ANB_UPLOADS_PER_ACCOUNT=16 ANB_LOGIN_ATTEMPTS_PER_MINUTE=1000
bench_start_web
token=$(bench_token load@example.com)
# The authenticated player has ten completed videos of their own.
psql "$db_url" -qtA >/dev/null <<'SQL'
INSERT INTO videos (id, user_id, title, status, original_key, original_size, processed_key, uploaded_at, processed_at, enqueued_at, updated_at)
SELECT gen_random_uuid(), u.id, 'Mine ' || i, 'completed', 'uploads/mine-' || i || '.mp4', 1000, 'processed/mine-' || i || '.mp4', now(), now(), now(), now()
FROM users u, generate_series(1, 10) AS i WHERE u.email = 'load@example.com';
-- 200 of the seeded players get the same password, to log in below.
UPDATE users SET password_hash = (SELECT password_hash FROM users WHERE email = 'load@example.com')
WHERE email IN (SELECT 'player' || i || '@example.com' FROM generate_series(1, 200) AS i);
SQL
mine=$(psql "$db_url" -qtAc "SELECT v.id FROM videos v JOIN users u ON u.id = v.user_id WHERE u.email = 'load@example.com' LIMIT 1")

# The upload request: a multipart form built once, sent by wrk's Lua hook.
work=$(mktemp -d)
python3 - "$work/upload.body" <<'PY'
import os, sys
clip = b"\0\0\0 ftypisom\0\0\x02\0isomiso2avc1mp41" + os.urandom(256 * 1024)
b = b"anbbenchboundary"
body = (b"--" + b + b'\r\nContent-Disposition: form-data; name="title"\r\n\r\nload test\r\n'
        + b"--" + b + b'\r\nContent-Disposition: form-data; name="file"; filename="clip.mp4"\r\nContent-Type: video/mp4\r\n\r\n'
        + clip + b"\r\n--" + b + b"--\r\n")
open(sys.argv[1], "wb").write(body)
PY
cat > "$work/upload.lua" <<LUA
local f = io.open("$work/upload.body", "rb")
wrk.method = "POST"
wrk.body = f:read("*all")
f:close()
wrk.headers["Content-Type"] = "multipart/form-data; boundary=anbbenchboundary"
wrk.headers["Authorization"] = "Bearer $token"
LUA
cat > "$work/auth.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $token"
LUA
# Tokens of 200 players, each request the next one's.
python3 - "$web_url" > "$work/tokens" <<'PY'
import json, sys, urllib.request
from concurrent.futures import ThreadPoolExecutor
def login(i):
    body = json.dumps({"email": f"player{i}@example.com", "password": "bench-pass-1"}).encode()
    request = urllib.request.Request(sys.argv[1] + "/api/auth/login", body, {"content-type": "application/json"})
    return json.load(urllib.request.urlopen(request, timeout=30))["access_token"]
with ThreadPoolExecutor(4) as pool:
    print("\n".join(pool.map(login, range(1, 201))))
PY
[[ $(wc -l < "$work/tokens") == 200 ]] || { echo "200 players could not log in" >&2; exit 1; }
cat > "$work/players.lua" <<LUA
local tokens = {}
for line in io.lines("$work/tokens") do tokens[#tokens + 1] = line end
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", nil, { ["Authorization"] = "Bearer " .. tokens[i % #tokens + 1] })
end
LUA

report=target/bench-report/web-load.json
mkdir -p target/bench-report
results=()
# label|path|connections|wrk script
cases=(
  "/api/public/rankings|/api/public/rankings|64|"
  "/api/public/videos|/api/public/videos|64|"
  "/api/public/rankings?city=City%207&page=2&page_size=20|/api/public/rankings?city=City%207&page=2&page_size=20|64|"
  "/api/videos|/api/videos|64|$work/auth.lua"
  "/api/videos/{id}|/api/videos/$mine|64|$work/auth.lua"
  "/api/videos (200 players in turn)|/api/videos|64|$work/players.lua"
  "/api/videos/upload|/api/videos/upload|16|$work/upload.lua"
)
for case in "${cases[@]}"; do
  IFS='|' read -r route path connections script <<<"$case"
  script_args=()
  [[ -n $script ]] && script_args=(-s "$script")
  [[ $path == /api/videos/upload ]] || curl -sf -H "authorization: Bearer $token" "$web_url$path" >/dev/null \
    || { echo "GET $path failed" >&2; exit 1; }
  for run in $(seq "$runs"); do
    out=$(wrk -t2 -c"$connections" -d"${duration}s" --latency "${script_args[@]}" "$web_url$path")
    results+=("$(python3 - "$route" "$run" "$out" "$connections" <<'PY'
import json, re, sys
route, run, out, connections = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
def ms(text):
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
p50 = ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
p99 = ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
sock = re.search(r"Socket errors: (.*)", out)
print(json.dumps({"route": route, "run": run, "connections": connections, "rps": rps, "p50_ms": p50, "p99_ms": p99,
                  "non_2xx": int(errors.group(1)) if errors else 0, "socket_errors": sock.group(1) if sock else None}))
PY
)")
  done
done
printf '%s\n' "${results[@]}" > "$work/runs.jsonl"
python3 - "$report" "$players" "$votes" "$duration" "$work/runs.jsonl" <<'PY'
import json, statistics, sys
report, players, votes, duration = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
runs = [json.loads(line) for line in open(sys.argv[5]) if line.strip()]
routes = {}
for r in runs:
    routes.setdefault(r["route"], []).append(r)
summary = []
print(f"anb web on PostgreSQL, {players} players, {votes} votes; wrk -t2, {duration} s x {len(runs) // len(routes)} runs (median)")
print(f"{'route':58} {'conns':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
for route, rs in routes.items():
    row = {"route": route, "connections": rs[0]["connections"], "rps": statistics.median(r["rps"] for r in rs),
           "p50_ms": statistics.median(r["p50_ms"] for r in rs), "p99_ms": statistics.median(r["p99_ms"] for r in rs),
           "errors": sum(r["non_2xx"] for r in rs), "runs": rs}
    summary.append(row)
    print(f"{route:58} {row['connections']:5d} {row['rps']:9.0f} {row['p50_ms']:8.2f} {row['p99_ms']:8.2f} {row['errors']:7d}")
json.dump({"players": players, "votes": votes, "duration_secs": duration, "routes": summary},
          open(report, "w"), indent=2)
PY
