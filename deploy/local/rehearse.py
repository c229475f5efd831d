#!/usr/bin/env python3
"""Scaled-mode rehearsal: replicas of the release binary on one PostgreSQL
and one S3 server, behind nginx with a plain round-robin upstream (no
hashing, no affinity), with live recorded sessions running while the
replicas and the servers fail. deploy/local/run.sh starts the servers and
calls this; see deploy/local/README.md.

Timeline, as fractions of the session length T (SECONDS):
  0      replicas A, B, C start; producers start over SPREAD seconds, each
         through nginx (any replica), some with listeners (any replica);
         producers also drop their connection now and then and resume
         through nginx (any replica);
  0.15T  kill -9 of A: its producers resume elsewhere;
  0.22T  D starts; 0.25T B is drained (its sessions are handed over);
  0.32T  E starts; 0.35T C is drained;
  0.42T  PostgreSQL restarts (pg_ctl restart -m fast);
  0.48T  the S3 server is killed, for S3_OUTAGE seconds, then restarted;
  end    scale-down: E is drained, D carries on alone.
Every list by user is read from every live replica, mid-run and at the end.

Checks: every producer's final FLAC (fetched through nginx) passes `flac -t`
and decodes (`flac -d`) to exactly the bytes it sent; every resume started at
or after every samples_durable that producer was acknowledged; every list by
user holds every session of that user. Prints the figures (kill -9 to
resume, handover times, durable lag during the outage) and writes a JSON
summary. Exit 0 when everything held, 1 otherwise.
"""

import asyncio
import json
import os
import random
import subprocess
import sys
import time
import urllib.error
import urllib.request

import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

ENV = os.environ
BIN = ENV["FLACSTREAM_BIN"]
WORK = ENV["WORK"]
SESSIONS = int(ENV.get("SESSIONS", "32"))
SECONDS = float(ENV.get("SECONDS", "100"))
SPREAD = float(ENV.get("SPREAD", "8"))
LISTENERS = int(ENV.get("LISTENERS", "8"))
S3_OUTAGE = float(ENV.get("S3_OUTAGE", "30"))
USERS = int(ENV.get("USERS", "6"))
SEED = int(ENV.get("SEED", "1"))
RATE = 16000  # mono s16le: 32,000 bytes a second
CHUNK = RATE // 10 * 2  # 100 ms
RESUME_TIMEOUT = 60.0
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

t0 = time.monotonic()
failures = []
events = []


def now():
    return time.monotonic() - t0


def log(msg):
    print(f"[{now():7.2f}] {msg}", flush=True)


def fail(msg):
    failures.append(msg)
    log(f"FAIL {msg}")


