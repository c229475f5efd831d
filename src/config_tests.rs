use super::*;

#[test]
fn defaults_validate() {
    let s = Config::defaults().validate().unwrap();
    assert_eq!(s.bind.port(), 8080);
    assert_eq!(s.max_message_size_bytes, 1 << 20);
    assert_eq!(s.connection_timeout, Duration::from_secs(30));
    assert!(s.encoder_threads >= 1);
}

#[test]
fn flags_override_and_zero_is_refused() {
    let c = Config::parse_from(["flacstream", "--max-sessions", "0"]);
    assert!(c.validate().is_err());
    let c = Config::parse_from([
        "flacstream",
        "--bind",
        "127.0.0.1:0",
        "--encoder-threads",
        "3",
    ]);
    let s = c.validate().unwrap();
    assert_eq!(s.encoder_threads, 3);
    assert_eq!(s.bind.port(), 0);
}

#[test]
fn auth_is_off_by_default_and_needs_a_key_when_on() {
    let s = Config::defaults().validate().unwrap();
    assert!(!s.auth.enabled());
    let c = Config::parse_from(["flacstream", "--auth"]);
    assert!(matches!(
        c.validate(),
        Err(ConfigError::Auth(crate::auth::AuthConfigError::NoKeys))
    ));
    let (_, a) = crate::auth::keys::new_key("a");
    let (_, b) = crate::auth::keys::new_key("b");
    let keys = format!("{a},{b}");
    let c = Config::parse_from(["flacstream", "--auth", "--api-keys", &keys]);
    assert_eq!(c.api_keys.len(), 2);
    assert!(c.validate().unwrap().auth.enabled());
    let c = Config::parse_from(["flacstream", "--api-keys", "a:sha256:00"]);
    assert!(matches!(c.validate(), Err(ConfigError::Auth(_))));
    let c = Config::parse_from(["flacstream", "--allowed-origins", "https://a.example,b"]);
    assert!(matches!(c.validate(), Err(ConfigError::Auth(_))));
}

#[test]
fn every_duration_has_an_upper_bound() {
    let seconds = [
        ("--connection-timeout-seconds", MAX_DURATION_SECONDS),
        ("--outbound-stall-seconds", MAX_DURATION_SECONDS),
        ("--drain-grace-seconds", MAX_DURATION_SECONDS),
        ("--session-resume-seconds", MAX_DURATION_SECONDS),
        ("--input-burst-seconds", MAX_DURATION_SECONDS),
        ("--header-timeout-seconds", MAX_DURATION_SECONDS),
        ("--tls-handshake-timeout-seconds", MAX_DURATION_SECONDS),
        ("--max-session-seconds", MAX_SESSION_SECONDS_LIMIT),
    ];
    for (flag, max) in seconds {
        let at = max.to_string();
        let c = Config::parse_from(["flacstream", flag, &at]);
        assert!(c.validate().is_ok(), "{flag} {at}");
        for over in [max + 1, u64::MAX] {
            let over = over.to_string();
            let c = Config::parse_from(["flacstream", flag, &over]);
            match c.validate() {
                Err(ConfigError::OutOfRange { name, .. }) => assert_eq!(name, flag),
                other => panic!("{flag} {over}: {other:?}"),
            }
        }
    }
}

#[test]
fn tls_needs_both_files_or_neither() {
    assert!(Config::defaults().validate().unwrap().tls.is_none());
    for half in [["--tls-cert", "c.pem"], ["--tls-key", "k.pem"]] {
        let c = Config::parse_from(["flacstream", half[0], half[1]]);
        assert!(matches!(c.validate(), Err(ConfigError::TlsHalfConfigured)));
    }
    let c = Config::parse_from(["flacstream", "--tls-cert", "c.pem", "--tls-key", "k.pem"]);
    let tls = c.validate().unwrap().tls.unwrap();
    assert_eq!(
        (tls.cert.to_str(), tls.key.to_str()),
        (Some("c.pem"), Some("k.pem"))
    );
    let c = Config::parse_from(["flacstream", "--tls-handshake-timeout-seconds", "0"]);
    assert!(c.validate().is_err());
    for bad in ["0", "1048577"] {
        let c = Config::parse_from(["flacstream", "--tls-max-handshakes-per-worker", bad]);
        assert!(c.validate().is_err(), "{bad}");
    }
}

