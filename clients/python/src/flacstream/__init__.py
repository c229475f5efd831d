"""flacstream: a client for the flacstream service (docs/protocol.md).

Layout:

* :mod:`~flacstream.client`: :class:`AsyncClient`, every endpoint; and
  :mod:`~flacstream.sync`: :class:`Client`, the same, blocking.
* :mod:`~flacstream.stream`: ``/stream``, WAV in, FLAC out on one WebSocket.
* :mod:`~flacstream.recording`: recorded sessions from the producer's side
  (acks, resume); :mod:`~flacstream.listener`: listeners.
* :mod:`~flacstream.http` and :mod:`~flacstream.ws`: the transports (credential,
  TLS, retries of 429/503); :mod:`~flacstream.retry`: the retry policy.
* :mod:`~flacstream.errors`: the typed errors; :mod:`~flacstream.credentials`:
  API keys and tokens; :mod:`~flacstream.flac`: STREAMINFO and ``done``.
"""

from .client import AsyncClient, ConvertResult
from .config import ClientConfig, tls_context
from .credentials import Credential, IssuedToken, api_key, token
from .errors import (BadRequestError, ConflictError, FlacstreamError, ForbiddenError,
                     GoingAwayError, InternalServerError, InvalidAudioError, NotFoundError,
                     PayloadError, ProtocolError, RateLimitedError, ServerError,
                     StreamPolicyError, SupersededError, TransportError, UnauthorizedError,
                     UnavailableError)
from .flac import Done, StreamInfo, patch_streaminfo
from .listener import Listener, ListenResult
from .recording import Position, RecordedSession
from .retry import NO_RETRY, RetryPolicy
from .stream import StreamResult
from .sync import Client, SyncListener, SyncRecordedSession

__version__ = "0.1.0"

__all__ = [
    "AsyncClient", "Client", "ClientConfig", "ConvertResult", "Credential", "IssuedToken",
    "Done", "StreamInfo", "StreamResult", "Listener", "ListenResult", "Position",
    "RecordedSession", "SyncListener", "SyncRecordedSession", "RetryPolicy", "NO_RETRY",
    "api_key", "token", "tls_context", "patch_streaminfo",
    "FlacstreamError", "TransportError", "ProtocolError", "ServerError", "BadRequestError",
    "UnauthorizedError", "ForbiddenError", "NotFoundError", "ConflictError", "PayloadError",
    "RateLimitedError", "UnavailableError", "InternalServerError", "InvalidAudioError",
    "StreamPolicyError", "GoingAwayError", "SupersededError",
]
