//! Tests for the fault-injecting test HTTP server (`charter_tests::server`),
//! driven by plain `TcpStream` clients.
#![allow(clippy::unwrap_used)]

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant, UNIX_EPOCH};

use charter_tests::server::{Fault, TestServer, http_date, parse_http_date};

const FILE: &str = "/releases/panel/1.0.0/panel-1.0.0.tar.zst";
const SIZE: usize = 300_000;

fn content(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(31).wrapping_add(u32::from(seed)) as u8 % 251)
        .collect()
}

/// A root with FILE (SIZE bytes) and an empty directory /releases/empty.
fn fixture() -> (tempfile::TempDir, TestServer, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let data = content(SIZE, 0);
    write(dir.path(), FILE, &data);
    std::fs::create_dir_all(dir.path().join("releases/empty")).unwrap();
    let server = TestServer::serve(dir.path());
    (dir, server, data)
}

fn write(root: &Path, url_path: &str, data: &[u8]) {
    let p = root.join(url_path.trim_start_matches('/'));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn connect(server: &TestServer) -> TcpStream {
    let addr = server
        .url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Sends a request and reads the response head; returns the stream
/// positioned at the body and any body bytes already read.
fn send(
    server: &TestServer,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (Resp, TcpStream) {
    let mut s = connect(server);
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let resp = read_head(&mut s);
    (resp, s)
}

fn read_head(s: &mut TcpStream) -> Resp {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).unwrap();
        assert_eq!(
            n,
            1,
            "EOF inside the response head: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.push(byte[0]);
    }
    let text = String::from_utf8(buf).unwrap();
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap();
    assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
    let status = status_line[9..12].parse().unwrap();
    let headers = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.to_owned(), v.trim().to_owned())
        })
        .collect();
    Resp {
        status,
        headers,
        body: Vec::new(),
    }
}

/// A complete request: the body is everything until the server closes.
fn request(server: &TestServer, method: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
    let (mut resp, mut s) = send(server, method, path, headers);
    s.read_to_end(&mut resp.body).unwrap();
    resp
}

fn get(server: &TestServer, path: &str) -> Resp {
    request(server, "GET", path, &[])
}

fn mtime_secs(root: &Path, url_path: &str) -> u64 {
    std::fs::metadata(root.join(url_path.trim_start_matches('/')))
        .unwrap()
        .modified()
        .unwrap()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn get_serves_the_file_with_headers() {
    let (dir, server, data) = fixture();
    assert!(server.url().starts_with("http://127.0.0.1:"));
    assert!(server.url().ends_with('/'));
    let r = get(&server, FILE);
    assert_eq!(r.status, 200);
    assert!(r.body == data, "body differs");
    assert_eq!(r.header("content-length"), Some(SIZE.to_string().as_str()));
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert_eq!(r.header("connection"), Some("close"));
    let etag = r.header("etag").unwrap();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() > 2,
        "{etag}"
    );
    let lm = r.header("last-modified").unwrap();
    assert!(lm.ends_with(" GMT") && lm.len() == 29, "{lm}");
    assert_eq!(parse_http_date(lm), Some(mtime_secs(dir.path(), FILE)));

    let log = server.requests();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].method, "GET");
    assert_eq!(log[0].path, FILE);
    assert_eq!(log[0].status, 200);
    assert_eq!(log[0].body_bytes_sent, SIZE as u64);
    assert_eq!(log[0].header("HOST"), Some("test"));
    assert_eq!(log[0].header("x-missing"), None);
}

#[test]
fn files_are_read_at_request_time() {
    let (dir, server, _) = fixture();
    let etag1 = get(&server, FILE).header("etag").unwrap().to_owned();
    let new = content(1234, 7);
    write(dir.path(), FILE, &new);
    let r = get(&server, FILE);
    assert_eq!(r.body, new);
    assert_ne!(r.header("etag").unwrap(), etag1);
}

#[test]
fn head_sends_headers_only() {
    let (_dir, server, _) = fixture();
    let r = request(&server, "HEAD", FILE, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some(SIZE.to_string().as_str()));
    assert!(r.header("etag").is_some());
    assert!(r.body.is_empty());
    let log = server.requests();
    assert_eq!(
        (log[0].method.as_str(), log[0].body_bytes_sent),
        ("HEAD", 0)
    );
}

