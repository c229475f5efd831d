//! The connections attached to a session and what each is sent.
//!
//! At most one connection is the producer (the newest wins); any number of
//! listeners receive the FLAC live. Every connection has its own bounded
//! outbound channel. The producer's channel throttles block dispatch (see the
//! session); a listener that falls a whole channel behind is cut off with
//! `slow_reader` instead of holding memory or slowing the producer.

use bytes::Bytes;
use tokio::sync::mpsc;

use super::Outbound;
use crate::StreamError;

/// Identifies one connection within a session.
pub type ConnectionId = u64;

/// What a connection does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sends audio; may also receive FLAC.
    Producer,
    /// Receives FLAC only.
    Listener,
}

/// One attached connection.
#[derive(Debug)]
pub struct Connection {
    /// Its outbound channel.
    pub tx: mpsc::Sender<Outbound>,
    /// What it does.
    pub role: Role,
    /// Whether it receives FLAC frames.
    pub flac: bool,
    /// Whether it receives chunk metadata.
    pub metadata: bool,
}

/// The session's connections.
#[derive(Debug, Default)]
pub struct Fanout {
    connections: Vec<(ConnectionId, Connection)>,
}

impl Fanout {
    /// Attaches a connection. A new producer replaces the old one, which is
    /// told it was superseded and returned.
    pub fn attach(&mut self, id: ConnectionId, connection: Connection) -> Option<ConnectionId> {
        let superseded = if connection.role == Role::Producer {
            self.producer()
        } else {
            None
        };
        if let Some(old) = superseded {
            self.fail(old, StreamError::Superseded);
        }
        self.connections.push((id, connection));
        superseded
    }

    /// Detaches a connection; returns it if it was attached.
    pub fn detach(&mut self, id: ConnectionId) -> Option<Connection> {
        let at = self.connections.iter().position(|(c, _)| *c == id)?;
        Some(self.connections.remove(at).1)
    }

    /// The producer's id.
    pub fn producer(&self) -> Option<ConnectionId> {
        self.connections
            .iter()
            .find(|(_, c)| c.role == Role::Producer)
            .map(|(id, _)| *id)
    }

    /// Whether `id` is the current producer.
    pub fn is_producer(&self, id: ConnectionId) -> bool {
        self.producer() == Some(id)
    }

    /// Connections attached.
    pub fn len(&self) -> usize {
        self.connections.len()
    }

    /// Whether none is attached.
    pub fn is_empty(&self) -> bool {
        self.connections.is_empty()
    }

    /// Events queued and not yet written on the producer's channel.
    pub fn producer_backlog(&self) -> usize {
        self.connections
            .iter()
            .find(|(_, c)| c.role == Role::Producer && c.flac)
            .map_or(0, |(_, c)| c.tx.max_capacity() - c.tx.capacity())
    }

    /// Sends FLAC bytes to every connection that wants them. A listener with
    /// only the final slot left is cut off as a slow reader.
    pub fn flac(&mut self, bytes: &Bytes) {
        let mut slow = Vec::new();
        for (id, c) in &self.connections {
            if !c.flac {
                continue;
            }
            if c.role == Role::Listener && c.tx.capacity() <= 1 {
                slow.push(*id);
                continue;
            }
            // The producer's channel has room by construction (the session
            // counts its backlog before dispatching).
            let _ = c.tx.try_send(Outbound::Flac(bytes.clone()));
        }
        for id in slow {
            self.fail(id, StreamError::ListenerTooSlow);
        }
    }

    /// Sends a chunk's metadata to every connection that asked, if its
    /// channel has room: it is advice (the catalog keeps every chunk), so a
    /// busy connection misses it rather than slowing or losing anything.
    pub fn metadata(&mut self, chunk: &std::sync::Arc<crate::chunk_analysis::ChunkMetadata>) {
        for (_, c) in &self.connections {
            if c.metadata && c.tx.capacity() > 1 {
                let _ = c.tx.try_send(Outbound::Chunk(std::sync::Arc::clone(chunk)));
            }
        }
    }

    /// Sends a notice to the producer, if there is one and its channel has
    /// room (a notice is advice: the acks carry the same numbers).
    pub fn notify_producer(&mut self, event: Outbound) {
        if let Some(c) = self
            .connections
            .iter()
            .find(|(_, c)| c.role == Role::Producer)
            .map(|(_, c)| c)
        {
            let _ = c.tx.try_send(event);
        }
    }

    /// Sends a final event to one connection and detaches it; whether it
    /// was attached.
    pub fn fail(&mut self, id: ConnectionId, error: StreamError) -> bool {
        match self.detach(id) {
            Some(c) => {
                let _ = c.tx.try_send(Outbound::Failed(error));
                true
            }
            None => false,
        }
    }

    /// Sends the same final event to every connection and detaches them all.
    pub fn finish_all(&mut self, event: &Outbound) {
        for (_, c) in self.connections.drain(..) {
            let _ = c.tx.try_send(event.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::listener_channel;

    fn listener(fanout: &mut Fanout, id: ConnectionId, frames: usize) -> mpsc::Receiver<Outbound> {
        let (tx, rx) = listener_channel(frames);
        fanout.attach(
            id,
            Connection {
                tx,
                role: Role::Listener,
                flac: true,
                metadata: false,
            },
        );
        rx
    }

    #[test]
    fn a_listener_may_fall_its_queue_behind_and_is_cut_off_one_frame_later() {
        let mut fanout = Fanout::default();
        let mut slow = listener(&mut fanout, 1, 8);
        let mut fast = listener(&mut fanout, 2, 8);
        for n in 0..20u8 {
            fanout.flac(&Bytes::from(vec![n]));
            // The fast listener reads everything at once.
            match fast.try_recv() {
                Ok(Outbound::Flac(b)) => assert_eq!(b[..], [n]),
                other => panic!("frame {n}: {other:?}"),
            }
        }
        assert_eq!(fanout.len(), 1, "only the fast listener is left");
        // The slow one got the frames its queue holds (the header slot
        // counts as one) and then `slow_reader`.
        let mut got = Vec::new();
        while let Ok(event) = slow.try_recv() {
            got.push(event);
        }
        assert_eq!(got.len(), 8 + 2);
        for (n, event) in got[..9].iter().enumerate() {
            assert!(matches!(event, Outbound::Flac(b) if b[..] == [n as u8]));
        }
        assert!(matches!(
            got[9],
            Outbound::Failed(StreamError::ListenerTooSlow)
        ));
    }
}
