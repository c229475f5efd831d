"""Recorded sessions against the real server: a forced drop and resume,
a listener, and the sessions HTTP API."""

from __future__ import annotations

import asyncio
import uuid

import flacstream
from flacstream import StreamInfo

from .audio import decode_flac, first_difference, have_flac, md5, pcm16
from .server import ServerTestCase

RATE = 16000
CHANNELS = 1
ALIGN = 2 * CHANNELS


class SessionTests(ServerTestCase):
    """Producer, listener and HTTP API of recorded sessions."""

    def setUp(self) -> None:
        self.client = flacstream.AsyncClient(self.server.base_url)

    def assert_recording(self, flac: bytes, pcm: bytes) -> None:
        info = StreamInfo.parse(flac[8:42])
        self.assertEqual((info.total_samples, info.md5), (len(pcm) // ALIGN, md5(pcm)))
        if not have_flac():
            print("SKIPPED: flac is not installed; decoded samples not compared")
            return
        decoded = decode_flac(flac)
        self.assertTrue(decoded == pcm, first_difference(decoded, pcm, CHANNELS, 2))

    async def test_drop_and_resume_loses_nothing(self) -> None:
        pcm = pcm16(4.0, RATE, CHANNELS, seed=7)
        user = f"py-{uuid.uuid4().hex[:8]}"
        sid = str(uuid.uuid4())
        session = await self.client.open_session(format="s16le", sample_rate=RATE,
                                                 channels=CHANNELS, session_id=sid, user_id=user)
        self.assertEqual(session.session_id, sid)
        cut = 1 * RATE * ALIGN + 1  # one byte into a sample
        for pos in range(0, cut, 5000):
            await session.send(pcm[pos:min(pos + 5000, cut)])
        position = await session.wait_acks()
        self.assertEqual(position.samples_received, cut // ALIGN)

        session.abort()  # no close frame: the TCP connection just goes
        await asyncio.sleep(0.2)
        self.assertEqual(session.close_code, 1006)
        # The next send resumes from the server's position, resending the odd byte.
        for pos in range(cut, len(pcm), 6000):
            await session.send(pcm[pos:pos + 6000])
        self.assertEqual(session.resumes, 1)
        self.assertTrue(session.hello["resumed"])
        self.assertEqual(session.hello["samples_received"], cut // ALIGN)

        # An explicit resume mid-way too (the old connection is superseded).
        await session.resume()
        self.assertEqual(session.resumes, 2)
        await session.wait_acks()
        # A drop just before closing: close() comes back first.
        session.abort()
        done = await asyncio.wait_for(session.close(), 30)
        self.assertEqual(session.resumes, 3)
        self.assertEqual((done.reason, done.samples, done.md5),
                         ("closed", len(pcm) // ALIGN, md5(pcm)))

        record = await self.client.get_session(sid)
        self.assertEqual((record["status"], record["samples"], record["user_id"]),
                         ("closed", len(pcm) // ALIGN, user))
        listed = await self.client.list_sessions(user_id=user)
        self.assertEqual([s["session_id"] for s in listed["sessions"]], [sid])
        flac = await self.client.session_audio(sid)
        self.assertEqual(flac[8:42], done.streaminfo)
        self.assert_recording(flac, pcm)

    async def test_listener_hears_the_recording(self) -> None:
        pcm = pcm16(2.0, RATE, CHANNELS, seed=9)
        session = await self.client.open_session(format="s16le", sample_rate=RATE,
                                                 channels=CHANNELS, acks=False)
        listener = await self.client.listen(session.session_id)
        self.assertEqual(listener.hello["role"], "listener")
        heard = asyncio.create_task(listener.collect())
        await session.send_all(pcm, 3000)
        done = await asyncio.wait_for(session.close(), 30)
        result = await asyncio.wait_for(heard, 30)
        self.assertTrue(result.complete)
        self.assertEqual(result.done, done)
        flac = await self.client.session_audio(session.session_id)
        self.assertEqual(result.flac, flac)
        self.assert_recording(flac, pcm)

        analysis = None
        for _ in range(50):  # stored moments after done
            try:
                analysis = await self.client.session_analysis(session.session_id)
                break
            except flacstream.NotFoundError:
                await asyncio.sleep(0.1)
        self.assertIsNotNone(analysis)

        await self.client.delete_session(session.session_id)
        with self.assertRaises(flacstream.NotFoundError) as cm:
            await self.client.get_session(session.session_id)
        self.assertEqual((cm.exception.code, cm.exception.status), ("session_not_found", 404))

    async def test_session_errors_are_typed(self) -> None:
        with self.assertRaises(flacstream.NotFoundError) as cm:
            await self.client.listen(str(uuid.uuid4()))
        self.assertEqual(cm.exception.code, "session_not_found")
        sid = str(uuid.uuid4())
        first = await self.client.open_session(format="s16le", sample_rate=RATE,
                                               channels=CHANNELS, session_id=sid)
        with self.assertRaises(flacstream.ConflictError) as cm2:
            await self.client.open_session(format="s16le", sample_rate=RATE,
                                           channels=CHANNELS, session_id=sid)
        self.assertEqual(cm2.exception.code, "session_exists")
        with self.assertRaises(flacstream.ConflictError) as cm3:
            await self.client.delete_session(sid)
        self.assertEqual(cm3.exception.code, "session_live")
        record = await self.client.close_session(sid)
        self.assertEqual(record["status"], "closed")
        await first.detach()

    def test_sync_session(self) -> None:
        pcm = pcm16(1.0, RATE, CHANNELS, seed=3)
        with flacstream.Client(self.server.base_url) as client:
            session = client.open_session(format="s16le", sample_rate=RATE, channels=CHANNELS)
            session.send(pcm[:10001])
            session.wait_acks()
            session.abort()
            session.send(pcm[10001:])
            done = session.close()
            self.assertEqual(done.md5, md5(pcm))
            self.assertEqual(session.resumes, 1)
            self.assertEqual(client.session_audio(session.session_id)[8:42], done.streaminfo)
