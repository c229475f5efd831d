"""429 and 503: ``Retry-After`` honoured (bounded) on HTTP and WebSocket
handshakes, with stand-in servers that refuse once; and the real server's
``rate_limited`` with ``--new-sessions-per-minute 1``."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
import time
import urllib.request

from websockets.asyncio.server import serve

import flacstream

from .audio import pcm16, wav
from .server import AsyncTestCase, ServerTestCase

REFUSAL = json.dumps({"type": "error", "code": "rate_limited", "message": "later"}).encode()


class _RefuseOnce(http.server.BaseHTTPRequestHandler):
    calls: list[float] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.calls.append(time.monotonic())
        if len(self.calls) == 1:
            self.send_response(429)
            self.send_header("Retry-After", "1")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(REFUSAL)))
            self.end_headers()
            self.wfile.write(REFUSAL)
            return
        body = b'{"sessions":[],"next_offset":null}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class RetryAfterTests(AsyncTestCase):
    """The retry policy against stand-in servers."""

    async def test_http_waits_retry_after_then_succeeds(self) -> None:
        _RefuseOnce.calls = []
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RefuseOnce)
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            client = flacstream.AsyncClient(f"http://127.0.0.1:{httpd.server_address[1]}")
            page = await asyncio.wait_for(client.list_sessions(), 10)
            self.assertEqual(page["sessions"], [])
            self.assertEqual(len(_RefuseOnce.calls), 2)
            self.assertGreaterEqual(_RefuseOnce.calls[1] - _RefuseOnce.calls[0], 0.95)

            _RefuseOnce.calls = []
            once = flacstream.AsyncClient(client.config.base_url, retry=flacstream.NO_RETRY)
            with self.assertRaises(flacstream.RateLimitedError) as cm:
                await once.list_sessions()
            self.assertEqual((cm.exception.code, cm.exception.retry_after), ("rate_limited", 1.0))
        finally:
            httpd.shutdown()
            httpd.server_close()

    async def test_websocket_handshake_waits_retry_after(self) -> None:
        seen: list[float] = []

        def process_request(connection, request):  # type: ignore[no-untyped-def]
            seen.append(time.monotonic())
            if len(seen) == 1:
                response = connection.respond(503, REFUSAL.decode())
                response.headers["Retry-After"] = "1"
                return response
            return None

        async def handler(ws) -> None:  # type: ignore[no-untyped-def]
            await ws.send(json.dumps({"type": "error", "code": "internal", "message": "x"}))
            await ws.close(1011)

        async with serve(handler, "127.0.0.1", 0, process_request=process_request) as server:
            port = server.sockets[0].getsockname()[1]
            client = flacstream.AsyncClient(f"http://127.0.0.1:{port}")
            with self.assertRaises(flacstream.InternalServerError) as cm:
                await asyncio.wait_for(client.stream(b"RIFF"), 10)
        self.assertEqual((cm.exception.code, cm.exception.close_code), ("internal", 1011))
        self.assertEqual(len(seen), 2)
        self.assertGreaterEqual(seen[1] - seen[0], 0.95)

    def test_policy_bounds(self) -> None:
        err = flacstream.RateLimitedError("rate_limited", "x", status=429, retry_after=90)
        self.assertIsNone(flacstream.RetryPolicy(max_delay=30).delay(err, 1))
        self.assertEqual(flacstream.RetryPolicy(max_delay=120).delay(err, 1), 90)
        self.assertIsNone(flacstream.RetryPolicy(max_attempts=2, max_delay=120).delay(err, 2))
        busy = flacstream.UnavailableError("server_busy", "x", status=503)
        for attempt in (1, 2, 3):
            wait = flacstream.RetryPolicy(max_attempts=9, base_delay=1).delay(busy, attempt)
            self.assertTrue(2 ** (attempt - 1) / 2 <= wait <= 2 ** (attempt - 1))
        self.assertIsNone(flacstream.RetryPolicy().delay(
            flacstream.NotFoundError("session_not_found", "x", status=404), 1))


class RateLimitTests(ServerTestCase):
    """The real server's ``rate_limited``."""

    SERVER_ARGS = ("--new-sessions-per-minute", "1")

    async def test_second_session_gets_429_with_retry_after(self) -> None:
        audio = wav(pcm16(0.2, 8000, 1), 8000, 1)
        client = flacstream.AsyncClient(self.server.base_url)  # Retry-After ~60 s > max_delay 30 s
        await client.convert(audio)
        t0 = time.monotonic()
        with self.assertRaises(flacstream.RateLimitedError) as cm:
            await client.convert(audio)
        self.assertLess(time.monotonic() - t0, 5, "a Retry-After past max_delay is not waited for")
        err = cm.exception
        self.assertEqual((err.code, err.status), ("rate_limited", 429))
        self.assertIsNotNone(err.retry_after)
        self.assertGreater(err.retry_after, 0)
        with self.assertRaises(flacstream.RateLimitedError) as cm2:
            await client.stream(audio)  # the handshake is refused the same way
        self.assertEqual(cm2.exception.code, "rate_limited")


class RetryAfterHonouredTests(ServerTestCase):
    """The real server's ``Retry-After`` waited for: 60 sessions a minute is a
    burst of 60, then one a second, so the 61st is told to come back in ~1 s."""

    SERVER_ARGS = ("--new-sessions-per-minute", "60")

    def rejections(self) -> float:
        """``flacstream_rejections_total{code="rate_limited"}`` from /metrics."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        text = opener.open(f"{self.server.base_url}/metrics", timeout=5).read().decode()
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("flacstream_rejections_total") and 'rate_limited' in line)

    async def test_client_waits_and_gets_in(self) -> None:
        audio = wav(pcm16(0.05, 8000, 1), 8000, 1)
        once = flacstream.AsyncClient(self.server.base_url, retry=flacstream.NO_RETRY)
        patient = flacstream.AsyncClient(self.server.base_url,
                                         retry=flacstream.RetryPolicy(max_attempts=4, max_delay=5))
        # A refill may land between the refusal and the patient client's
        # first try; then it got in without waiting, and the round is redone.
        for _ in range(3):
            refused = None
            for _ in range(100):
                try:
                    await once.convert(audio)
                except flacstream.RateLimitedError as e:
                    refused = e
                    break
            self.assertIsNotNone(refused, "no 429 after 100 sessions")
            assert refused is not None and refused.retry_after is not None
            self.assertLessEqual(refused.retry_after, 5)
            before = self.rejections()
            t0 = time.monotonic()
            result = await asyncio.wait_for(patient.convert(audio), 30)
            elapsed = time.monotonic() - t0
            self.assertEqual(result.flac[:4], b"fLaC")
            if self.rejections() > before:  # refused first, then waited and got in
                self.assertGreaterEqual(elapsed, refused.retry_after - 0.2)
                return
        self.fail("the patient client was never refused first")
