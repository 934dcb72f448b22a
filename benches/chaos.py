#!/usr/bin/env python3
"""A fault soak of the production shape on loopback: PostgreSQL behind a TCP proxy that this script
cuts, moto's S3 and SQS (with a dead-letter queue after 3 receives), one `anb web` and two
`anb worker`s. For a while it uploads clips while it SIGKILLs workers at random, cuts the
database for 1-6 s every 8-15 s and kills the web once; then it heals everything, waits for
quiet, and checks that nothing was lost, doubled or stuck:

- every accepted upload ends `completed` (or `failed` with a client-fault code);
- exactly one processed object per completed video, none for the others;
- no video left `pending` or `processing`; the job queue and the dead-letter queue empty.

Bounded (every loop has a count or a deadline) and loopback only. Seeded; prints the seed.

    benches/chaos.py ANB_BINARY WORKDIR [SEED] [SOAK_SECONDS]    (benches/chaos.sh runs it)
"""
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid

import boto3

BINARY, WORKDIR = sys.argv[1], sys.argv[2]
SEED = int(sys.argv[3]) if len(sys.argv) > 3 else random.randrange(1 << 30)
SOAK = float(sys.argv[4]) if len(sys.argv) > 4 else 240.0
QUIET_WITHIN = 600.0
VISIBILITY = 20
HOST = "127.0.0.1"
rng = random.Random(SEED)
CLIENT_FAULT_CODES = {"invalid-input", "unsupported-input"}
# The end-to-end tests' quick pipeline: 3 s at 320x180, watermark, poster, ultrafast.
PIPELINE = open(os.path.join(os.path.dirname(__file__), "..", "tests", "pipelines", "quick.toml")).read()


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Proxy:
    """TCP proxy to PostgreSQL. `cut()` closes every connection and refuses new ones until `heal()`."""

    def __init__(self, target_port):
        self.target = target_port
        self.port = free_port()
        self.up = True
        self.links = set()
        self.cuts = 0

    async def start(self):
        self.server = await asyncio.start_server(self.accept, HOST, self.port)

    async def accept(self, reader, writer):
        if not self.up:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(HOST, self.target)
        except OSError:
            writer.close()
            return
        link = (writer, up_writer)
        self.links.add(link)

        async def pipe(src, dst):
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, ConnectionError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.links.discard(link)

    def cut(self):
        self.up = False
        self.cuts += 1
        for client, upstream in list(self.links):
            for w in (client, upstream):
                transport = w.transport
                if transport is not None:
                    transport.abort()  # a reset, as a failing network gives
        self.links.clear()

    def heal(self):
        self.up = True


class Processes:
    def __init__(self, env):
        self.env = env
        self.procs = {}
        self.kills = 0

    def spawn(self, name, command):
        out = open(os.path.join(WORKDIR, f"{name}.log"), "a")
        self.procs[name] = subprocess.Popen([BINARY, command], cwd=WORKDIR, env=self.env, stdout=out, stderr=out)

    def kill(self, name):
        proc = self.procs.get(name)
        if proc and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            self.kills += 1

    def stop_all(self):
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def http(base, method, path, body=None, headers=None, timeout=30):
    request = urllib.request.Request(base + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return 0, b""


def multipart(clip, title):
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\n{title}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"c.mp4\"\r\n"
            "Content-Type: video/mp4\r\n\r\n").encode() + clip + f"\r\n--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