#[test]
fn scaled_mode_needs_postgres_and_shared_storage_and_sane_bounds() {
    let parse = |args: &[&str]| {
        let mut all = vec!["flacstream"];
        all.extend_from_slice(args);
        Config::parse_from(all).validate()
    };
    let s = parse(&[]).unwrap();
    assert!(s.cluster.database_url.is_none() && s.cluster.storage_url.is_none());
    assert_eq!(s.cluster.lease, Duration::from_secs(DEFAULT_LEASE_SECONDS));
    assert_eq!(s.cluster.orphan_grace, s.session_resume);
    assert!(matches!(
        parse(&["--database-url", "mysql://x/y", "--storage-url", "s3://b/p"]),
        Err(ConfigError::DatabaseUrl)
    ));
    // A shared catalog with recordings on one pod's disk would lose them.
    for storage in [None, Some("file:///data/objects")] {
        let mut args = vec!["--database-url", "postgres://u@h/db"];
        if let Some(s) = storage {
            args.extend_from_slice(&["--storage-url", s]);
        }
        assert!(matches!(parse(&args), Err(ConfigError::ScaledNeedsStorage)));
    }
    // Other replicas must be able to reach this one.
    assert!(matches!(
        parse(&[
            "--database-url",
            "postgresql://u@h/db",
            "--storage-url",
            "s3://b/p",
            "--bind",
            "0.0.0.0:8080",
            "--allow-public-without-auth",
        ]),
        Err(ConfigError::AdvertiseUrl)
    ));
    let s = parse(&[
        "--database-url",
        "postgresql://u@h/db",
        "--storage-url",
        "s3://b/p",
        "--advertise-url",
        "http://10.0.0.7:8080",
    ])
    .unwrap();
    assert!(s.cluster.database_url.is_some());
    // Object storage alone is a single node with its recordings in a bucket.
    assert!(parse(&["--storage-url", "s3://b/p"]).is_ok());
    for (flag, bad) in [
        ("--lease-seconds", "2"),
        ("--durable-lag-seconds", "1"),
        ("--storage-timeout-seconds", "0"),
        ("--max-undurable-bytes", "0"),
        ("--lease-seconds", "86401"),
    ] {
        assert!(parse(&[flag, bad]).is_err(), "{flag} {bad}");
    }
}

#[test]
fn the_listening_address_is_loopback_unless_auth_is_on_or_public_is_allowed() {
    use crate::config::exposure::Exposure;
    let s = Config::defaults().validate().unwrap();
    assert_eq!(s.bind, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(s.exposure, Exposure::LoopbackByDefault);
    let (_, key) = crate::auth::keys::new_key("a");
    let s = Config::parse_from(["flacstream", "--auth", "--api-keys", &key])
        .validate()
        .unwrap();
    assert_eq!(s.bind, "0.0.0.0:8080".parse().unwrap());
    let public = Config::parse_from(["flacstream", "--bind", "0.0.0.0:9000"]);
    assert!(matches!(
        public.validate(),
        Err(ConfigError::PublicWithoutAuth(_))
    ));
    let s = Config::parse_from([
        "flacstream",
        "--bind",
        "0.0.0.0:9000",
        "--allow-public-without-auth",
    ])
    .validate()
    .unwrap();
    assert_eq!(s.exposure, Exposure::PublicWithoutAuth);
}

#[test]
fn the_log_format_is_text_unless_json_is_asked_for() {
    use crate::logging::LogFormat;
    assert_eq!(Config::defaults().log_format, LogFormat::Text);
    let c = Config::parse_from(["flacstream", "--log-format", "json"]);
    assert_eq!(c.log_format, LogFormat::Json);
    assert!(Config::try_parse_from(["flacstream", "--log-format", "xml"]).is_err());
}
