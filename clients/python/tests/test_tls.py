"""https and wss with a private CA: the server started with ``--tls-cert``
and ``--tls-key`` (a self-signed certificate for 127.0.0.1 made by openssl),
the client trusting it through ``ca_file``."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import unittest

import flacstream

from .audio import md5, pcm16, wav
from .server import ServerTestCase, binary


class TlsTests(ServerTestCase):
    """TLS with a given CA file; the system roots refuse the same server."""

    cert_dir = ""

    @classmethod
    def setUpClass(cls) -> None:
        if shutil.which("openssl") is None:
            raise unittest.SkipTest("SKIPPED: openssl is not installed (it makes the certificate)")
        if not binary().exists():
            raise unittest.SkipTest(f"SKIPPED: no server binary at {binary()}")
        cls.cert_dir = tempfile.mkdtemp(prefix="flacstream-tls-")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1",
             "-keyout", os.path.join(cls.cert_dir, "key.pem"),
             "-out", os.path.join(cls.cert_dir, "cert.pem")],
            check=True, capture_output=True, timeout=30)
        super().setUpClass()

    @classmethod
    def server_args(cls) -> tuple[str, ...]:
        return ("--tls-cert", os.path.join(cls.cert_dir, "cert.pem"),
                "--tls-key", os.path.join(cls.cert_dir, "key.pem"))

    @classmethod
    def tearDownClass(cls) -> None:
        super().tearDownClass()
        shutil.rmtree(cls.cert_dir, ignore_errors=True)

    async def test_https_and_wss_with_ca_file(self) -> None:
        self.assertTrue(self.server.base_url.startswith("https://"))
        pcm = pcm16(0.5, 16000, 1)
        client = flacstream.AsyncClient(self.server.base_url,
                                        ca_file=os.path.join(self.cert_dir, "cert.pem"))
        result = await asyncio.wait_for(client.stream(wav(pcm, 16000, 1)), 30)
        self.assertEqual(result.done.md5, md5(pcm))
        converted = await asyncio.wait_for(client.convert(wav(pcm, 16000, 1)), 30)
        self.assertEqual(converted.flac[:4], b"fLaC")
        self.assertTrue(await client.healthy())

    async def test_system_roots_refuse_a_private_ca(self) -> None:
        client = flacstream.AsyncClient(self.server.base_url)
        with self.assertRaises(flacstream.TransportError):
            await client.list_sessions()
        with self.assertRaises(flacstream.TransportError):
            await client.stream(b"RIFF")
