//! The WebSocket plumbing both WebSocket endpoints share, below them and
//! above nothing of theirs: the connection's read and write loops, the
//! per-frame size limit checked on the frame header, and the TCP socket
//! kept per connection so a client that stops reading can be cut off.
//!
//! - [`transport`]: the read loop (awaits the session actor: backpressure)
//!   and the write loop (slow-reader cut-off) of one connection.
//! - [`frame_limit`]: refuses a frame whose header declares more than the
//!   message limit, before any of its payload is buffered.
//! - [`socket`]: each accepted connection's TCP socket (WebSocket or plain
//!   HTTP download), with the kernel's own cut-off for unread output.

pub mod frame_limit;
pub mod socket;
pub mod transport;
