"""Starting the real server binary for the tests: a free loopback port, an
explicit ``--bind 127.0.0.1:PORT``, a temporary ``--data-dir``; stopped (only
the process started here) when the test class ends.

The binary is ``$FLACSTREAM_BIN``, else ``target/release/flacstream`` from
the repository root.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.request
from pathlib import Path

#: The repository root: clients/python/tests/ is three levels below it.
REPO_ROOT = Path(__file__).resolve().parents[3]
#: Seconds the server may take to answer /healthz after its start.
START_TIMEOUT_SECONDS = 30.0
#: Seconds the server may take to exit after SIGTERM before it is killed.
STOP_TIMEOUT_SECONDS = 10.0


def binary() -> Path:
    """The server binary under test."""
    env = os.environ.get("FLACSTREAM_BIN")
    path = Path(env) if env else REPO_ROOT / "target" / "release" / "flacstream"
    if not path.is_absolute():
        path = REPO_ROOT / path
    return path


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_key(key_id: str = "test") -> tuple[str, str]:
    """``(key, entry)`` from ``flacstream key``: the secret and its ``--api-keys`` entry."""
    out = subprocess.run([str(binary()), "key", "--id", key_id], capture_output=True,
                         text=True, check=True, timeout=30).stdout
    key = re.search(r"(fsk_[A-Za-z0-9_-]+)", out)
    entry = re.search(rf"({re.escape(key_id)}:sha256:[0-9a-f]{{64}})", out)
    if not key or not entry:
        raise RuntimeError(f"cannot read `flacstream key` output: {out!r}")
    return key.group(1), entry.group(1)


class Server:
    """One server process on a free loopback port."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.tmp = tempfile.mkdtemp(prefix="flacstream-pytest-")
        self.data_dir = os.path.join(self.tmp, "data")
        self.log_path = os.path.join(self.tmp, "server.log")
        self.args = list(args)
        self.env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn"), **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.scheme = "https" if "--tls-cert" in args else "http"

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (https with TLS)."""
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self) -> "Server":
        """Starts the process and waits until /healthz answers (over TCP for TLS)."""
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(binary()), "--bind", f"127.0.0.1:{self.port}", "--data-dir", self.data_dir,
             *self.args], stdout=log, stderr=subprocess.STDOUT, env=self.env)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}: {self.log_tail()}")
            if self._ready():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not answer within {START_TIMEOUT_SECONDS} s")

    def _ready(self) -> bool:
        if self.scheme == "https":
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return True
            except OSError:
                return False
        try:
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            return opener.open(f"{self.base_url}/healthz", timeout=1).status == 200
        except OSError:
            return False

    def log_tail(self, lines: int = 30) -> str:
        """The end of the server's log."""
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT_SECONDS; removes the temp dir."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        shutil.rmtree(self.tmp, ignore_errors=True)


class AsyncTestCase(unittest.IsolatedAsyncioTestCase):
    """An asyncio test; the loop's debug warnings about slow steps are off
    (generating test audio and blocking HTTP calls are slow on purpose)."""

    async def asyncSetUp(self) -> None:
        asyncio.get_running_loop().slow_callback_duration = 10.0


class ServerTestCase(AsyncTestCase):
    """A test class sharing one server; ``SERVER_ARGS`` are its extra flags."""

    SERVER_ARGS: tuple[str, ...] = ()
    server: Server

    @classmethod
    def server_args(cls) -> tuple[str, ...]:
        """The server's extra command line (override for computed flags)."""
        return cls.SERVER_ARGS

    @classmethod
    def setUpClass(cls) -> None:
        if not binary().exists():
            raise unittest.SkipTest(f"SKIPPED: no server binary at {binary()} (set FLACSTREAM_BIN)")
        # Drain grace 0: a stop never waits on a test's leftover stream.
        cls.server = Server("--drain-grace-seconds", "0", *cls.server_args()).start()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.server.stop()
