"""Drives benches/jobs.sh: see there. Prints JSON lines."""
import argparse
import http.client
import http.server
import json
import os
import socket
import struct
import subprocess
import threading
import time
import urllib.request


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Receiver(http.server.BaseHTTPRequestHandler):
    seen = set()
    deliveries = 0
    first_at = None
    last_at = None
    lock = threading.Lock()

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with Receiver.lock:
            Receiver.deliveries += 1
            Receiver.seen.add(self.headers["Flacstream-Event-Id"])
            now = time.monotonic()
            Receiver.first_at = Receiver.first_at or now
            Receiver.last_at = now
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def wav(seconds, rate=16000):
    frames = seconds * rate
    data = b"".join(struct.pack("<h", int(8000 * ((i * 37) % 200 - 100) / 100)) for i in range(frames))
    header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " + struct.pack(
        "<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16) + b"data" + struct.pack("<I", len(data))
    return header + data


def start(bin_path, data, port, extra):
    proc = subprocess.Popen(
        [bin_path, "--bind", f"127.0.0.1:{port}", "--data-dir", data,
         "--new-sessions-per-minute", "100000", *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "RUST_LOG": "warn"})
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not start")


def post(port, path, body):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request("POST", path, body=body, headers={"Content-Type": "audio/wav"})
    r = c.getresponse()
    out = r.read()
    c.close()
    assert r.status == 201, (r.status, out)
    return json.loads(out)["session_id"]


def jobs(port, sid):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/jobs?session_id={sid}", timeout=10) as r:
        return json.load(r)["jobs"]


def throughput(args):
    hook_port, port = free_port(), free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", hook_port), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    data = os.path.join(args.work, "data-throughput")
    proc = start(args.bin, data, port, [
        "--webhook-url", f"http://127.0.0.1:{hook_port}/hook",
        "--webhook-secret", "bench-secret-0123456789abcdef",
        "--webhook-allowed-networks", "127.0.0.0/8",
        "--job-workers", str(args.job_workers),
        # The first poll after the start finds nothing; the next, 10 s
        # later, finds all N sessions' jobs queued: a backlog, drained as
        # fast as the queue goes (each job's end claims the next at once).
        "--job-poll-ms", "10000"])
    try:
        body = wav(1)
        t0 = time.monotonic()
        ids = [post(port, "/upload", body) for _ in range(args.n)]
        uploaded = time.monotonic() - t0
        assert uploaded < 9, "the uploads must end before the backlog is claimed"
        deadline = time.monotonic() + 120
        while len(Receiver.seen) < args.n and time.monotonic() < deadline:
            time.sleep(0.05)
        span = Receiver.last_at - Receiver.first_at
        analyses = sum(1 for sid in ids[-20:] for j in jobs(port, sid)
                       if j["kind"] == "analysis" and j["state"] == "done")
        print(json.dumps({
            "phase": "webhooks", "sessions": args.n, "job_workers": args.job_workers,
            "events_received": len(Receiver.seen), "deliveries": Receiver.deliveries,
            "uploads_seconds": round(uploaded, 2),
            "backlog_drained_seconds": round(span, 2),
            "jobs_per_second": round(2 * args.n / span, 1),
            "webhooks_per_second": round(args.n / span, 1),
            "last_20_analyses_done": analyses}))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        server.shutdown()


def recompression(args):
    out = {}
    music = open(args.music, "rb").read()
    for level in (0, 5):
        port = free_port()
        data = os.path.join(args.work, f"data-archive-{level}")
        proc = start(args.bin, data, port, ["--archive-level", "8"])
        try:
            t0 = time.monotonic()
            sid = post(port, f"/upload?level={level}", music)
            deadline = time.monotonic() + 120
            job = None
            while time.monotonic() < deadline:
                job = next((j for j in jobs(port, sid) if j["kind"] == "recompress"), None)
                if job and job["state"] in ("done", "failed"):
                    break
                time.sleep(0.1)
            out[f"from_level_{level}"] = {"result": job["result"] or job["last_error"],
                                          "seconds": round(time.monotonic() - t0, 2)}
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(json.dumps({"phase": "recompression", "clip_seconds": 60, **out}))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--job-workers", type=int, default=2)
    p.add_argument("--music", required=True)
    args = p.parse_args()
    throughput(args)
    recompression(args)


if __name__ == "__main__":
    main()
