#!/usr/bin/env python3
"""Runs the `map` of ingress-nginx/controller-configmap.yaml in a throwaway
nginx and checks the hash key it derives for each kind of request
(deploy/README.md, "Affinity"): every request for one session, the open
that chose its id included, must get the same key, the session id; the rest
must get $request_id, which differs per request.

Usage: check_map.py [CONFIGMAP.yaml]   (default: the one beside this file;
needs nginx on PATH; binds a free loopback port)
Exit 0 if every key is as expected, else 1.
"""

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import yaml

SNIPPET = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ingress-nginx", "controller-configmap.yaml")
ID = "0f8e51a2-3c4d-4e5f-9a6b-7c8d9e0f1a2b"
OTHER = "5d6c0b1e-8f7a-4c3b-a2d1-e0f9a8b7c6d5"
# Requests that must hash on ID.
SAME_SESSION = [
    f"/api/ws/audio?sample_rate=16000&channels=1&format=s16le&session_id={ID}",
    f"/api/ws/audio?session_id={ID}&format=wav",
    f"/upload?user_id=ann&session_id={ID}",
    f"/api/ws/audio/{ID}",
    f"/api/ws/audio/{ID}?role=listen",
    f"/api/audio/sessions/{ID}",
    f"/api/audio/sessions/{ID}/close",
    f"/api/audio/sessions/{ID}/audio",
    # The path names the session; a stray argument does not change it.
    f"/api/audio/sessions/{ID}?session_id={OTHER}",
]
# Requests that must hash on $request_id: a 32-hex-digit value, new each time.
SPREAD = [
    "/api/ws/audio?sample_rate=16000&channels=1&format=s16le",
    f"/api/ws/audio?session_id={ID.upper()}",  # refused by the server anyway
    f"/stream?session_id={ID}",
    f"/convert?session_id={ID}",
    "/upload",
    "/api/audio/sessions?user_id=ann",
    "/",
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    with open(sys.argv[1] if len(sys.argv) > 1 else SNIPPET, encoding="utf-8") as f:
        snippet = yaml.safe_load(f)["data"]["http-snippet"]
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        temp_paths = "\n".join(
            f"  {kind}_temp_path {tmp};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        conf = os.path.join(tmp, "nginx.conf")
        with open(conf, "w", encoding="utf-8") as f:
            f.write(
                f"daemon off;\npid {tmp}/nginx.pid;\nerror_log {tmp}/error.log;\nevents {{}}\n"
                f"http {{\n  access_log off;\n{temp_paths}\n{snippet}\n"
                f"  server {{\n    listen 127.0.0.1:{port};\n"
                f'    location / {{ return 200 "$flacstream_session"; }}\n  }}\n}}\n'
            )
        nginx = subprocess.Popen(["nginx", "-p", tmp, "-c", conf])
        try:
            key = lambda path: urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5).read().decode()
            for _ in range(50):
                try:
                    key("/")
                    break
                except OSError:
                    time.sleep(0.1)
            errors = []
            for path in SAME_SESSION:
                if (got := key(path)) != ID:
                    errors.append(f"{path} hashes on {got!r}, not the session id")
            for path in SPREAD:
                first, second = key(path), key(path)
                if first == second or len(first) != 32:
                    errors.append(f"{path} hashes on {first!r} then {second!r}, not $request_id")
        finally:
            nginx.terminate()
            nginx.wait(timeout=10)
    for e in errors:
        print(f"FAIL {e}")
    print(f"{'ok  ' if not errors else 'FAIL'} the map: {len(SAME_SESSION)} requests on the session id, {len(SPREAD)} spread")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
