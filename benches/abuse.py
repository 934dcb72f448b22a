#!/usr/bin/env python3
"""Attack `anb serve` on loopback the way a hostile client would, and print one line per attack:
status counts, the server's RSS growth, the worst `/health` latency during the attack, and
whether the server is still alive. Bounded: every attack has a fixed number of clients and a
fixed duration, and everything targets 127.0.0.1.

The server runs behind one trusted proxy hop (ANB_TRUSTED_PROXY_HOPS=1, as behind the ALB), and
the floods send a different X-Forwarded-For address with every request: a distributed attack,
the case where per-address rate limits do not help and the password-hashing bound must.

    benches/abuse.py ANB_BINARY WORKDIR [RUNS]     (benches/abuse.sh runs it)

Targets (issue 20): RSS growth < 150 MB for the floods, < 50 MB for the rest; /health max
latency < 1 s; no 5xx but 503; alive; the right counts. Medians over the runs.
"""
import asyncio
import collections
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid

BINARY, WORKDIR = sys.argv[1], sys.argv[2]
RUNS = int(sys.argv[3]) if len(sys.argv) > 3 else 3
HOST = "127.0.0.1"
FLOODS = {"login flood", "login flood (one address)", "signup flood"}


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, workdir, clip):
        self.port = free_port()
        self.dir = workdir
        env = dict(os.environ, ANB_LISTEN=f"{HOST}:{self.port}", ANB_TRUSTED_PROXY_HOPS="1",
                   ANB_SECRET_KEY="abuse-bench-secret-key-0123456789abcdef", RUST_LOG="warn")
        self.log = open(os.path.join(workdir, "serve.log"), "w")
        self.proc = subprocess.Popen([BINARY, "serve"], cwd=workdir, env=env, stdout=self.log, stderr=self.log)
        self.clip = clip

    def rss_mb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


async def http(port, method, path, headers=None, body=b"", timeout=30.0):
    """One request on its own connection; (status, body bytes). Status 0: the connection failed."""
    headers = dict(headers or {})
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), timeout)
    except (OSError, asyncio.TimeoutError):
        return 0, b""
    try:
        head = f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n"
        if isinstance(body, (bytes, bytearray)):
            headers.setdefault("Content-Length", str(len(body)))
        else:
            headers["Transfer-Encoding"] = "chunked"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        writer.write(head.encode())
        if isinstance(body, (bytes, bytearray)):
            writer.write(body)
        else:
            async for chunk in body:
                writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                await writer.drain()
            writer.write(b"0\r\n\r\n")
        await writer.drain()
    except (OSError, ConnectionError):
        pass  # the server stopped reading: its answer may still be there
    try:
        raw = await asyncio.wait_for(reader.read(), timeout)
    except (OSError, asyncio.TimeoutError, ConnectionError):
        raw = b""
    finally:
        writer.close()
    if not raw.startswith(b"HTTP/1.1 "):
        return 0, b""
    status = int(raw[9:12])
    return status, raw.split(b"\r\n\r\n", 1)[-1]