#[test]
fn missing_files_and_directories_are_404() {
    let (_dir, server, _) = fixture();
    assert_eq!(get(&server, "/releases/nope.bin").status, 404);
    assert_eq!(get(&server, "/releases/empty").status, 404);
    assert_eq!(get(&server, "/releases/empty/").status, 404);
    assert_eq!(get(&server, "/").status, 404);
    assert_eq!(request(&server, "POST", FILE, &[]).status, 405);
}

#[test]
fn dot_dot_is_refused_and_query_is_stripped() {
    let (dir, server, data) = fixture();
    write(dir.path(), "/secret", b"no");
    let root = dir.path().join("releases");
    let inner = TestServer::serve(&root);
    assert_eq!(get(&inner, "/../secret").status, 400);
    assert_eq!(get(&inner, "/panel/../../secret").status, 400);
    assert_eq!(get(&inner, "/%2e%2e/secret").status, 400);
    assert_eq!(
        get(&inner, "/panel/1.0.0/../1.0.0/panel-1.0.0.tar.zst").status,
        400
    );

    let r = get(&server, &format!("{FILE}?v=1&x=../.."));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, data);
    assert_eq!(server.requests()[0].path, FILE);
}

#[test]
fn ranges() {
    let (_dir, server, data) = fixture();
    let r = request(&server, "GET", FILE, &[("Range", "bytes=1000-")]);
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 1000-{}/{SIZE}", SIZE - 1).as_str())
    );
    assert_eq!(
        r.header("content-length"),
        Some((SIZE - 1000).to_string().as_str())
    );
    assert_eq!(r.body, data[1000..]);

    let r = request(&server, "GET", FILE, &[("Range", "bytes=100-199")]);
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 100-199/{SIZE}").as_str())
    );
    assert_eq!(r.body, data[100..200]);

    // The end is clamped to the file.
    let r = request(&server, "GET", FILE, &[("Range", "bytes=299990-999999")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, data[299_990..]);

    // Suffix range.
    let r = request(&server, "GET", FILE, &[("Range", "bytes=-10")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, data[SIZE - 10..]);

    for spec in [
        format!("bytes={SIZE}-"),
        format!("bytes={}-{}", SIZE + 5, SIZE + 9),
    ] {
        let r = request(&server, "GET", FILE, &[("Range", &spec)]);
        assert_eq!(r.status, 416, "{spec}");
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes */{SIZE}").as_str())
        );
        assert!(r.body.is_empty());
    }

    // Not understood -> whole file.
    let r = request(&server, "GET", FILE, &[("Range", "bytes=5-1")]);
    assert_eq!((r.status, r.body.len()), (200, SIZE));

    // If-Range: honoured only when the ETag still matches.
    let etag = get(&server, FILE).header("etag").unwrap().to_owned();
    let r = request(
        &server,
        "GET",
        FILE,
        &[("Range", "bytes=10-"), ("If-Range", &etag)],
    );
    assert_eq!(r.status, 206);
    let r = request(
        &server,
        "GET",
        FILE,
        &[("Range", "bytes=10-"), ("If-Range", "\"stale\"")],
    );
    assert_eq!((r.status, r.body.len()), (200, SIZE));
}

#[test]
fn if_none_match_gives_304() {
    let (_dir, server, _) = fixture();
    let etag = get(&server, FILE).header("etag").unwrap().to_owned();
    let r = request(&server, "GET", FILE, &[("If-None-Match", &etag)]);
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    let list = format!("\"other\", W/{etag}");
    assert_eq!(
        request(&server, "GET", FILE, &[("If-None-Match", &list)]).status,
        304
    );
    let r = request(&server, "GET", FILE, &[("If-None-Match", "\"other\"")]);
    assert_eq!((r.status, r.body.len()), (200, SIZE));
}