async def main():
    log(f"seed {SEED}, soak {SOAK:.0f} s")
    admin = os.environ["TEST_ANB_POSTGRES_URL"]
    parsed = urllib.parse.urlparse(admin)
    pg_port = parsed.port or 5432
    db = f"anb_chaos_{SEED}"
    subprocess.run(["psql", admin, "-qtAc", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"], check=True, capture_output=True)
    subprocess.run(["psql", admin, "-qtAc", f"CREATE DATABASE {db}"], check=True, capture_output=True)
    direct_url = parsed._replace(path=f"/{db}").geturl()

    region = os.environ.get("AWS_REGION", "us-east-1")
    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=region)
    sqs = boto3.client("sqs", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=region)
    bucket = f"anb-chaos-{SEED}"
    s3.create_bucket(Bucket=bucket)
    dlq_url = sqs.create_queue(QueueName=f"anb-chaos-{SEED}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue_url = sqs.create_queue(QueueName=f"anb-chaos-{SEED}", Attributes={
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"}),
        "VisibilityTimeout": str(VISIBILITY)})["QueueUrl"]

    proxy = Proxy(pg_port)
    await proxy.start()
    with open(os.path.join(WORKDIR, "pipeline.toml"), "w") as f:
        f.write(PIPELINE)
    port = free_port()
    base = f"http://{HOST}:{port}"
    user = f"{parsed.username}@" if parsed.username else ""
    proxied_url = parsed._replace(netloc=f"{user}{HOST}:{proxy.port}", path=f"/{db}").geturl()
    env = dict(os.environ,
               ANB_LISTEN=f"{HOST}:{port}", ANB_DATABASE_URL=proxied_url,
               ANB_STORAGE_URL=f"s3://{bucket}/anb", ANB_QUEUE_URL=queue_url, ANB_DLQ_URL=dlq_url,
               ANB_SECRET_KEY="chaos-secret-key-0123456789abcdef-0123", ANB_PIPELINE="pipeline.toml",
               ANB_VISIBILITY_TIMEOUT_SECS=str(VISIBILITY), ANB_STALL_TIMEOUT_SECS="20", ANB_WORKER_CONCURRENCY="1",
               ANB_AWS_TIMEOUT_SECS="10", ANB_SIGNUPS_PER_HOUR="1000", RUST_LOG="info")
    processes = Processes(env)
    processes.spawn("web", "web")
    for name in ("worker-a", "worker-b"):
        processes.spawn(name, "worker")

    loop = asyncio.get_running_loop()
    call = lambda *args: loop.run_in_executor(None, lambda: http(base, *args))
    for _ in range(300):
        if (await call("GET", "/health"))[0] == 200:
            break
        await asyncio.sleep(0.2)
    else:
        raise SystemExit("anb web did not come up")
    signup = json.dumps({"email": "chaos@example.com", "password1": "chaos-pass-1", "password2": "chaos-pass-1",
                         "first_name": "Chaos", "last_name": "Soak", "city": "Cali", "country": "Colombia"}).encode()
    json_headers = {"Content-Type": "application/json"}
    for _ in range(60):
        if (await call("POST", "/api/auth/signup", signup, json_headers))[0] in (201, 400):
            break
        await asyncio.sleep(1)
    token = None
    for _ in range(60):
        status, answer = await call("POST", "/api/auth/login", json.dumps({"email": "chaos@example.com", "password": "chaos-pass-1"}).encode(), json_headers)
        if status == 200:
            token = json.loads(answer)["access_token"]
            break
        await asyncio.sleep(1)
    auth = {"Authorization": f"Bearer {token}"}
    clip = open(os.path.join(WORKDIR, "clip.mp4"), "rb").read()

    accepted, refused = [], 0
    started = time.monotonic()
    end = started + SOAK
    web_killed = False

    async def cuts():
        while time.monotonic() < end:
            await asyncio.sleep(rng.uniform(8, 15))
            if time.monotonic() >= end:
                break
            down = rng.uniform(1, 6)
            log(f"database cut for {down:.1f} s")
            proxy.cut()
            await asyncio.sleep(down)
            proxy.heal()

    async def kills():
        nonlocal web_killed
        while time.monotonic() < end:
            await asyncio.sleep(rng.uniform(10, 25))
            if time.monotonic() >= end:
                break
            if not web_killed and time.monotonic() - started > SOAK / 2:
                web_killed = True
                log("SIGKILL web")
                processes.kill("web")
                await asyncio.sleep(rng.uniform(1, 3))
                processes.spawn("web", "web")
                continue
            name = rng.choice(["worker-a", "worker-b"])
            log(f"SIGKILL {name}")
            processes.kill(name)
            await asyncio.sleep(rng.uniform(1, 3))
            processes.spawn(name, "worker")

    async def uploads():
        nonlocal refused
        n = 0
        while time.monotonic() < end:
            n += 1
            body, headers = multipart(clip, f"chaos {n}")
            status, answer = await call("POST", "/api/videos/upload", body, {**headers, **auth})
            if status == 201:
                accepted.append(json.loads(answer)["video_id"])
            else:
                refused += 1
            await asyncio.sleep(rng.uniform(5, 15))

    await asyncio.gather(cuts(), kills(), uploads())
    proxy.heal()
    for name in ("web", "worker-a", "worker-b"):
        if processes.procs[name].poll() is not None:
            processes.spawn(name, "web" if name == "web" else "worker")
    log(f"soak over: {len(accepted)} uploads accepted, {refused} refused during faults; waiting for quiet")

    def psql(sql):
        return subprocess.run(["psql", direct_url, "-qtAc", sql], check=True, capture_output=True, text=True).stdout.strip()

    def depth(url):
        a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"])["Attributes"]
        return sum(int(v) for v in a.values())

    quiet_started = time.monotonic()
    while True:
        unsettled = int(psql("SELECT count(*) FROM videos WHERE status IN ('pending', 'processing')"))
        if unsettled == 0 and depth(queue_url) == 0:
            break
        if time.monotonic() - quiet_started > QUIET_WITHIN:
            log(f"not quiet after {QUIET_WITHIN:.0f} s: {unsettled} unsettled, {depth(queue_url)} queued")
            break
        await asyncio.sleep(2)
    to_quiet = time.monotonic() - quiet_started

    rows = {}
    for line in psql("SELECT id, status, coalesce(error_code, ''), coalesce(processed_key, ''), attempts FROM videos").splitlines():
        vid, status, code, key, attempts = line.split("|")
        rows[vid] = (status, code, key, int(attempts))
    objects = {}
    listing = s3.list_objects_v2(Bucket=bucket, Prefix="anb/processed/")
    for obj in listing.get("Contents", []):
        vid = obj["Key"].rsplit("/", 1)[1].rsplit("-", 1)[0]
        objects[vid] = objects.get(vid, 0) + 1
    lost = [v for v in accepted if v not in rows]
    stuck = [v for v, r in rows.items() if r[0] in ("pending", "processing")]
    bad_failures = [v for v, r in rows.items() if r[0] == "failed" and r[1] not in CLIENT_FAULT_CODES]
    doubled = [v for v, n in objects.items() if n > 1]
    missing_output = [v for v, r in rows.items() if r[0] == "completed" and objects.get(v, 0) != 1]
    orphans = [v for v in objects if rows.get(v, ("",))[0] != "completed"]
    dead = depth(dlq_url)
    completed = sum(1 for r in rows.values() if r[0] == "completed")
    attempts = sum(r[3] for r in rows.values())
    processes.stop_all()
    proxy.server.close()
    proxy.cut()  # end the proxied connections so their tasks finish before the loop closes
    await asyncio.sleep(0.2)

    summary = {"seed": SEED, "soak_s": SOAK, "accepted": len(accepted), "refused_during_faults": refused, "completed": completed,
               "attempts": attempts, "worker_and_web_kills": processes.kills, "database_cuts": proxy.cuts,
               "time_to_quiet_s": round(to_quiet, 1), "lost": len(lost), "stuck": len(stuck), "failed_not_client_fault": len(bad_failures),
               "doubled_outputs": len(doubled), "completed_without_one_output": len(missing_output), "orphan_outputs": len(orphans),
               "dead_letters": dead}
    print(json.dumps(summary))
    ok = not (lost or stuck or bad_failures or doubled or missing_output or orphans or dead)
    if not ok:
        log(f"problems: lost {lost} stuck {stuck} failed {bad_failures} doubled {doubled} no-output {missing_output} orphans {orphans} dead {dead}")
    subprocess.run(["psql", admin, "-qtAc", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"], capture_output=True)
    return ok


if __name__ == "__main__":
    sys.exit(0 if asyncio.run(main()) else 1)