def xff():
    return {"X-Forwarded-For": f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"}


def json_body(value):
    return {"Content-Type": "application/json"}, json.dumps(value).encode()


async def signup_login(port, email):
    headers, body = json_body({"email": email, "password1": "abuse-pass-1", "password2": "abuse-pass-1",
                               "first_name": "Abuse", "last_name": email.split("@")[0], "city": "Cali", "country": "Colombia"})
    status, _ = await http(port, "POST", "/api/auth/signup", {**headers, **xff()}, body)
    assert status == 201, status
    headers, body = json_body({"email": email, "password": "abuse-pass-1"})
    status, answer = await http(port, "POST", "/api/auth/login", {**headers, **xff()}, body)
    assert status == 200, (status, answer)
    return json.loads(answer)["access_token"]


def multipart(fields, boundary="abuseboundary"):
    out = b""
    for name, (filename, data) in fields.items():
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
    return {"Content-Type": f"multipart/form-data; boundary={boundary}"}, out + f"--{boundary}--\r\n".encode()


async def during(server, attack):
    """Run `attack` while probing /health every 50 ms; (result, worst latency in ms)."""
    worst = 0.0
    done = asyncio.Event()

    async def probe():
        nonlocal worst
        while not done.is_set():
            started = time.monotonic()
            status, _ = await http(server.port, "GET", "/health", timeout=10)
            latency = (time.monotonic() - started) * 1000 if status == 200 else 10_000.0
            worst = max(worst, latency)
            await asyncio.sleep(0.05)

    prober = asyncio.create_task(probe())
    try:
        result = await attack
    finally:
        done.set()
        await prober
    return result, worst


async def flood(port, clients, seconds, make_request):
    counts = collections.Counter()
    deadline = time.monotonic() + seconds

    async def client():
        while time.monotonic() < deadline:
            status, _ = await make_request()
            counts[status] += 1

    await asyncio.gather(*(client() for _ in range(clients)))
    return counts, None


async def login_flood(server, ctx, spread=True):
    headers, body = json_body({"email": "nobody@example.com", "password": "wrong-password"})

    async def one():
        email = f"n{random.randrange(10**9)}@example.com"
        h, b = json_body({"email": email, "password": "wrong-password"})
        return await http(server.port, "POST", "/api/auth/login", {**h, **(xff() if spread else {})}, b)

    return await flood(server.port, 120, 15, one)


async def signup_flood(server, ctx):
    async def one():
        h, b = json_body({"email": f"s{uuid.uuid4().hex}@example.com", "password1": "abuse-pass-1", "password2": "abuse-pass-1",
                          "first_name": "S", "last_name": "F", "city": "Cali", "country": "Colombia"})
        return await http(server.port, "POST", "/api/auth/signup", {**h, **xff()}, b)

    return await flood(server.port, 60, 10, one)


async def big_title(server, ctx):
    async def stream():
        yield b"--abuseboundary\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\n"
        for _ in range(64):
            yield b"t" * (1 << 20)
            await asyncio.sleep(0)
        yield b"\r\n--abuseboundary--\r\n"

    headers = {"Content-Type": "multipart/form-data; boundary=abuseboundary", "Authorization": f"Bearer {ctx['token']}"}
    status, _ = await http(server.port, "POST", "/api/videos/upload", headers, stream())
    return collections.Counter([status]), "413 expected" if status != 413 else None


async def huge_fields(server, ctx):
    counts = collections.Counter()
    for i in range(10):
        h, b = json_body({"email": f"big{i}@example.com", "password1": "abuse-pass-1", "password2": "abuse-pass-1",
                          "first_name": "A" * (1 << 20), "last_name": "B", "city": "C" * (1 << 20), "country": "Colombia"})
        counts[(await http(server.port, "POST", "/api/auth/signup", {**h, **xff()}, b))[0]] += 1
    # 0: the server answered 413 and closed before the whole body was sent (the client then
    # sees a reset instead of the answer): refused all the same.
    return counts, None if set(counts) <= {413, 0} else "413 expected"


async def nul_bytes(server, ctx):
    counts = collections.Counter()
    for i in range(10):
        h, b = json_body({"email": f"nul{i}@example.com", "password1": "abuse-pass-1", "password2": "abuse-pass-1",
                          "first_name": "Nu\u0000l", "last_name": "B", "city": "Ca\u0000li", "country": "Colombia"})
        counts[(await http(server.port, "POST", "/api/auth/signup", {**h, **xff()}, b))[0]] += 1
        h, b = multipart({"title": (None, b"ti\x00tle"), "file": ("c.mp4", open(server.clip, "rb").read())})
        counts[(await http(server.port, "POST", "/api/videos/upload", {**h, "Authorization": f"Bearer {ctx['token']}"}, b))[0]] += 1
    return counts, None if set(counts) == {422} else "422 expected"


async def slowloris(server, ctx, connections=400, seconds=40):
    """Connections that send a header line every 5 s and never finish; how many the server closed."""
    closed_after = []

    async def one():
        started = time.monotonic()
        try:
            reader, writer = await asyncio.open_connection(HOST, server.port)
        except OSError:
            return
        try:
            writer.write(f"GET /health HTTP/1.1\r\nHost: {HOST}\r\n".encode())
            while time.monotonic() - started < seconds:
                try:
                    data = await asyncio.wait_for(reader.read(1024), 5)
                    if not data:
                        closed_after.append(time.monotonic() - started)
                        return
                except asyncio.TimeoutError:
                    writer.write(b"X-Slow: 1\r\n")
                    await writer.drain()
        except (OSError, ConnectionError):
            closed_after.append(time.monotonic() - started)
        finally:
            writer.close()

    await asyncio.gather(*(one() for _ in range(connections)))
    counts = collections.Counter({"closed by server": len(closed_after), "still open": connections - len(closed_after)})
    if closed_after:
        counts[f"median close s:{statistics.median(closed_after):.1f}"] = 0
    return counts, None if len(closed_after) == connections else "connections left open"


async def slow_uploads(server, ctx, uploads=50, seconds=40):
    """Uploads that trickle 1 KB every 2 s (one account)."""
    counts = collections.Counter()
    clip = open(server.clip, "rb").read()[:4096]

    async def one():
        started = time.monotonic()
        try:
            reader, writer = await asyncio.open_connection(HOST, server.port)
        except OSError:
            counts["connect failed"] += 1
            return
        head = (f"POST /api/videos/upload HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer {ctx['token']}\r\n"
                f"Content-Type: multipart/form-data; boundary=abuseboundary\r\nContent-Length: {10 << 20}\r\n\r\n")
        first = b'--abuseboundary\r\nContent-Disposition: form-data; name="file"; filename="c.mp4"\r\n\r\n' + clip
        try:
            writer.write(head.encode() + first)
            while time.monotonic() - started < seconds:
                try:
                    data = await asyncio.wait_for(reader.read(1024), 2)
                    counts[int(data[9:12]) if data.startswith(b"HTTP/1.1 ") else "closed"] += 1
                    return
                except asyncio.TimeoutError:
                    writer.write(b"x" * 1024)
                    await writer.drain()
            counts["still sending at the end"] += 1
        except (OSError, ConnectionError):
            counts["cut"] += 1
        finally:
            writer.close()

    await asyncio.gather(*(one() for _ in range(uploads)))
    return counts, None


async def long_cities(server, ctx, queries=5000, clients=32):
    counts = collections.Counter()
    todo = list(range(queries))

    async def client():
        while todo:
            todo.pop()
            city = "".join(random.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(100))
            counts[(await http(server.port, "GET", f"/api/public/rankings?city={city}"))[0]] += 1

    await asyncio.gather(*(client() for _ in range(clients)))
    return counts, None if set(counts) == {200} else "200 expected"


async def double_votes(server, ctx):
    video, tokens = ctx["video"], ctx["voters"]
    results = await asyncio.gather(*(http(server.port, "POST", f"/api/public/videos/{video}/vote", {"Authorization": f"Bearer {t}", **xff()})
                                     for t in tokens for _ in range(2)))
    counts = collections.Counter(status for status, _ in results)
    _, page = await http(server.port, "GET", "/api/public/videos?page_size=100")
    total = next(v["votes"] for v in json.loads(page) if v["video_id"] == video)
    return counts, None if (total == len(tokens) and counts[200] == len(tokens)) else f"{total} votes counted for {len(tokens)} voters"


async def re_put(server, ctx):
    size = os.path.getsize(server.clip)
    data = open(server.clip, "rb").read()
    h, b = json_body({"title": "direct", "size": size, "filename": "c.mp4"})
    status, answer = await http(server.port, "POST", "/api/videos/uploads", {**h, "Authorization": f"Bearer {ctx['token']}"}, b)
    announced = json.loads(answer)
    path = announced["upload_url"].split(f":{server.port}", 1)[1]
    counts = collections.Counter()
    counts[f"first PUT {(await http(server.port, 'PUT', path, {}, data))[0]}"] += 1
    status, _ = await http(server.port, "POST", announced["complete_url"], {"Authorization": f"Bearer {ctx['token']}"})
    counts[f"complete {status}"] += 1
    counts[f"PUT after complete {(await http(server.port, 'PUT', path, {}, data[::-1]))[0]}"] += 1
    return counts, None if counts["PUT after complete 409"] == 1 else "409 expected"


ATTACKS = [
    ("login flood", login_flood),
    ("login flood (one address)", lambda s, c: login_flood(s, c, spread=False)),
    ("signup flood", signup_flood),
    ("64 MiB chunked title", big_title),
    ("1 MiB profile fields", huge_fields),
    ("NUL bytes", nul_bytes),
    ("400 slowloris connections", slowloris),
    ("50 slow upload bodies", slow_uploads),
    ("5,000 long city queries", long_cities),
    ("50 users voting twice", double_votes),
    ("re-PUT after complete", re_put),
]


async def setup(server):
    for _ in range(100):
        if (await http(server.port, "GET", "/health", timeout=2))[0] == 200:
            break
        await asyncio.sleep(0.1)
    owner = await signup_login(server.port, "owner@example.com")
    h, b = multipart({"title": (None, b"a dunk"), "file": ("c.mp4", open(server.clip, "rb").read())})
    status, answer = await http(server.port, "POST", "/api/videos/upload", {**h, "Authorization": f"Bearer {owner}"}, b)
    assert status == 201, (status, answer)
    video = json.loads(answer)["video_id"]
    for _ in range(600):
        _, detail = await http(server.port, "GET", f"/api/videos/{video}", {"Authorization": f"Bearer {owner}"})
        if json.loads(detail)["status"] == "completed":
            break
        await asyncio.sleep(0.1)
    voters = await asyncio.gather(*(signup_login(server.port, f"voter{i}@example.com") for i in range(50)))
    attacker = await signup_login(server.port, "attacker@example.com")
    return {"token": attacker, "video": video, "voters": voters}


async def one_run(run, clip):
    workdir = os.path.join(WORKDIR, f"run{run}")
    os.makedirs(workdir, exist_ok=True)
    server = Server(workdir, clip)
    lines = []
    try:
        ctx = await setup(server)
        for name, attack in ATTACKS:
            await asyncio.sleep(1)  # let the previous attack's connections close
            before = server.rss_mb()
            (counts, problem), worst = await during(server, attack(server, ctx))
            after = server.rss_mb() if server.alive() else float("nan")
            fives = sum(n for status, n in counts.items() if isinstance(status, int) and status >= 500 and status != 503)
            lines.append({"attack": name, "counts": {str(k): v for k, v in sorted(counts.items(), key=str)},
                          "rss_growth_mb": round(after - before, 1), "rss_mb": round(after, 1),
                          "health_max_ms": round(worst, 1), "alive": server.alive(), "other_5xx": fives, "problem": problem})
    finally:
        server.stop()
    return lines


def main():
    clip = os.path.join(WORKDIR, "clip.mp4")
    subprocess.run([os.path.join(os.path.dirname(__file__), "..", "scripts", "make-sample.sh"), clip, "2", "320x240"], check=True)
    runs = []
    for run in range(RUNS):
        print(f"run {run + 1} of {RUNS}", file=sys.stderr)
        runs.append(asyncio.run(one_run(run, clip)))
    report = []
    print(f"{'attack':28} {'statuses (last run)':58} {'RSS +MB':>8} {'health max ms':>13} {'alive':>6} {'ok':>4}")
    for i, (name, _) in enumerate(ATTACKS):
        lines = [r[i] for r in runs]
        growth = statistics.median(l["rss_growth_mb"] for l in lines)
        worst = statistics.median(l["health_max_ms"] for l in lines)
        alive = all(l["alive"] for l in lines)
        limit = 150 if name in FLOODS else 50
        ok = alive and growth < limit and worst < 1000 and all(l["other_5xx"] == 0 and not l["problem"] for l in lines)
        counts = " ".join(k if k.startswith("median") else f"{k}:{v}" for k, v in lines[-1]["counts"].items())
        note = "; ".join(sorted({l["problem"] for l in lines if l["problem"]}))
        print(f"{name:28} {counts[:58]:58} {growth:8.1f} {worst:13.1f} {str(alive):>6} {'yes' if ok else 'NO':>4} {note}")
        report.append({"attack": name, "rss_growth_mb_median": growth, "health_max_ms_median": worst, "alive": alive, "ok": ok, "runs": lines})
    out = os.path.join("target", "bench-report")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "abuse.json"), "w") as f:
        json.dump(report, f, indent=1)
    sys.exit(0 if all(r["ok"] for r in report) else 1)


if __name__ == "__main__":
    main()
