"""Send each hostile file to `anb serve` on loopback and measure how it is refused.

Per file: the error code and message, seconds from the upload's answer to the video's `failed`
(an upper bound on the time from the job's start: it includes the queue pickup), and the
server's peak RSS (VmHWM: the web and the worker are one process). Then `anb process` on each
file alone under /usr/bin/time: wall seconds and peak RSS. Bounded: every wait has a deadline.
"""
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

BINARY, WORK, RUNS, REPO = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
HOST = "127.0.0.1"

FILES = [
    ("8k.mp4", "7680×4320, 30 fps (H.264)", "-f lavfi -i color=s=7680x4320:r=30:d=0.1 -c:v libx264 -preset ultrafast"),
    ("1000fps.mp4", "2×2 at 1000 fps, 2 s", "-f lavfi -i color=s=2x2:r=1000:d=2 -c:v libx264 -preset ultrafast"),
    ("16-audio.mp4", "1 video + 16 audio tracks",
     "-f lavfi -i color=s=160x90:r=10:d=1 -f lavfi -i sine=d=1 -map 0:v" + " -map 1:a" * 16 + " -c:v libx264 -c:a aac"),
    ("billion.mp4", "moov claims 10^9 samples", "-f lavfi -i color=s=160x90:r=10:d=1 -c:v libx264 -preset ultrafast"),
    ("playlist.mp4", "HLS playlist renamed .mp4", None),
    ("1000fps.mkv", "2×2 at 1000 fps in Matroska", "-f lavfi -i color=s=2x2:r=1000:d=2 -c:v libx264 -preset ultrafast"),
    ("phone.mov", "3840×2160 60 fps HEVC phone clip, 2 s (must complete)",
     "-f lavfi -i color=c=orange:s=3840x2160:r=60:d=2,drawbox=x=t*1500:y=500:w=300:h=300:c=blue:t=fill "
     "-f lavfi -i sine=d=2 -c:v libx265 -preset ultrafast -x265-params log-level=error -tag:v hvc1 -c:a aac -shortest"),
]


def make_files(folder):
    for name, _, args in FILES:
        path = os.path.join(folder, name)
        if args is None:
            with open(path, "w") as f:
                f.write("#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nhttp://127.0.0.1:9/segment.ts\n#EXT-X-ENDLIST\n")
            continue
        subprocess.run(["ffmpeg", "-v", "error", "-y", *args.split(), path], check=True)
        if name == "billion.mp4":
            data = bytearray(open(path, "rb").read())
            at = data.find(b"stsz")
            data[at + 12:at + 16] = (1_000_000_000).to_bytes(4, "big")
            open(path, "wb").write(data)


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def request(port, method, path, body=None, headers=None, timeout=30):
    req = urllib.request.Request(f"http://{HOST}:{port}{path}", data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def serve_run(run, media):
    folder = os.path.join(WORK, f"run{run}")
    os.makedirs(folder)
    shutil.copy(os.path.join(REPO, "pipeline.toml"), folder)
    shutil.copytree(os.path.join(REPO, "assets"), os.path.join(folder, "assets"))
    port = free_port()
    env = dict(os.environ, ANB_LISTEN=f"{HOST}:{port}", ANB_SECRET_KEY="hostile-bench-secret-0123456789abcdef",
               ANB_UPLOADS_PER_ACCOUNT="100", RUST_LOG="warn")
    log = open(os.path.join(folder, "serve.log"), "w")
    proc = subprocess.Popen([BINARY, "serve"], cwd=folder, env=env, stdout=log, stderr=log)
    try:
        deadline = time.time() + 60
        while True:
            try:
                if request(port, "GET", "/health")[0] == 200:
                    break
            except OSError:
                pass
            assert time.time() < deadline, "anb serve did not start"
            time.sleep(0.1)
        account = {"email": "h@example.com", "password1": "hostile-pass-1", "password2": "hostile-pass-1",
                   "first_name": "H", "last_name": "M", "city": "Cali", "country": "Colombia"}
        js = {"Content-Type": "application/json"}
        assert request(port, "POST", "/api/auth/signup", json.dumps(account).encode(), js)[0] == 201
        token = request(port, "POST", "/api/auth/login",
                        json.dumps({"email": "h@example.com", "password": "hostile-pass-1"}).encode(), js)[1]["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        baseline = peak_rss_mb(proc.pid)
        rows = {}
        for name, _, _ in FILES:
            data = open(os.path.join(media, name), "rb").read()
            boundary = "hostileboundary"
            body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\n{name}\r\n"
                    f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\r\n").encode()
            body += data + f"\r\n--{boundary}--\r\n".encode()
            status, answer = request(port, "POST", "/api/videos/upload", body,
                                     {**auth, "Content-Type": f"multipart/form-data; boundary={boundary}"})
            answered = time.time()
            if status != 201:
                rows[name] = {"status": status, "code": f"HTTP {status}", "message": str(answer), "secs": 0.0}
                continue
            video_id = answer["video_id"]
            deadline = time.time() + 300
            while True:
                _, video = request(port, "GET", f"/api/videos/{video_id}", headers=auth)
                if video["status"] in ("completed", "failed"):
                    break
                assert time.time() < deadline, f"{name} did not settle"
                time.sleep(0.05)
            rows[name] = {"status": video["status"], "code": video.get("error_code") or video["status"],
                          "message": video.get("error_message") or "", "secs": time.time() - answered,
                          "peak_rss_mb": peak_rss_mb(proc.pid)}
        return baseline, rows
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def process_alone(media, name):
    out = os.path.join(WORK, "out.mp4")
    result = subprocess.run(["/usr/bin/time", "-f", "%e %M", BINARY, "process", os.path.join(media, name), out, "--json"],
                            cwd=REPO, capture_output=True, text=True, timeout=600)
    wall, rss_kb = result.stderr.strip().splitlines()[-1].split()
    if os.path.exists(out):
        os.remove(out)
    return float(wall), int(rss_kb) / 1024


def main():
    media = os.path.join(WORK, "media")
    os.makedirs(media)
    make_files(media)
    runs = [serve_run(run, media) for run in range(RUNS)]
    alone = {name: [process_alone(media, name) for _ in range(RUNS)] for name, _, _ in FILES}
    med = statistics.median
    report = {"runs": RUNS, "serve_baseline_peak_rss_mb": med(b for b, _ in runs), "files": []}
    print(f"anb serve, medians of {RUNS} runs; server peak RSS before the first job: {report['serve_baseline_peak_rss_mb']:.0f} MB")
    print(f"{'file':<14} {'what':<52} {'code':<18} {'upload→settled s':>16} {'serve peak MB':>13} {'process s':>9} {'process MB':>10}")
    for name, what, _ in FILES:
        rows = [r[name] for _, r in runs]
        codes = sorted({r["code"] for r in rows})
        row = {"file": name, "what": what, "codes": codes, "message": rows[0]["message"],
               "settle_secs": med(r["secs"] for r in rows), "serve_peak_rss_mb": med(r.get("peak_rss_mb", 0) for r in rows),
               "process_wall_secs": med(w for w, _ in alone[name]), "process_peak_rss_mb": med(m for _, m in alone[name])}
        report["files"].append(row)
        print(f"{name:<14} {what:<52} {','.join(codes):<18} {row['settle_secs']:>16.2f} {row['serve_peak_rss_mb']:>13.0f} "
              f"{row['process_wall_secs']:>9.2f} {row['process_peak_rss_mb']:>10.0f}")
        print(f"{'':<14} {rows[0]['message'][:150]}")
    with open(os.path.join(REPO, "target/bench-report/hostile-media.json"), "w") as f:
        json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
