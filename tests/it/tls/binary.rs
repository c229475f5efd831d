//! The real `flacstream` binary over TLS: bad certificate files refused at
//! start, SIGHUP reloads without ending the process, probe and drain over
//! https, and SIGHUP harmless without TLS.

use super::*;

/// The real binary as a child process, killed (by its own pid) if a test
/// leaves it running.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn binary() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_flacstream"));
    cmd.env("RUST_LOG", "info")
        .env_remove("FLACSTREAM_TLS_CERT")
        .env_remove("FLACSTREAM_TLS_KEY")
        .stdin(std::process::Stdio::null());
    cmd
}

/// Runs `cmd` to its end (killed after `limit`); (success, stderr).
fn run(mut cmd: std::process::Command, limit: Duration) -> (bool, String) {
    let mut child = Child(
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn"),
    );
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("wait") {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{cmd:?} did not end in {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    if let Some(mut e) = child.0.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    (status.success(), stderr)
}

/// The first line from the server's stderr that contains `text`.
async fn wait_for(lines: &mut tokio::sync::mpsc::UnboundedReceiver<String>, text: &str) -> String {
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.recv().await {
            if line.contains(text) {
                return Some(line);
            }
        }
        None
    })
    .await;
    match found {
        Ok(Some(line)) => line,
        Ok(None) => panic!("the server's stderr ended before {text:?}"),
        Err(_) => panic!("no {text:?} from the server"),
    }
}

/// The real binary serving, its stderr read line by line.
struct Server {
    child: Child,
    pid: u32,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    /// The address from its "Listening on" line.
    addr: SocketAddr,
    /// That line, which says "(TLS)" when it serves TLS.
    listening: String,
}

impl Server {
    /// Starts `cmd` and waits until it says where it listens.
    async fn spawn(mut cmd: std::process::Command) -> Self {
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let mut child = Child(cmd.spawn().expect("spawn the server"));
        let pid = child.0.id();
        let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
        let stderr = child.0.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let listening = wait_for(&mut lines, "Listening on ").await;
        let addr: SocketAddr = listening
            .split("Listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {listening:?}"));
        Self {
            child,
            pid,
            lines,
            addr,
            listening,
        }
    }

    /// The first stderr line from now on that contains `text`.
    async fn wait_for(&mut self, text: &str) -> String {
        wait_for(&mut self.lines, text).await
    }

    /// Whether the process is still running.
    fn running(&mut self) -> bool {
        self.child.0.try_wait().expect("wait").is_none()
    }

    /// Waits (30 s at most) for the process to end; `when` names the cause.
    async fn wait_exit(&mut self, when: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while self.running() {
            assert!(
                std::time::Instant::now() < deadline,
                "the server did not stop {when}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Signals the child `pid` (and only it) with `kill -<signal>`.
fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{signal} {pid}");
}

#[actix_rt::test]
async fn the_binary_refuses_bad_files_reloads_on_sighup_and_drains_over_https() {
    let files = Files::new("binary");
    let data = files.dir.join("data");
    let data = path_str(&data);
    let base = ["--bind", "127.0.0.1:0", "--data-dir", data.as_str()];

    // Start-up: a missing file, or only one of the pair, is fatal and named.
    let mut cmd = binary();
    cmd.args(base).args(files.flags());
    let (ok, stderr) = run(cmd, Duration::from_secs(30));
    assert!(!ok && stderr.contains(&path_str(&files.cert)), "{stderr}");
    let mut cmd = binary();
    cmd.args(base).args(["--tls-cert", &path_str(&files.cert)]);
    let (ok, stderr) = run(cmd, Duration::from_secs(30));
    assert!(!ok && stderr.contains("--tls-key"), "{stderr}");

    let first = pair();
    files.write(&first);
    let mut cmd = binary();
    cmd.args(base)
        .args(files.flags())
        .args(["--drain-grace-seconds", "1"]);
    let mut server = Server::spawn(cmd).await;
    let (addr, pid) = (server.addr, server.pid);
    assert!(server.listening.contains("(TLS)"), "{}", server.listening);
    let tls = connect(addr, &first.der).await.expect("first certificate");
    assert_eq!(https_get(tls, "/healthz").await.0, 200);

    // SIGHUP reloads (the poll could too, so the log line is what proves the
    // signal was handled) and does not end the process, as it would by default.
    let second = pair();
    files.write(&second);
    signal(pid, "HUP");
    server.wait_for("SIGHUP: reloading").await;
    server.wait_for("TLS certificate reloaded").await;
    assert!(server.running(), "SIGHUP ended the server");
    let tls = connect(addr, &second.der)
        .await
        .expect("second certificate");
    assert_eq!(peer_certificate(&tls), second.der);
    drop(tls);

    // `flacstream probe` and `flacstream drain` over https, trusting the
    // server's certificate file through the same variable the server reads.
    let mut probe = binary();
    probe
        .args([
            "probe",
            "--url",
            &format!("https://127.0.0.1:{}/healthz", addr.port()),
        ])
        .env("FLACSTREAM_TLS_CERT", &files.cert);
    let (ok, stderr) = tokio::task::spawn_blocking(move || run(probe, Duration::from_secs(30)))
        .await
        .expect("join");
    assert!(ok, "probe over https failed: {stderr}");
    let mut drain = binary();
    drain
        .args([
            "drain",
            "--url",
            &format!("https://127.0.0.1:{}/admin/drain", addr.port()),
        ])
        .args(["--tls-cert", &path_str(&files.cert)]);
    let (ok, stderr) = tokio::task::spawn_blocking(move || run(drain, Duration::from_secs(60)))
        .await
        .expect("join");
    assert!(ok, "drain over https failed: {stderr}");
    server.wait_exit("after the drain").await;
}

#[actix_rt::test]
async fn sighup_does_not_end_a_plain_http_server() {
    let files = Files::new("plain-hup");
    let data = path_str(&files.dir.join("data"));
    let mut cmd = binary();
    cmd.args(["--bind", "127.0.0.1:0", "--data-dir", data.as_str()])
        .args(["--drain-grace-seconds", "1"]);
    let mut server = Server::spawn(cmd).await;
    let (addr, pid) = (server.addr, server.pid);
    assert!(!server.listening.contains("(TLS)"), "{}", server.listening);
    signal(pid, "HUP");
    server.wait_for("SIGHUP: nothing to reload").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(server.running(), "SIGHUP ended the plain-HTTP server");
    assert_eq!(common::http_get(addr, "/healthz").await.0, 200);
    signal(pid, "TERM");
    server.wait_exit("on SIGTERM").await;
}
