#!/usr/bin/env python3
"""Samples one process's CPU time and memory once a second, as JSON lines.

    sampler.py PID OUT.jsonl [INTERVAL_SECONDS]

Each line: {"t": wall-clock seconds, "cpu_s": utime+stime in seconds
(/proc/PID/stat), "rss_kb": VmRSS, "hwm_kb": VmHWM (/proc/PID/status)}.
Stops when the process is gone or on SIGTERM.
"""
import json
import os
import signal
import sys
import time

TICKS = os.sysconf('SC_CLK_TCK')


def sample(pid):
    with open(f'/proc/{pid}/stat') as f:
        # The command name may hold spaces and parentheses: fields start after the last ')'.
        fields = f.read().rsplit(')', 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime: fields 14 and 15
    mem = {}
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            key, _, value = line.partition(':')
            if key in ('VmRSS', 'VmHWM'):
                mem[key] = int(value.split()[0])
    return {'t': round(time.time(), 3), 'cpu_s': cpu, 'rss_kb': mem.get('VmRSS', 0), 'hwm_kb': mem.get('VmHWM', 0)}


def main():
    pid, out = int(sys.argv[1]), sys.argv[2]
    interval = float(sys.argv[3]) if len(sys.argv) > 3 else 1.0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with open(out, 'a', buffering=1) as f:
        while True:
            try:
                s = sample(pid)
            except (FileNotFoundError, ProcessLookupError, IndexError):
                return
            f.write(json.dumps(s) + '\n')
            time.sleep(interval)


if __name__ == '__main__':
    main()
