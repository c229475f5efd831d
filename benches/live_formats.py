#!/usr/bin/env python3
"""Memory and CPU per live container session: N concurrent recorded
sessions (`/api/ws/audio?format=F`) each sending the same file paced at real
time, against a server already running (benches/live_formats.sh starts one).
Samples the server's RSS, threads and CPU time from /proc every 100 ms and
prints one JSON line. Bounded: the file's duration plus 30 s.

    live_formats.py --url ws://127.0.0.1:PORT --pid PID --file clip.webm \
        --format webm --seconds 20 -n 50
"""

import argparse
import asyncio
import json
import os
import time

import websockets

CHUNK_SECONDS = 0.1


def proc_sample(pid):
    with open(f"/proc/{pid}/status") as f:
        status = dict(line.split(":", 1) for line in f if ":" in line)
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss_kib = int(status["VmRSS"].split()[0])
    threads = int(status["Threads"].split()[0])
    return rss_kib, threads, cpu


async def session(url, fmt, data, seconds, results):
    per_chunk = max(1, int(len(data) * CHUNK_SECONDS / seconds))
    async with websockets.connect(f"{url}/api/ws/audio?format={fmt}&acks=false",
                                  max_size=None) as ws:
        hello = json.loads(await ws.recv())
        assert hello["type"] == "session", hello
        start = time.monotonic()
        for i, at in enumerate(range(0, len(data), per_chunk)):
            await ws.send(data[at:at + per_chunk])
            delay = start + (i + 1) * CHUNK_SECONDS - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        await ws.send(json.dumps({"type": "control", "action": "close_session"}))
        while True:
            message = await ws.recv()
            if isinstance(message, str):
                done = json.loads(message)
                if done["type"] in ("done", "error"):
                    results.append(done)
                    return


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--file", required=True)
    p.add_argument("--format", required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("-n", type=int, default=50)
    a = p.parse_args()
    data = open(a.file, "rb").read()
    idle_rss, idle_threads, cpu0 = proc_sample(a.pid)
    peak_rss, peak_threads = idle_rss, idle_threads
    results = []
    started = time.monotonic()
    tasks = [asyncio.create_task(session(a.url, a.format, data, a.seconds, results))
             for _ in range(a.n)]
    done = asyncio.gather(*tasks)
    deadline = started + a.seconds + 30
    while not done.done():
        if time.monotonic() > deadline:
            for t in tasks:
                t.cancel()
            raise SystemExit("live_formats: over time")
        rss, threads, _ = proc_sample(a.pid)
        peak_rss, peak_threads = max(peak_rss, rss), max(peak_threads, threads)
        await asyncio.sleep(0.1)
    await done
    wall = time.monotonic() - started
    _, _, cpu1 = proc_sample(a.pid)
    ok = sum(1 for r in results if r["type"] == "done")
    print(json.dumps({
        "format": a.format, "sessions": a.n, "ok": ok, "bytes": len(data),
        "idle_rss_mib": round(idle_rss / 1024, 1),
        "peak_rss_mib": round(peak_rss / 1024, 1),
        "per_session_mib": round((peak_rss - idle_rss) / 1024 / a.n, 2),
        "peak_threads": peak_threads,
        "server_cpu_percent_of_one_core_per_session":
            round(100 * (cpu1 - cpu0) / wall / a.n, 2),
        "wall_seconds": round(wall, 1),
    }))
    if ok != a.n:
        raise SystemExit(f"live_formats: {a.n - ok} sessions failed: {results[:3]}")


asyncio.run(main())