def http(method, url, timeout=10):
    req = urllib.request.Request(url, method=method)
    try:
        with OPENER.open(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except Exception:
        return 0, b""


def free_port():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Replica:
    def __init__(self, name):
        self.name = name
        self.port = free_port()
        self.proc = None
        self.data = os.path.join(WORK, f"replica-{name}")
        self.log_path = os.path.join(WORK, f"replica-{name}.log")

    def start(self):
        os.makedirs(self.data, exist_ok=True)
        env = dict(ENV)
        env["FLACSTREAM_DATABASE_URL"] = ENV["FLACSTREAM_TEST_DATABASE_URL"]
        env["FLACSTREAM_STORAGE_URL"] = ENV["STORAGE_URL"]
        env.setdefault("RUST_LOG", "info")
        self.proc = subprocess.Popen(
            [
                BIN,
                "--bind", f"127.0.0.1:{self.port}",
                "--data-dir", self.data,
                "--advertise-url", f"http://127.0.0.1:{self.port}",
                # Every client here is 127.0.0.1: the per-address cap would
                # count all of them as one client.
                "--max-connections-per-ip", "10000",
                "--new-sessions-per-minute", "10000",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(self.log_path, "ab"),
        )
        log(f"replica {self.name} started on {self.port} (pid {self.proc.pid})")

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    async def ready(self, limit=30):
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            status, _ = await asyncio.to_thread(http, "GET", self.url("/readyz"), 2)
            if status == 200:
                return True
            await asyncio.sleep(0.2)
        fail(f"replica {self.name} not ready within {limit} s")
        return False

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        log(f"replica {self.name} killed (SIGKILL)")

    async def drain(self, limit=60):
        started = time.monotonic()
        status, body = await asyncio.to_thread(http, "POST", self.url("/admin/drain"))
        if status != 202:
            fail(f"drain of {self.name}: {status} {body[:200]!r}")
        while self.proc.poll() is None and time.monotonic() - started < limit:
            await asyncio.sleep(0.1)
        took = time.monotonic() - started
        if self.proc.poll() is None:
            fail(f"replica {self.name} still running {limit} s after its drain")
            self.proc.kill()
        log(f"replica {self.name} drained and exited in {took:.2f} s")
        return took

    def stop(self):
        if self.alive():
            self.proc.kill()
            self.proc.wait()


def nginx_conf(ports, listen):
    servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=0;" for p in ports)
    return f"""
daemon off;
worker_processes 1;
pid {WORK}/nginx.pid;
error_log {WORK}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {WORK}/nginx-body;
    proxy_temp_path {WORK}/nginx-proxy;
    fastcgi_temp_path {WORK}/nginx-fastcgi;
    uwsgi_temp_path {WORK}/nginx-uwsgi;
    scgi_temp_path {WORK}/nginx-scgi;
    # A plain round-robin upstream: no hashing, no affinity.
    upstream flacstream {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{listen};
        location / {{
            proxy_pass http://flacstream;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout 3600s;
            proxy_send_timeout 3600s;
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_connect_timeout 2s;
            # A replica that is down or draining: try the next one, as a
            # Service's endpoints would no longer hold it.
            proxy_next_upstream error timeout http_502 http_503 non_idempotent;
            proxy_next_upstream_tries 5;
        }}
    }}
}}
"""


def audio(k):
    """A random walk (wrapping at 16 bits): real-ish audio, different for
    every session, generated in C loops (a second of 32 sessions' audio)."""
    import array
    import itertools

    rnd = random.Random(SEED * 1000 + k)
    steps = ((b - 128) * 7 for b in rnd.randbytes(int(RATE * SECONDS)))
    walk = array.array("h", ((v + 32768) % 65536 - 32768 for v in itertools.accumulate(steps)))
    if sys.byteorder != "little":
        walk.byteswap()
    return walk.tobytes()


class Producer:
    def __init__(self, k, base):
        self.k = k
        self.base = base
        self.user = f"rehearsal-{SEED}-{ENV.get('RUN_ID', '')}-u{k % USERS}"
        self.pcm = audio(k)
        self.id = None
        self.acked_durable = 0
        self.resumes = []  # (reason, seconds to resume, samples_received)
        self.storage = []
        self.done = None
        self.ok = True

    async def connect(self, path):
        deadline = time.monotonic() + RESUME_TIMEOUT
        last = None
        while time.monotonic() < deadline:
            try:
                ws = await websockets.connect(
                    f"{self.base}{path}", max_size=None, open_timeout=15, ping_interval=None
                )
                hello = json.loads(await asyncio.wait_for(ws.recv(), 15))
                return ws, hello
            except InvalidStatus as e:
                last = f"HTTP {e.response.status_code}"
                await asyncio.sleep(0.5)
            except Exception as e:  # refused, reset: a replica going down
                last = repr(e)
                await asyncio.sleep(0.25)
        raise RuntimeError(f"no connection to {path} within {RESUME_TIMEOUT} s: {last}")

    async def run(self):
        ws, hello = await self.connect(
            f"/api/ws/audio?sample_rate={RATE}&channels=1&format=s16le&user_id={self.user}"
        )
        self.id = hello["session_id"]
        pos = 0
        started = time.monotonic()
        rnd = random.Random(SEED * 7 + self.k)
        while pos < len(self.pcm):
            # Real time: the producer is a live source.
            ahead = started + pos / (2 * RATE) - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)
            reason = None
            try:
                if rnd.random() < 0.004:  # about once every 25 s of audio
                    await ws.close()
                    reason = "voluntary"
                else:
                    await ws.send(self.pcm[pos:pos + CHUNK])
                    while True:
                        m = json.loads(await asyncio.wait_for(ws.recv(), 30))
                        if m["type"] == "ack":
                            self.acked_durable = max(self.acked_durable, m["samples_durable"])
                            pos = min(pos + CHUNK, len(self.pcm))
                            break
                        if m["type"] == "storage":
                            self.storage.append((round(now(), 2), m["code"], m["samples_durable"]))
                        elif m["type"] == "error":
                            reason = m["code"]
                            break
                        else:
                            raise RuntimeError(f"unexpected {m}")
            except ConnectionClosed as e:
                # A close without the error message first: 1001 from a
                # replica going away, 1006 from one that died.
                code = e.rcvd.code if e.rcvd else 1006
                reason = f"close {code}"
            except (OSError, asyncio.TimeoutError) as e:
                reason = type(e).__name__
            if reason is None:
                continue
            lost_at = time.monotonic()
            try:
                await ws.close()
            except Exception:
                pass
            ws, hello = await self.connect(f"/api/ws/audio/{self.id}")
            received = hello["samples_received"]
            took = time.monotonic() - lost_at
            self.resumes.append((reason, round(took, 3), received, round(now(), 2)))
            if received < self.acked_durable:
                self.ok = False
                fail(
                    f"session {self.id}: resumed at {received} < acknowledged durable "
                    f"{self.acked_durable} (lost acknowledged audio)"
                )
            pos = received * 2
            started = time.monotonic() - pos / (2 * RATE)
        await ws.send(json.dumps({"type": "control", "action": "close_session"}))
        try:
            while True:
                m = json.loads(await asyncio.wait_for(ws.recv(), 60))
                if m["type"] == "done":
                    self.done = m
                    break
                if m["type"] == "error":
                    break
        except Exception:
            pass
        if self.done is None:
            # The session moved while closing: close it over HTTP.
            status, body = await asyncio.to_thread(
                http, "POST", f"{self.base.replace('ws://', 'http://')}/api/audio/sessions/{self.id}/close", 60
            )
            if status != 200:
                fail(f"session {self.id}: close answered {status} {body[:200]!r}")


class Listener:
    def __init__(self, producer, base):
        self.producer = producer
        self.base = base
        self.bytes = 0
        self.reconnects = 0

    async def run(self):
        while self.producer.id is None:
            await asyncio.sleep(0.1)
        deadline = time.monotonic() + SECONDS * 2
        while time.monotonic() < deadline and self.producer.done is None:
            try:
                async with websockets.connect(
                    f"{self.base}/api/ws/audio/{self.producer.id}?role=listen",
                    max_size=None, open_timeout=15, ping_interval=None,
                ) as ws:
                    async for m in ws:
                        if isinstance(m, bytes):
                            self.bytes += len(m)
                        elif json.loads(m).get("type") == "done":
                            return
            except Exception:
                pass
            self.reconnects += 1
            await asyncio.sleep(0.5)


def verify(producer, base_http, out_dir):
    status, flac = http("GET", f"{base_http}/api/audio/sessions/{producer.id}/audio", 60)
    if status != 200:
        fail(f"session {producer.id}: audio answered {status}")
        return False
    path = os.path.join(out_dir, f"{producer.id}.flac")
    with open(path, "wb") as f:
        f.write(flac)
    t = subprocess.run(["flac", "-t", "--silent", path], capture_output=True)
    if t.returncode != 0:
        fail(f"session {producer.id}: flac -t: {t.stderr.decode()[-300:]}")
        return False
    d = subprocess.run(
        ["flac", "-d", "--silent", "--force-raw-format", "--endian=little", "--sign=signed",
         "-c", path],
        capture_output=True,
    )
    if d.returncode != 0:
        fail(f"session {producer.id}: flac -d failed")
        return False
    if d.stdout != producer.pcm:
        n = min(len(d.stdout), len(producer.pcm))
        first = next((i for i in range(n) if d.stdout[i] != producer.pcm[i]), n)
        fail(
            f"session {producer.id}: decoded {len(d.stdout)} bytes, sent {len(producer.pcm)}, "
            f"first difference at byte {first}"
        )
        return False
    return True


def check_lists(replicas, producers, when):
    expected = {}
    for p in producers:
        if p.id:
            expected.setdefault(p.user, set()).add(p.id)
    for r in replicas:
        if not r.alive():
            continue
        for user, ids in expected.items():
            status, body = http("GET", r.url(f"/api/audio/sessions?user_id={user}&limit=500"))
            if status != 200:
                fail(f"list of {user} on {r.name} ({when}): HTTP {status}")
                continue
            got = {s["session_id"] for s in json.loads(body)["sessions"]}
            if not ids <= got:
                fail(f"list of {user} on {r.name} ({when}) lacks {sorted(ids - got)}")
    log(f"lists by user complete on every live replica ({when})")


async def main():
    out_dir = os.path.join(WORK, "recordings")
    os.makedirs(out_dir, exist_ok=True)
    names = ["A", "B", "C", "D", "E"]
    replicas = {n: Replica(n) for n in names}
    nginx_port = free_port()
    conf = os.path.join(WORK, "nginx.conf")
    with open(conf, "w") as f:
        f.write(nginx_conf([r.port for r in replicas.values()], nginx_port))
    for d in ["nginx-body", "nginx-proxy", "nginx-fastcgi", "nginx-uwsgi", "nginx-scgi"]:
        os.makedirs(os.path.join(WORK, d), exist_ok=True)
    nginx = subprocess.Popen([ENV.get("NGINX_BIN", "nginx"), "-p", WORK, "-c", conf])
    try:
        for n in "ABC":
            replicas[n].start()
        for n in "ABC":
            await replicas[n].ready()
        base = f"ws://127.0.0.1:{nginx_port}"
        producers = [Producer(k, base) for k in range(SESSIONS)]
        # The timeline starts once the audio is made.
        global t0
        t0 = time.monotonic()
        listeners = [Listener(producers[k], base) for k in range(min(LISTENERS, SESSIONS))]

        async def start_producer(p):
            await asyncio.sleep(SPREAD * p.k / max(1, SESSIONS))
            try:
                await p.run()
            except Exception as e:
                p.ok = False
                fail(f"producer {p.k} ({p.id}): {e!r}")

        tasks = [asyncio.create_task(start_producer(p)) for p in producers]
        tasks += [asyncio.create_task(l.run()) for l in listeners]
        figures = {}

        async def at(fraction):
            await asyncio.sleep(max(0.0, SECONDS * fraction - now()))

        await at(0.15)
        check_lists(replicas.values(), producers, "before the kill")
        killed = now()
        replicas["A"].kill9()
        figures["kill_at"] = killed
        await at(0.22)
        replicas["D"].start()
        await replicas["D"].ready()
        await at(0.25)
        figures["drain_B_seconds"] = await replicas["B"].drain()
        await at(0.32)
        replicas["E"].start()
        await replicas["E"].ready()
        await at(0.35)
        figures["drain_C_seconds"] = await replicas["C"].drain()
        await at(0.42)
        pg = subprocess.run(ENV["PG_RESTART"], shell=True, capture_output=True)
        log(f"PostgreSQL restarted (exit {pg.returncode})")
        if pg.returncode != 0:
            fail(f"PostgreSQL restart: {pg.stderr.decode()[-300:]}")
        await at(0.48)
        subprocess.run(ENV["S3_STOP"], shell=True)
        outage_from = now()
        log(f"S3 server stopped for {S3_OUTAGE:.0f} s")
        await asyncio.sleep(S3_OUTAGE)
        subprocess.run(ENV["S3_START"], shell=True)
        log("S3 server started again")
        figures["s3_outage"] = [round(outage_from, 2), round(now(), 2)]
        check_lists(replicas.values(), producers, "after the outage")
        # Scale-down once every producer is past the outage's catch-up.
        await at(0.9)
        figures["drain_E_seconds"] = await replicas["E"].drain()
        await asyncio.gather(*tasks)
        check_lists(replicas.values(), producers, "at the end")
        base_http = f"http://127.0.0.1:{nginx_port}"
        exact = sum(verify(p, base_http, out_dir) for p in producers if p.id)
        # The producers whose replica was killed: their connection broke
        # within a second of the kill.
        kill_set = [
            r for p in producers for r in p.resumes
            if killed <= r[3] - r[1] <= killed + 1.0 and r[0] != "voluntary"
        ]
        kill_resumes = [r[1] for r in kill_set]
        moved = [
            r[1] for p in producers for r in p.resumes
            if r[0] in ("session_moved", "close 1001") and r not in kill_set
        ]
        voluntary = [r[1] for p in producers for r in p.resumes if r[0] == "voluntary"]
        notices = sum(len(p.storage) for p in producers)
        summary = {
            "sessions": SESSIONS,
            "seconds": SECONDS,
            "exact": exact,
            "resumes": sum(len(p.resumes) for p in producers),
            "resume_reasons": sorted({r[0] for p in producers for r in p.resumes}),
            "kill_to_resume_seconds": sorted(kill_resumes),
            "handover_resume_seconds": sorted(moved),
            "voluntary_resume_seconds": sorted(voluntary),
            "storage_notices": notices,
            "listener_bytes": [l.bytes for l in listeners],
            "listener_reconnects": [l.reconnects for l in listeners],
            "figures": figures,
            "failures": failures,
        }
        with open(os.path.join(WORK, "summary.json"), "w") as f:
            json.dump(summary, f, indent=1)
        def spread(xs):
            if not xs:
                return "none"
            return f"n={len(xs)} min {min(xs):.2f} s, median {sorted(xs)[len(xs)//2]:.2f} s, max {max(xs):.2f} s"
        print(f"exact: {exact}/{SESSIONS} final FLACs equal what their producers sent (flac -t, flac -d)")
        print(f"kill -9 to resume: {spread(kill_resumes)}")
        print(f"handover (session_moved) to resume: {spread(moved)}")
        print(f"voluntary resume: {spread(voluntary)}")
        print(f"storage notices during the S3 outage: {notices}")
        print(f"listeners: {sum(1 for l in listeners if l.bytes > 0)}/{len(listeners)} heard audio, "
              f"{sum(l.reconnects for l in listeners)} reconnects")
        print(f"drains: B {figures.get('drain_B_seconds', 0):.2f} s, C {figures.get('drain_C_seconds', 0):.2f} s, "
              f"E {figures.get('drain_E_seconds', 0):.2f} s")
    finally:
        for r in replicas.values():
            r.stop()
        nginx.terminate()
        nginx.wait()
    print(f"rehearsal: {len(failures)} failures")
    for f in failures:
        print(f"  {f}")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
