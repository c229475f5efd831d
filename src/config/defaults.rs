//! Every setting's default, and the bounds a value must stay within, with
//! its unit and its reason.

/// Default per-frame and per-reassembled-message limit, in bytes (1 MiB):
/// 6 s of CD audio, far more than any live client sends at once.
pub const DEFAULT_MAX_MESSAGE_SIZE_BYTES: usize = 1024 * 1024;

/// Default idle timeout in seconds: a stream that sends no audio this long is
/// closed with `idle_timeout`.
pub const DEFAULT_CONNECTION_TIMEOUT_SECONDS: u64 = 30;

/// Default cap on concurrent sessions. A 16-bit stereo stream at the default
/// block size holds about 1.5 MiB at worst (one 1 MiB message being staged, a
/// 128 KiB ring, and up to ~37 ~10 KB frames between the encoder and the
/// socket), so 1024 sessions stay near 1.5 GiB. Wide hi-res formats cost more
/// (README "Bounds"); size this for the formats you expect.
pub const DEFAULT_MAX_SESSIONS: usize = 1024;

/// Level below which a chunk is `silent` and a stretch may be a silence,
/// dBFS: ffmpeg's `silencedetect` default noise level, below the floor of
/// any real microphone's self-noise, so only digital or near-digital
/// silence counts unless a deployment raises it.
pub const DEFAULT_SILENCE_DBFS: f64 = -60.0;

/// Shortest silence the analysis reports, in milliseconds: longer than the
/// pauses inside a spoken sentence (~100–500 ms), short enough to find the
/// gaps between turns.
pub const DEFAULT_SILENCE_MIN_MS: u64 = 1000;

/// Default time a client may leave output unread before it is closed with
/// `slow_reader`, in seconds.
pub const DEFAULT_OUTBOUND_STALL_SECONDS: u64 = 10;

/// Default time open streams may run on after SIGTERM before being flushed
/// and closed with 1001, in seconds. A deployment's termination grace period
/// must exceed this plus the outbound stall time.
pub const DEFAULT_DRAIN_GRACE_SECONDS: u64 = 30;

/// Default connections one session may have at once (producer + listeners).
pub const DEFAULT_MAX_CONNECTIONS_PER_SESSION: usize = 5;

/// Default time a recorded session waits for a connection after its last one
/// left, in seconds; then it is finalized.
pub const DEFAULT_SESSION_RESUME_SECONDS: u64 = 60;

/// Default longest recorded session, in seconds (4 hours); then it is finalized.
pub const DEFAULT_MAX_SESSION_SECONDS: u64 = 4 * 60 * 60;

/// Default largest upload to `/convert` and `/upload`, in bytes (2 GiB). The
/// upload is spooled to disk, never held in memory.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// Default time a new connection has to send its whole request head, in
/// seconds (actix-web's own default). A browser or proxy sends a head in
/// one packet; a client that trickles it (slowloris) holds a connection and
/// a buffer for nothing. Over it the server answers 408 and closes.
pub const DEFAULT_HEADER_TIMEOUT_SECONDS: u64 = 5;

/// Default slowest average upload, in bytes per second (8 KiB/s, 64 kbit/s:
/// below any link an audio file is uploaded over, far above a trickle). The
/// bound starts after a grace as long as the idle timeout, and only time
/// spent waiting for the client counts (`convert/spool.rs`).
pub const DEFAULT_MIN_UPLOAD_BYTES_PER_SECOND: u64 = 8 * 1024;

/// Least `--max-input-rate`: real time. A live source sends at real time.
pub const MIN_INPUT_RATE: f64 = 1.0;

/// Default time a TLS client has to finish its handshake after connecting,
/// in seconds (actix-tls's own default). A client that connects and sends
/// nothing, or trickles its handshake, holds a connection only this long; a
/// real client needs one or two round trips.
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT_SECONDS: u64 = 3;

/// Longest any timeout, grace period or burst setting may be, in seconds
/// (inclusive): one day. Far beyond any sensible value, and far enough below
/// what `Instant` can add that no deadline computed from a setting can
/// overflow (actix-web panics on every connection with a header timeout of
/// `u64::MAX` seconds).
pub const MAX_DURATION_SECONDS: u64 = 24 * 60 * 60;

/// Longest `--max-session-seconds` may be (inclusive): a year, a bound for
/// recordings left running, not a timeout.
pub const MAX_SESSION_SECONDS_LIMIT: u64 = 366 * 24 * 60 * 60;

/// Default TLS handshakes one HTTP worker runs at once. At the limit the
/// worker stops accepting, so every client of the worker waits: actix's own
/// default of 256 let 300 connections that sent nothing stall every https
/// request for the handshake timeout. A pending handshake costs about 9 KiB
/// when the client sends nothing and 27 KiB when it sends all but the end
/// of a 16 KiB ClientHello (measured, README "Bounds"), so 4096 per worker
/// is 36–110 MiB at worst, and keeping it full against the 3 s handshake
/// timeout takes over 1,300 new connections a second per worker, which is
/// a flood for the network layer to stop. Each also holds a descriptor:
/// `ulimit -n` must cover it.
pub const DEFAULT_TLS_MAX_HANDSHAKES_PER_WORKER: usize = 4096;

/// Most `--tls-max-handshakes-per-worker` may be (inclusive): beyond this
/// the descriptors, not the limit, are what runs out.
pub const MAX_TLS_HANDSHAKES_PER_WORKER: usize = 1 << 20;

/// Default lease of a session's owner in scaled mode, in seconds: a replica
/// that dies is replaced as owner this long after its last renewal, so a
/// producer resumes elsewhere within it (plus a renewal interval).
pub const DEFAULT_LEASE_SECONDS: u64 = 10;
/// Least lease, in seconds: renewals go every third of it, and a renewal
/// must fit in that with room to spare.
pub const MIN_LEASE_SECONDS: u64 = 3;
/// Default bound on how far `samples_durable` lags live audio in scaled
/// mode, in seconds: a segment is cut at most this long after its oldest
/// frame, less the time its PUT is allowed.
pub const DEFAULT_DURABLE_LAG_SECONDS: u64 = 5;
/// Least durable lag, in seconds.
pub const MIN_DURABLE_LAG_SECONDS: u64 = 2;
/// Default frame bytes a session may hold that are not yet durable in
/// object storage before its producer waits (16 MiB: over two minutes of CD
/// audio as FLAC, so a storage outage of that long stalls no producer).
pub const DEFAULT_MAX_UNDURABLE_BYTES: usize = 16 << 20;
/// Default time one request to object storage may take, in seconds,
/// retries included.
pub const DEFAULT_STORAGE_TIMEOUT_SECONDS: u64 = 20;
