"""Authentication against the real server started with ``--auth`` and a key
from ``flacstream key``: typed refusals, tokens issued and used."""

from __future__ import annotations

import asyncio
import logging
import uuid

import flacstream

from .audio import md5, pcm16, wav
from .server import ServerTestCase, make_key

RATE = 16000


class AuthTests(ServerTestCase):
    """``--auth``: API keys and tokens."""

    key = ""

    @classmethod
    def server_args(cls) -> tuple[str, ...]:
        cls.key, entry = make_key("pytest")
        return ("--auth", "--api-keys", entry)

    def setUp(self) -> None:
        self.pcm = pcm16(0.5, RATE, 1)
        self.client = flacstream.AsyncClient(self.server.base_url, api_key=self.key)

    async def test_no_or_wrong_credential_is_unauthorized(self) -> None:
        anonymous = flacstream.AsyncClient(self.server.base_url)
        wrong = flacstream.AsyncClient(self.server.base_url, api_key="fsk_" + "A" * 43)
        for client in (anonymous, wrong):
            with self.assertRaises(flacstream.UnauthorizedError) as cm:
                await client.list_sessions()
            self.assertEqual((cm.exception.code, cm.exception.status), ("unauthorized", 401))
            with self.assertRaises(flacstream.UnauthorizedError) as cm:
                await client.stream(wav(self.pcm, RATE, 1))
            self.assertEqual(cm.exception.code, "unauthorized")
            self.assertNotIn("AAAA", str(cm.exception))

    async def test_api_key_streams_and_records(self) -> None:
        result = await asyncio.wait_for(self.client.stream(wav(self.pcm, RATE, 1)), 30)
        self.assertEqual(result.done.md5, md5(self.pcm))
        session = await self.client.open_session(format="s16le", sample_rate=RATE, channels=1)
        await session.send(self.pcm)
        done = await asyncio.wait_for(session.close(), 30)
        self.assertEqual(done.md5, md5(self.pcm))
        self.assertEqual((await self.client.get_session(session.session_id))["status"], "closed")

    async def test_tokens(self) -> None:
        sid = str(uuid.uuid4())
        issued = await self.client.issue_token(session_id=sid, ttl_seconds=60)
        self.assertTrue(issued.token.startswith("fst1_"))
        self.assertNotIn(issued.token, repr(issued))
        scoped = self.client.with_token(issued)
        self.assertNotIn(issued.token, repr(scoped))
        session = await scoped.open_session(format="s16le", sample_rate=RATE, channels=1)
        self.assertEqual(session.session_id, sid)  # the token's session is the default id
        await session.send(self.pcm)
        session.abort()
        await session.send(b"")  # resumes with the token
        done = await asyncio.wait_for(session.close(), 30)
        self.assertEqual(done.md5, md5(self.pcm))
        self.assertEqual(await scoped.session_audio(sid), await self.client.session_audio(sid))

        # A session token reaches nothing else.
        with self.assertRaises(flacstream.ForbiddenError) as cm:
            await scoped.list_sessions()
        self.assertEqual((cm.exception.code, cm.exception.status), ("forbidden", 403))
        with self.assertRaises(flacstream.ForbiddenError):
            await scoped.stream(wav(self.pcm, RATE, 1))
        # Only an API key may ask for a token.
        with self.assertRaises(flacstream.ForbiddenError):
            await scoped.issue_token(user_id="ann")

        user = await self.client.issue_token(user_id="ann", ttl_seconds=30)
        ann = self.client.with_token(user.token)
        s2 = await ann.open_session(format="s16le", sample_rate=RATE, channels=1)
        await s2.send(self.pcm)
        await asyncio.wait_for(s2.close(), 30)
        self.assertEqual((await ann.get_session(s2.session_id))["user_id"], "ann")
        listed = await ann.list_sessions()
        self.assertEqual([s["session_id"] for s in listed["sessions"]], [s2.session_id])

    async def test_credentials_stay_out_of_debug_logs(self) -> None:
        with self.assertLogs(level=logging.DEBUG) as logs:
            logging.getLogger("websockets.client").debug("marker")
            await asyncio.wait_for(self.client.stream(wav(self.pcm, RATE, 1)), 30)
            await self.client.list_sessions()
        text = "\n".join(logs.output)
        self.assertIn("Authorization", text)  # the header was logged, its value not
        self.assertNotIn(self.key, text)

    def test_credentials_stay_out_of_reprs(self) -> None:
        with flacstream.Client(self.server.base_url, api_key=self.key) as client:
            self.assertNotIn(self.key, repr(client))
            self.assertNotIn(self.key, repr(client.asyncio.config))
            self.assertEqual(client.list_sessions()["sessions"] is not None, True)
