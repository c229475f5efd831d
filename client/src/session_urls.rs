//! The three addresses of one recorded session, made from `record --url`:
//! opening it (`/api/ws/audio?…`), joining it again as its producer
//! (`/api/ws/audio/{id}`), and its recording over HTTP
//! (`/api/audio/sessions/{id}/audio`, `http(s)://` for `ws(s)://`).
//!
//! A path in front of `/api/ws/audio` (an ingress that routes by prefix) is
//! kept in all three.

use crate::args::{check_ws_url, RecordArgs};
use crate::error::ClientError;
use crate::source::RawSpec;

/// The path every session URL starts from.
const AUDIO_PATH: &str = "/api/ws/audio";

/// The session's URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUrls {
    /// Opens the session with the client's id and format.
    pub open: String,
    /// Joins it as the producer.
    pub join: String,
    /// Its FLAC, over HTTP.
    pub audio: String,
}

impl SessionUrls {
    /// The URLs of session `id` under `url` (`…/api/ws/audio`, maybe with a query).
    pub fn new(
        url: &str,
        id: &str,
        spec: &RawSpec,
        args: &RecordArgs,
    ) -> Result<Self, ClientError> {
        check_ws_url(url)?;
        let (base, query) = match url.split_once('?') {
            Some((base, query)) => (base, Some(query)),
            None => (url, None),
        };
        let base = base.trim_end_matches('/');
        let Some(prefix) = base.strip_suffix(AUDIO_PATH) else {
            return Err(ClientError::Usage(format!(
                "--url {url}: a session URL ends in {AUDIO_PATH}"
            )));
        };
        let mut open = format!("{base}?{}&session_id={id}", spec.query());
        let params = [
            args.level.map(|l| format!("level={l}")),
            args.block_size.map(|b| format!("block_size={b}")),
            args.user_id
                .as_deref()
                .map(|u| format!("user_id={}", percent_encode(u))),
            query.filter(|q| !q.is_empty()).map(str::to_string),
        ];
        for param in params.into_iter().flatten() {
            open.push('&');
            open.push_str(&param);
        }
        let http = if let Some(rest) = prefix.strip_prefix("wss://") {
            format!("https://{rest}")
        } else if let Some(rest) = prefix.strip_prefix("ws://") {
            format!("http://{rest}")
        } else {
            return Err(ClientError::Usage(format!(
                "--url {url}: not ws:// or wss://"
            )));
        };
        Ok(Self {
            open,
            join: format!("{base}/{id}?role=produce"),
            audio: format!("{http}/api/audio/sessions/{id}/audio"),
        })
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{Args, Command};
    use crate::source::SampleFormat;
    use clap::Parser;

    fn record_args(extra: &[&str]) -> RecordArgs {
        let args = ["flacstream-client", "record", "in.wav"];
        match Args::try_parse_from(args.iter().chain(extra))
            .unwrap()
            .command
        {
            Some(Command::Record(r)) => r,
            None => panic!("a record command"),
        }
    }

    #[test]
    fn urls_keep_the_prefix_and_the_scheme() {
        let spec = RawSpec {
            format: SampleFormat::S16le,
            sample_rate: 16_000,
            channels: 2,
        };
        let args = record_args(&["--level", "3", "--user-id", "ann b"]);
        let urls = SessionUrls::new("wss://h:9/x/api/ws/audio?k=v", "ID", &spec, &args).unwrap();
        assert_eq!(
            urls.open,
            "wss://h:9/x/api/ws/audio?format=s16le&sample_rate=16000&channels=2&session_id=ID\
             &level=3&user_id=ann%20b&k=v"
        );
        assert_eq!(urls.join, "wss://h:9/x/api/ws/audio/ID?role=produce");
        assert_eq!(urls.audio, "https://h:9/x/api/audio/sessions/ID/audio");
        let plain = SessionUrls::new("ws://h/api/ws/audio/", "ID", &spec, &args).unwrap();
        assert_eq!(plain.audio, "http://h/api/audio/sessions/ID/audio");
        assert!(SessionUrls::new("ws://h/stream", "ID", &spec, &args).is_err());
    }
}
