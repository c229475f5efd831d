"""``/stream`` and ``/convert`` against the real server, the FLAC checked by
the reference decoder."""

from __future__ import annotations

import asyncio
import io
import os
import tempfile

import flacstream
from flacstream import StreamInfo

from .audio import decode_flac, first_difference, have_flac, md5, pcm16, wav
from .server import ServerTestCase

RATE = 44100
CHANNELS = 2


class StreamTests(ServerTestCase):
    """Round trips through /stream and /convert."""

    def setUp(self) -> None:
        self.pcm = pcm16(1.5, RATE, CHANNELS)
        self.wav = wav(self.pcm, RATE, CHANNELS)
        self.client = flacstream.AsyncClient(self.server.base_url)

    def assert_lossless(self, flac: bytes) -> None:
        info = StreamInfo.parse(flac[8:42])
        self.assertEqual(info.total_samples, len(self.pcm) // (2 * CHANNELS))
        self.assertEqual(info.md5, md5(self.pcm))
        if not have_flac():
            print("SKIPPED: flac is not installed; decoded samples not compared")
            return
        decoded = decode_flac(flac)
        self.assertTrue(decoded == self.pcm, first_difference(decoded, self.pcm, CHANNELS, 2))

    async def test_stream_round_trip_is_bit_exact(self) -> None:
        seen: list[int] = []
        result = await asyncio.wait_for(
            self.client.stream(self.wav, chunk_bytes=7001, on_frame=lambda m: seen.append(len(m))),
            60)
        self.assertEqual(result.done.reason, "complete")
        self.assertEqual(result.done.samples, len(self.pcm) // 4)
        self.assertEqual(result.done.md5, md5(self.pcm))
        self.assertEqual(result.done.frames, len(result.frames))
        self.assertEqual(len(seen), len(result.frames) + 1)
        self.assertEqual(StreamInfo.parse(result.header[8:42]).total_samples, 0)  # provisional
        self.assertEqual(result.notices, [])
        self.assert_lossless(result.flac)

    async def test_stream_from_iterator_and_file(self) -> None:
        pieces = (self.wav[i:i + 1000] for i in range(0, len(self.wav), 1000))
        from_iter = await asyncio.wait_for(self.client.stream(pieces, level=0), 60)
        from_file = await asyncio.wait_for(self.client.stream(io.BytesIO(self.wav), level=0), 60)
        self.assertEqual(from_iter.flac, from_file.flac)
        self.assert_lossless(from_iter.flac)

    async def test_stream_refuses_garbage_with_its_code(self) -> None:
        with self.assertRaises(flacstream.InvalidAudioError) as cm:
            await asyncio.wait_for(self.client.stream(b"hello world"), 30)
        self.assertEqual(cm.exception.code, "unrecognized_format")
        self.assertEqual(cm.exception.close_code, 1003)
        self.assertIsNone(cm.exception.status)
        self.assertEqual(cm.exception.partial, b"")

    async def test_bad_parameter_is_refused_before_the_upgrade(self) -> None:
        with self.assertRaises(flacstream.BadRequestError) as cm:
            await self.client.stream(self.wav, level=42)
        self.assertEqual((cm.exception.code, cm.exception.status), ("bad_parameter", 400))

    async def test_convert(self) -> None:
        result = await asyncio.wait_for(self.client.convert(self.wav), 60)
        self.assertEqual(result.source_codec, "pcm")
        self.assertIs(result.lossless, True)
        self.assert_lossless(result.flac)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "a.wav")
            with open(path, "wb") as f:
                f.write(self.wav)
            from_path = await asyncio.wait_for(self.client.convert(path), 60)
        self.assertEqual(from_path.flac, result.flac)

    async def test_convert_error_is_typed(self) -> None:
        with self.assertRaises(flacstream.ServerError) as cm:
            await self.client.convert(b"RIFF\x04\x00\x00\x00WAVX")
        self.assertIn(cm.exception.status, (400, 415))
        self.assertTrue(cm.exception.code)

    def test_sync_client(self) -> None:
        with flacstream.Client(self.server.base_url) as client:
            result = client.stream(self.wav)
            self.assertEqual(result.done.md5, md5(self.pcm))
            converted = client.convert(self.wav)
            self.assertEqual(StreamInfo.parse(converted.flac[8:42]).md5, md5(self.pcm))
            self.assertTrue(client.healthy())