#[test]
fn if_modified_since_gives_304() {
    let (dir, server, _) = fixture();
    let mtime = mtime_secs(dir.path(), FILE);
    for since in [http_date(mtime), http_date(mtime + 3600)] {
        let r = request(&server, "GET", FILE, &[("If-Modified-Since", &since)]);
        assert_eq!(r.status, 304, "{since}");
        assert!(r.body.is_empty());
    }
    let r = request(
        &server,
        "GET",
        FILE,
        &[("If-Modified-Since", &http_date(mtime - 1))],
    );
    assert_eq!((r.status, r.body.len()), (200, SIZE));
    let r = request(&server, "GET", FILE, &[("If-Modified-Since", "garbage")]);
    assert_eq!(r.status, 200);
}

#[test]
fn fault_drop_after() {
    let (_dir, server, data) = fixture();
    server.set_fault(FILE, Fault::DropAfter(1000), 1);
    let r = get(&server, FILE);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some(SIZE.to_string().as_str()));
    assert_eq!(r.body, data[..1000]);
    assert_eq!(server.requests()[0].body_bytes_sent, 1000);

    // On top of a range it counts the bytes of that response.
    server.set_fault(FILE, Fault::DropAfter(10), 1);
    let r = request(&server, "GET", FILE, &[("Range", "bytes=500-")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, data[500..510]);
}

#[test]
fn fault_stall_after() {
    let (_dir, server, data) = fixture();
    server.set_fault(FILE, Fault::StallAfter(5000), 1);
    let (r, mut s) = send(&server, "GET", FILE, &[]);
    assert_eq!(r.status, 200);
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut body = Vec::new();
    let mut buf = [0u8; 8192];
    let err = loop {
        match s.read(&mut buf) {
            Ok(0) => panic!("connection closed instead of stalling"),
            Ok(n) => body.extend_from_slice(&buf[..n]),
            Err(e) => break e,
        }
    };
    assert!(
        matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{err}"
    );
    assert_eq!(body, data[..5000]);
    assert_eq!(server.requests()[0].body_bytes_sent, 5000);
}

#[test]
fn fault_status() {
    let (_dir, server, _) = fixture();
    server.set_fault(FILE, Fault::Status(500), 1);
    let r = get(&server, FILE);
    assert_eq!(r.status, 500);
    assert!(!r.body.is_empty() && r.body.len() < 200);
    assert_eq!(server.requests()[0].status, 500);
    // Also for paths that do not exist.
    server.set_fault("/nope", Fault::Status(503), 1);
    assert_eq!(get(&server, "/nope").status, 503);
}

#[test]
fn fault_wrong_content_length() {
    let (_dir, server, data) = fixture();
    server.set_fault(FILE, Fault::WrongContentLength(SIZE as u64 + 100), 1);
    let r = get(&server, FILE);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-length"),
        Some((SIZE + 100).to_string().as_str())
    );
    assert_eq!(r.body, data);

    server.set_fault(FILE, Fault::WrongContentLength(10), 1);
    let r = get(&server, FILE);
    assert_eq!(r.header("content-length"), Some("10"));
    assert_eq!(r.body, data);
}

#[test]
fn fault_endless() {
    let (_dir, server, _) = fixture();
    server.set_fault(FILE, Fault::Endless, 1);
    let (r, mut s) = send(&server, "GET", FILE, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), None);
    let want = 10 << 20;
    let mut got = 0usize;
    let mut buf = vec![0u8; 256 * 1024];
    while got < want {
        let n = s.read(&mut buf).unwrap();
        assert_ne!(n, 0, "endless stream ended after {got} bytes");
        assert!(buf[..n].iter().all(|&b| b == 0x41));
        got += n;
    }
    drop(s);
    // The server notices the close and logs at least what we read.
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.requests()[0].body_bytes_sent < want as u64 {
        assert!(Instant::now() < deadline, "{:?}", server.requests());
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn fault_replace() {
    let (_dir, server, _) = fixture();
    server.set_fault(FILE, Fault::Replace(b"tampered".to_vec()), 1);
    let r = get(&server, FILE);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("8"));
    assert_eq!(r.body, b"tampered");
}

