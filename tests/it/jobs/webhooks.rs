//! Webhooks: signed, delivered once in effect after a receiver that was
//! down, and refused for loopback and link-local receivers.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;

use super::receiver::{signature_is_valid, Delivery, Receiver, ANSWER_200, ANSWER_500};
use super::{free_port, job, jobs_when, upload_wav, SECRET};
use crate::common::{http, http_send, start};

#[actix_rt::test]
async fn a_webhook_arrives_signed_once_in_effect_after_its_receiver_was_down() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let service = start(&[
        "--webhook-url",
        &url,
        "--webhook-secret",
        SECRET,
        "--webhook-allowed-networks",
        "127.0.0.0/8",
        "--job-backoff-ms",
        "200",
        "--job-backoff-max-seconds",
        "1",
        "--job-poll-ms",
        "50",
    ]);
    let (_, wav) = upload_wav(2, 3);
    let answer = http_send(service.addr, "POST", "/upload", "audio/wav", &wav).await;
    assert_eq!(answer.status, 201);
    let id = answer.json()["session_id"].as_str().unwrap().to_string();
    // Nothing listens: attempts fail and are retried.
    let jobs = jobs_when(service.addr, &id, 20, |j| {
        j["jobs"].as_array().into_iter().flatten().any(|j| {
            j["kind"] == "webhook" && j["attempt_log"].as_array().is_some_and(|a| a.len() >= 2)
        })
    })
    .await;
    let hook = job(&jobs, "webhook");
    assert_eq!(hook["state"], "queued", "{hook}");
    assert!(
        hook["attempt_log"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("could not be reached"),
        "{hook}"
    );
    // Up, but failing once; then fine.
    let receiver = Receiver::start(port, ANSWER_500).await;
    for _ in 0..200 {
        if !receiver.deliveries().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    receiver.mode.store(ANSWER_200, Ordering::SeqCst);
    let jobs = jobs_when(service.addr, &id, 20, |j| {
        j["jobs"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|j| j["kind"] == "webhook" && j["state"] == "done")
    })
    .await;
    let hook = job(&jobs, "webhook");
    let log = hook["attempt_log"].as_array().unwrap();
    assert!(log.len() >= 4, "{hook}");
    assert_eq!(log.last().unwrap()["outcome"], "done");
    assert!(log
        .iter()
        .any(|a| a["detail"].as_str().unwrap().contains("answered 500")));
    let got = receiver.deliveries();
    assert!(got.len() >= 2, "one 500 and one 200: {got:?}");
    // The same event every time: id, type and bytes; each validly signed.
    let ids: HashSet<&str> = got
        .iter()
        .map(|d| d.header("Flacstream-Event-Id"))
        .collect();
    assert_eq!(ids.len(), 1, "{got:?}");
    assert!(got.iter().all(|d| d.body == got[0].body));
    assert!(got.iter().all(signature_is_valid), "{got:?}");
    let accepted: Vec<&Delivery> = got.iter().filter(|d| d.answered == 200).collect();
    assert_eq!(accepted.len(), 1, "delivered once: {got:?}");
    let event: Value = serde_json::from_slice(&accepted[0].body).unwrap();
    assert_eq!(event["type"], "session.ready");
    assert_eq!(event["id"], hook["id"]);
    assert_eq!(event["session"]["session_id"], id.as_str());
    assert_eq!(event["session"]["samples"], 32_000);
    assert_eq!(event["session"]["duration_ms"], 2000);
    // A tampered body does not verify.
    let mut forged = accepted[0].clone();
    forged.body[2] ^= 1;
    assert!(!signature_is_valid(&forged));
    // The other jobs of the session: its final analysis (the live one
    // already covered it).
    assert_eq!(job(&jobs, "analysis")["state"], "done", "{jobs}");
    let (_, metrics) = http(service.addr, "GET", "/metrics").await;
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(
        metrics.contains(r#"flacstream_job_attempts_total{kind="webhook",outcome="done"} 1"#),
        "{metrics}"
    );
    service.drain().await;
}

#[actix_rt::test]
async fn loopback_and_link_local_receivers_are_refused_unless_allowed() {
    use clap::Parser;
    use flacstream::config::Config;
    // An address in the URL itself is refused at start, in any form.
    for url in [
        "http://169.254.169.254/latest/meta-data",
        "http://[::ffff:169.254.169.254]/",
        "http://127.0.0.1:9/x",
    ] {
        let refused = Config::parse_from([
            "flacstream",
            "--webhook-url",
            url,
            "--webhook-secret",
            SECRET,
        ])
        .validate()
        .err()
        .unwrap_or_else(|| panic!("{url} was accepted"));
        assert!(refused.to_string().contains("is refused"), "{refused}");
    }
    let allowed = Config::parse_from([
        "flacstream",
        "--webhook-url",
        "http://127.0.0.1:9/x",
        "--webhook-secret",
        SECRET,
        "--webhook-allowed-networks",
        "127.0.0.0/8",
    ])
    .validate();
    assert!(allowed.is_ok());
    let (_, wav) = upload_wav(1, 4);
    // A name is resolved at each attempt: one that resolves to loopback
    // is refused then.
    let service = start(&[
        "--webhook-url",
        "http://localhost:9/x",
        "--webhook-secret",
        SECRET,
        "--job-poll-ms",
        "50",
        "--job-max-attempts",
        "1",
    ]);
    let answer = http_send(service.addr, "POST", "/upload", "audio/wav", &wav).await;
    let id = answer.json()["session_id"].as_str().unwrap().to_string();
    let jobs = jobs_when(service.addr, &id, 20, |j| {
        j["jobs"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|j| j["kind"] == "webhook" && j["state"] == "failed")
    })
    .await;
    assert!(
        job(&jobs, "webhook")["last_error"]
            .as_str()
            .unwrap()
            .contains("refused addresses"),
        "{jobs}"
    );
    service.drain().await;
}
