//! Clients too slow to be worth a connection: a download nobody reads, a
//! request head, a WebSocket frame or an upload trickled in. Each is cut
//! off at its documented time.

use super::*;

#[actix_rt::test]
async fn a_download_nobody_reads_is_counted_and_cut_off() {
    let service = start(&["--outbound-stall-seconds", "1"]);
    let addr = service.addr;
    // Noise: a FLAC nearly as large as the WAV (8 MB), twice what the kernel
    // lets a socket buffer on loopback (tcp_wmem's 4 MiB): the response
    // cannot all leave the server before the client reads.
    let samples: Vec<i32> = test_signal(2_000_000, 2, 16, 9)
        .iter()
        .map(|s| (s ^ 0x2D2D).clamp(-(1 << 15), (1 << 15) - 1))
        .collect();
    let wav = wav_bytes(&WavSpec::pcm(2, 44_100, 16), &pcm_bytes(&samples, 16));
    let answer = http_send(addr, "POST", "/upload", "audio/wav", &wav).await;
    assert_eq!(
        answer.status,
        201,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let id = answer.json()["session_id"]
        .as_str()
        .expect("id")
        .to_string();
    // A raw GET with a small receive buffer, never read.
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    socket.connect(&addr.into()).expect("connect");
    let mut stalled = std::net::TcpStream::from(socket);
    let head = format!("GET /api/audio/sessions/{id}/audio HTTP/1.1\r\nHost: x\r\n\r\n");
    std::io::Write::write_all(&mut stalled, head.as_bytes()).expect("write");
    // It counts against the client's cap while it lasts...
    wait_for_open(&service, 1).await;
    let started = Instant::now();
    // ...and the server gives up on it once it has not moved for the stall
    // time and the kernel cut-off's margin (the kernel's zero-window probes
    // back off, so up to a few seconds later).
    let limit =
        Duration::from_secs(1 + flacstream::websocket::socket::KERNEL_CUT_OFF_MARGIN_SECONDS + 6);
    let client = flacstream::limits::client_ip::ClientIp::resolve(
        std::net::Ipv4Addr::LOCALHOST.into(),
        &Default::default(),
        &Default::default(),
    );
    while service.client_connections.open_from(client) > 0 {
        assert!(
            started.elapsed() < limit,
            "the unread download was still open after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("unread download cut off after {:?}", started.elapsed());
    drop(stalled);
    service.drain().await;
}

#[actix_rt::test]
async fn a_request_head_not_sent_in_time_is_cut_off() {
    let service = start(&["--header-timeout-seconds", "1"]);
    let addr = service.addr;
    // Half a request line, then nothing.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /heal").await.unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .expect("closed within the deadline and a margin")
        .unwrap();
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900), "{took:?}");
    assert!(took < Duration::from_millis(2_500), "{took:?}");
    assert!(buf.starts_with(b"HTTP/1.1 408"), "{buf:?}");

    // Trickling the head a byte at a time does not reset the deadline.
    let (mut rd, mut wr) = TcpStream::connect(addr).await.unwrap().into_split();
    let trickle = tokio::spawn(async move {
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaaaaa".iter() {
            if wr.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let started = Instant::now();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), rd.read_to_end(&mut buf))
        .await
        .expect("a trickled head is cut off too")
        .unwrap();
    assert!(started.elapsed() < Duration::from_millis(2_500));
    assert!(buf.starts_with(b"HTTP/1.1 408"), "{buf:?}");
    trickle.abort();

    // A connection serves one request, so there is no second head that the
    // deadline (which actix-web applies to first requests only) would miss.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut buf))
        .await
        .expect("the server closes after its answer")
        .unwrap();
    let answer = Answer::parse(&buf);
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("connection"), Some("close"));
    service.drain().await;
}