#[test]
fn faults_apply_times_then_clear() {
    let (_dir, server, data) = fixture();
    server.set_fault(FILE, Fault::Status(503), 2);
    let statuses: Vec<u16> = (0..4).map(|_| get(&server, FILE).status).collect();
    assert_eq!(statuses, [503, 503, 200, 200]);
    // Other paths are unaffected.
    server.set_fault("/other", Fault::Status(502), u32::MAX);
    assert_eq!(get(&server, FILE).body, data);
    for _ in 0..3 {
        assert_eq!(get(&server, "/other").status, 502);
    }
    server.clear_faults();
    assert_eq!(get(&server, "/other").status, 404);

    let log = server.requests();
    let seen: Vec<(&str, u16)> = log.iter().map(|r| (r.path.as_str(), r.status)).collect();
    let mut want = vec![
        (FILE, 503),
        (FILE, 503),
        (FILE, 200),
        (FILE, 200),
        (FILE, 200),
    ];
    want.extend([("/other", 502); 3]);
    want.push(("/other", 404));
    assert_eq!(seen, want);
}

#[test]
fn drop_with_a_stalled_connection_is_prompt() {
    let (_dir, server, _) = fixture();
    server.set_fault(FILE, Fault::StallAfter(10), u32::MAX);
    let (_, mut s) = send(&server, "GET", FILE, &[]);
    let mut body = [0u8; 10];
    s.read_exact(&mut body).unwrap();
    let (_, mut s2) = send(&server, "GET", FILE, &[]);
    s2.read_exact(&mut body).unwrap();
    let t = Instant::now();
    drop(server);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "drop took {:?}",
        t.elapsed()
    );
    // The stalled connection was closed.
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
}

#[test]
fn oversized_head_is_431() {
    let (_dir, server, _) = fixture();
    let big = "x".repeat(20 * 1024);
    let r = request(&server, "GET", FILE, &[("X-Big", &big)]);
    assert_eq!(r.status, 431);
    assert_eq!(server.requests()[0].status, 431);
}

#[test]
fn concurrent_requests() {
    let (_dir, server, data) = fixture();
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| assert!(get(&server, FILE).body == data));
        }
    });
    assert_eq!(server.requests().len(), 8);
}

#[test]
fn large_file_streams_quickly() {
    let dir = tempfile::tempdir().unwrap();
    let data = content(64 << 20, 3);
    write(dir.path(), "/big", &data);
    let server = TestServer::serve(dir.path());
    let t = Instant::now();
    let r = get(&server, "/big");
    let took = t.elapsed();
    assert!(r.body == data, "body differs");
    assert!(took < Duration::from_secs(5), "64 MiB took {took:?}");
}

#[test]
fn http_dates() {
    assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
    assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
    for s in [
        "Sun, 06 Nov 1994 08:49:37 GMT",
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
    ] {
        assert_eq!(parse_http_date(s), Some(784_111_777), "{s}");
    }
    for secs in [0, 68_169_599, 951_868_799, 1_700_000_000, 4_102_444_800] {
        assert_eq!(parse_http_date(&http_date(secs)), Some(secs));
    }
    assert_eq!(parse_http_date("yesterday"), None);
}

/// Throughput check for a 1 GiB (sparse) file, timed on a second request so
/// the page cache is warm: `cargo test --release -p charter-tests --test
/// server -- --ignored --nocapture`.
#[test]
#[ignore = "benchmark-sized"]
fn one_gib_throughput() {
    let dir = tempfile::tempdir().unwrap();
    let f = std::fs::File::create(dir.path().join("huge")).unwrap();
    f.set_len(1 << 30).unwrap();
    let server = TestServer::serve(dir.path());
    for round in 0..2 {
        let t = Instant::now();
        let (r, mut s) = send(&server, "GET", "/huge", &[]);
        assert_eq!(r.header("content-length"), Some("1073741824"));
        let mut buf = vec![0u8; 1 << 20];
        let mut got = 0u64;
        loop {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got += n as u64;
        }
        let took = t.elapsed();
        assert_eq!(got, 1 << 30);
        eprintln!(
            "round {round}: 1 GiB in {took:?} ({:.0} MiB/s)",
            1024.0 / took.as_secs_f64()
        );
        assert_eq!(server.requests()[round].body_bytes_sent, 1 << 30);
    }
}
