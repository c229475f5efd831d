//! `wss://` to an in-process server with TLS and authentication on: a CA
//! made here (rcgen) signs the server's certificate and the client trusts
//! it through `--ca-file`. An API key (flag) and a token (environment
//! variable) are accepted; no key, a wrong key, and no `--ca-file` fail
//! clearly, at once, and never print the credential.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::common::{
    assert_flac_matches, fixture, run_client, run_client_with, start_server, temp_dir,
};
use flacstream::auth::keys::new_key;
use flacstream_codec::fixture::WavSpec;

/// The TLS server with auth on, its CA file and a valid key.
struct Secure {
    addr: SocketAddr,
    ca: PathBuf,
    key: String,
}

fn secure() -> &'static Secure {
    static SECURE: OnceLock<Secure> = OnceLock::new();
    SECURE.get_or_init(|| {
        let dir = temp_dir("tls");
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "flacstream client test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let server_key = rcgen::KeyPair::generate().unwrap();
        let server_params =
            rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();
        let (ca, cert, key_file) = (
            dir.join("ca.pem"),
            dir.join("cert.pem"),
            dir.join("key.pem"),
        );
        std::fs::write(&ca, ca_cert.pem()).unwrap();
        std::fs::write(&cert, server_cert.pem()).unwrap();
        std::fs::write(&key_file, server_key.serialize_pem()).unwrap();
        let (key, entry) = new_key("k1");
        let flags = [
            "--tls-cert".to_string(),
            path(&cert),
            "--tls-key".into(),
            path(&key_file),
            "--auth".into(),
            "--api-keys".into(),
            entry,
        ];
        Secure {
            addr: start_server(&flags),
            ca,
            key,
        }
    })
}

fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// A user's token from `POST /api/tokens` over https, asked with `key`.
fn user_token(s: &Secure) -> String {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let tls = flacstream_client::tls::client_config(Some(&s.ca)).unwrap();
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured((*tls).clone())
            .build()
            .unwrap();
        let answer = client
            .post(format!("https://127.0.0.1:{}/api/tokens", s.addr.port()))
            .bearer_auth(&s.key)
            .header("content-type", "application/json")
            .body(r#"{"user_id":"ann","ttl_seconds":300}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), 200);
        let body: serde_json::Value = serde_json::from_str(&answer.text().await.unwrap()).unwrap();
        body["token"].as_str().unwrap().to_string()
    })
}

#[test]
fn wss_with_an_api_key_or_a_token_round_trips_exactly() {
    let s = secure();
    let dir = temp_dir("wss");
    let f = fixture(&dir, "a.wav", WavSpec::pcm(2, 44_100, 16), 20_000, 31);
    let url = format!("wss://127.0.0.1:{}/stream", s.addr.port());
    let out = dir.join("out");
    let run = run_client(&[
        f.path.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--url".as_ref(),
        url.as_ref(),
        "--ca-file".as_ref(),
        s.ca.as_os_str(),
        "--api-key".as_ref(),
        s.key.as_ref(),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_flac_matches(&out.join("a.flac"), &f);
    assert!(!run.stderr.contains(&s.key), "the key is never printed");

    // The token from the environment, through `record` over wss and the
    // download over https.
    let token = user_token(s);
    let url = format!("wss://127.0.0.1:{}/api/ws/audio", s.addr.port());
    let flac = dir.join("recorded.flac");
    let run = run_client_with(
        &[
            "record".as_ref(),
            f.path.as_os_str(),
            "--url".as_ref(),
            url.as_ref(),
            "--ca-file".as_ref(),
            s.ca.as_os_str(),
            "--download".as_ref(),
            flac.as_os_str(),
        ],
        &[("FLACSTREAM_TOKEN", &token)],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_flac_matches(&flac, &f);
    assert!(!run.stderr.contains(&token), "the token is never printed");
}

#[test]
fn no_key_a_wrong_key_and_an_untrusted_certificate_fail_at_once() {
    let s = secure();
    let dir = temp_dir("refused");
    let f = fixture(&dir, "a.wav", WavSpec::pcm(1, 8_000, 16), 800, 32);
    let url = format!("wss://127.0.0.1:{}/stream", s.addr.port());
    let out = dir.join("out");
    let base = [
        f.path.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--url".as_ref(),
        url.as_ref(),
        "--ca-file".as_ref(),
        s.ca.as_os_str(),
    ];
    let none = run_client(&base);
    assert_eq!(none.code, 4, "{}", none.stderr);
    assert!(
        none.stderr.contains("HTTP 401") && none.stderr.contains("no credential was sent"),
        "{}",
        none.stderr
    );
    assert!(
        !none.stderr.contains("retrying"),
        "401 is not retried: {}",
        none.stderr
    );

    let (wrong, _) = new_key("k1"); // the right id, an unknown secret
    let run = run_client_with(&base, &[("FLACSTREAM_API_KEY", &wrong)], None);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(
        run.stderr.contains("API key given was not accepted"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains(&wrong),
        "the key is never printed: {}",
        run.stderr
    );
    assert!(!run.stderr.contains("retrying"), "{}", run.stderr);

    let record_url = format!("wss://127.0.0.1:{}/api/ws/audio", s.addr.port());
    let record = run_client(&[
        "record".as_ref(),
        f.path.as_os_str(),
        "--url".as_ref(),
        record_url.as_ref(),
        "--ca-file".as_ref(),
        s.ca.as_os_str(),
    ]);
    assert_eq!(
        record.code, 4,
        "record without a credential: {}",
        record.stderr
    );
    assert!(
        record.stderr.contains("no credential was sent"),
        "{}",
        record.stderr
    );
    assert!(record.stdout.is_empty(), "no session, no id");

    // Without --ca-file the private CA is not trusted: a TLS failure, not retried.
    let untrusted = run_client(&[
        f.path.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--url".as_ref(),
        url.as_ref(),
        "--api-key".as_ref(),
        s.key.as_ref(),
    ]);
    assert_eq!(untrusted.code, 2, "{}", untrusted.stderr);
    assert!(
        untrusted.stderr.to_lowercase().contains("certificate"),
        "{}",
        untrusted.stderr
    );
    assert!(
        !untrusted.stderr.contains("retrying"),
        "{}",
        untrusted.stderr
    );
}