#[actix_rt::test]
async fn a_websocket_frame_trickled_in_is_cut_off_at_the_idle_timeout() {
    let service = start(&["--connection-timeout-seconds", "2"]);
    let (wav, _) = small_wav(100, 8);
    for path in ["/stream", LIVE_8K] {
        let s = upgrade(service.addr, path, &[]).await;
        let (mut rd, mut wr) = s.into_split();
        // A whole message first where the format needs one (the WAV header),
        // then a binary frame of 4096 bytes, one byte every 100 ms: it would
        // take 7 minutes and never completes a message.
        let first = if path == "/stream" {
            wav[..44].to_vec()
        } else {
            Vec::new()
        };
        let trickle = tokio::spawn(async move {
            let mask = [1u8, 2, 3, 4];
            if !first.is_empty() {
                let mut frame = vec![0x82, 0x80 | first.len() as u8];
                frame.extend_from_slice(&mask);
                frame.extend(first.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
                if wr.write_all(&frame).await.is_err() {
                    return;
                }
            }
            let mut head = vec![0x82, 0x80 | 126];
            head.extend_from_slice(&4096u16.to_be_bytes());
            head.extend_from_slice(&mask);
            if wr.write_all(&head).await.is_err() {
                return;
            }
            for _ in 0..4096 {
                if wr.write_all(&[0]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let started = Instant::now();
        let frames = read_frames(&mut rd, Duration::from_secs(12)).await;
        trickle.abort();
        let error = frames.texts.last().expect("an error message");
        assert_eq!(error["code"], "idle_timeout", "{path}: {frames:?}");
        assert_eq!(frames.close, Some(1008), "{path}");
        assert!(frames.eof, "{path}: the server ends the connection");
        let took = started.elapsed();
        // Idle timeout, the registry's sweep (0.5 s), then the closing
        // handshake's wait for the client (2 s) and a margin.
        assert!(took >= Duration::from_millis(1_900), "{path}: {took:?}");
        assert!(took < Duration::from_secs(7), "{path}: {took:?}");
    }
    service.drain().await;
}

#[actix_rt::test]
async fn an_upload_trickled_below_the_minimum_rate_is_cut_off() {
    let service = start(&[
        "--connection-timeout-seconds",
        "2",
        "--min-upload-bytes-per-second",
        "1000",
    ]);
    let addr = service.addr;
    for path in ["/convert", "/upload"] {
        let (mut rd, mut wr) = TcpStream::connect(addr).await.unwrap().into_split();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\n\
             Content-Length: 100000\r\n\r\n"
        );
        wr.write_all(head.as_bytes()).await.unwrap();
        // A valid WAV, a byte every 250 ms: never idle for the 2 s idle
        // timeout, and far below 1000 bytes per second.
        let (wav, _) = small_wav(50_000, 10);
        let trickle = tokio::spawn(async move {
            for byte in wav {
                if wr.write_all(&[byte]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
        let started = Instant::now();
        let mut buf = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), rd.read_to_end(&mut buf))
            .await
            .expect("cut off in time")
            .unwrap();
        trickle.abort();
        Answer::parse(&buf).assert_error(408, "upload_too_slow");
        let took = started.elapsed();
        // The grace is the idle timeout (2 s).
        assert!(took >= Duration::from_millis(1_900), "{path}: {took:?}");
        assert!(took < Duration::from_secs(5), "{path}: {took:?}");
    }

    // An upload that stops altogether gets the idle timeout.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        b"POST /convert HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\n\
          Content-Length: 100000\r\n\r\nRIFF",
    )
    .await
    .unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("cut off in time")
        .unwrap();
    Answer::parse(&buf).assert_error(400, "idle_timeout");
    assert!(started.elapsed() >= Duration::from_millis(1_900));

    // An upload at a sane speed is converted, exactly.
    let (wav, samples) = small_wav(40_000, 9);
    let flac = http_send(addr, "POST", "/convert", "audio/wav", &wav).await;
    assert_exact(&flac.body, &samples, 1, 16, 512);
    service.drain().await;
}
