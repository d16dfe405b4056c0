//! A small real HTTP/1.1 file server for tests, with fault injection.
//!
//! One thread accepts connections on 127.0.0.1 (ephemeral port); each
//! connection gets its own thread and carries exactly one request
//! (`Connection: close`). Files are read from the root at request time, so
//! tests may change them between requests. Faults installed with
//! [`TestServer::set_fault`] make a path misbehave in controlled ways
//! (truncate, stall, lie about the length, stream forever, ...).
//!
//! Everything is bounded: request heads over 16 KiB get 431, reads time out
//! after 30 s, stalls end after 120 s, endless bodies stop after 8 GiB, and
//! dropping the [`TestServer`] shuts every connection down promptly.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, ErrorKind, Read, Seek, SeekFrom, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, UNIX_EPOCH};

mod date;
mod parse;

use date::now_secs;
pub use date::{http_date, parse_http_date};
use parse::{
    RangeSpec, etag_list_matches, map_path, parse_range, read_head, request_line_guess, url_path,
};

/// Largest accepted request head (request line + headers + blank line).
const MAX_HEAD: usize = 16 * 1024;
/// File bodies are read and written in chunks of this size.
const CHUNK: usize = 64 * 1024;
/// Capacity of the buffered writer in front of each socket.
const WRITE_BUF: usize = 256 * 1024;
/// Read timeout for the request head (and write timeout for the response).
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a [`Fault::StallAfter`] connection is held open.
const STALL_LIMIT: Duration = Duration::from_secs(120);
/// Safety bound for [`Fault::Endless`].
const ENDLESS_LIMIT: u64 = 8 << 30;
/// How long to wait for the client to close after a normal response.
const LINGER: Duration = Duration::from_secs(1);

/// A misbehaviour to apply to the responses for one URL path.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Send headers (with the true Content-Length) and the first `bytes` body
    /// bytes, then close the connection abruptly.
    DropAfter(u64),
    /// Send headers and the first `bytes` body bytes, then send nothing more
    /// but keep the connection open (until the server is dropped, the client
    /// closes, or 120 s pass).
    StallAfter(u64),
    /// Answer with this status code and a short text body.
    Status(u16),
    /// Send a Content-Length header of this value but the real file body
    /// (then close).
    WrongContentLength(u64),
    /// No Content-Length; send an endless stream of bytes (0x41) until the
    /// client closes (stops after 8 GiB as a safety bound).
    Endless,
    /// Serve these bytes instead of the file (status 200, correct length).
    Replace(Vec<u8>),
    /// Serve the whole file with 200 even when a Range was asked for.
    IgnoreRange,
}

/// One request the server has seen.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The URL path as sent, without the query string (not percent-decoded).
    pub path: String,
    /// Header names are lower-cased; values are trimmed.
    pub headers: Vec<(String, String)>,
    /// Status code of the response.
    pub status: u16,
    /// Body bytes handed to the socket. Final once the client has received
    /// the whole response (it is recorded just before the last flush); for
    /// [`Fault::Endless`] it is updated as the stream goes.
    pub body_bytes_sent: u64,
}

impl Request {
    /// Value of the first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A running test server; dropping it stops it.
pub struct TestServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

struct Shared {
    root: PathBuf,
    stopping: AtomicBool,
    faults: Mutex<HashMap<String, (Fault, u32)>>,
    /// Faults for the next requests of a path, one each, in order (before
    /// `faults`).
    sequences: Mutex<HashMap<String, std::collections::VecDeque<Fault>>>,
    log: Mutex<Vec<Request>>,
    /// When set, requests without exactly this `Authorization` value get 401.
    authorization: Mutex<Option<String>>,
    /// Clones of the open connections, so Drop can shut them down.
    conns: Mutex<HashMap<u64, TcpStream>>,
    next_conn: AtomicU64,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// Locks a mutex, ignoring poisoning (a panicking test thread must not make
/// the server unusable or Drop panic).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl TestServer {
    /// Serves the files under `root` (read at request time, so tests can
    /// change files between requests).
    ///
    /// Panics if it cannot bind a port on 127.0.0.1.
    pub fn serve(root: &Path) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("test server: bind 127.0.0.1:0: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("test server: local_addr: {e}"));
        let shared = Arc::new(Shared {
            root: root.to_owned(),
            stopping: AtomicBool::new(false),
            faults: Mutex::new(HashMap::new()),
            sequences: Mutex::new(HashMap::new()),
            log: Mutex::new(Vec::new()),
            authorization: Mutex::new(None),
            conns: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(0),
            threads: Mutex::new(Vec::new()),
        });
        let accept_shared = Arc::clone(&shared);
        let accept = std::thread::Builder::new()
            .name(format!("test-server-{}", addr.port()))
            .spawn(move || accept_loop(&listener, &accept_shared))
            .unwrap_or_else(|e| panic!("test server: spawn: {e}"));
        TestServer {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    /// Requires this exact `Authorization` header on every request (401
    /// otherwise), or nothing with `None`.
    pub fn require_authorization(&self, value: Option<&str>) {
        *lock(&self.shared.authorization) = value.map(str::to_owned);
    }

    /// Base URL with a trailing slash, e.g. `http://127.0.0.1:41234/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Installs a fault for one URL path (e.g.
    /// `/releases/panel/1.0.0/panel-1.0.0.tar.zst`, without query string);
    /// it applies to the next `times` GET/HEAD requests of that path
    /// (`u32::MAX` = always), then the path is served normally. Replaces any
    /// fault already installed for the path; `times == 0` removes it.
    pub fn set_fault(&self, path: &str, fault: Fault, times: u32) {
        let mut faults = lock(&self.shared.faults);
        if times == 0 {
            faults.remove(path);
        } else {
            faults.insert(path.to_owned(), (fault, times));
        }
    }

    /// Installs one fault for each of the next GET/HEAD requests of
    /// `path`, in order; then `set_fault`'s, if any, apply again.
    pub fn set_fault_sequence(&self, path: &str, faults: Vec<Fault>) {
        lock(&self.shared.sequences).insert(path.to_owned(), faults.into());
    }

    /// Removes every installed fault.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// Every request seen so far, in order of arrival.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.shared.log).clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the accept loop, which then sees `stopping` and returns.
        let woke = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_ok();
        if let Some(accept) = self.accept.take() {
            if woke {
                let _ = accept.join();
            }
        }
        // Unblock every connection thread (reads return EOF, writes fail).
        for conn in lock(&self.shared.conns).values() {
            let _ = conn.shutdown(Shutdown::Both);
        }
        // Wait for the threads, but never hang a test on a stuck one.
        let threads = std::mem::take(&mut *lock(&self.shared.threads));
        let deadline = Instant::now() + Duration::from_secs(5);
        for t in threads {
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else {
            // E.g. EMFILE or an aborted handshake; don't spin.
            std::thread::sleep(Duration::from_millis(5));
            continue;
        };
        let id = shared.next_conn.fetch_add(1, Ordering::Relaxed);
        {
            let Ok(clone) = stream.try_clone() else {
                continue;
            };
            let mut conns = lock(&shared.conns);
            // VerifiedChecksums under the lock Drop takes to shut connections down, so
            // no connection escapes it.
            if shared.stopping.load(Ordering::SeqCst) {
                return;
            }
            conns.insert(id, clone);
        }
        let conn_shared = Arc::clone(shared);
        let spawned = std::thread::Builder::new()
            .name(format!("test-server-conn-{id}"))
            .spawn(move || {
                handle_connection(stream, &conn_shared);
                lock(&conn_shared.conns).remove(&id);
            });
        let mut threads = lock(&shared.threads);
        threads.retain(|t| !t.is_finished());
        match spawned {
            Ok(t) => threads.push(t),
            Err(_) => {
                lock(&shared.conns).remove(&id);
            }
        }
    }
}

/// How the connection ends after the response head and body.
enum Ending {
    /// Half-close, wait briefly for the client to close, then close.
    Close,
    /// Close right after the (truncated) body.
    Abrupt,
    /// Keep the connection open without sending anything more.
    Stall,
}

enum Body {
    Empty,
    Bytes(Vec<u8>),
    File { file: File, start: u64, len: u64 },
    Endless,
}

struct Response {
    status: u16,
    /// Header lines, each ending in CRLF (Connection: close is added).
    headers: String,
    body: Body,
    /// At most this many body bytes are sent.
    limit: u64,
    ending: Ending,
}

impl Response {
    fn new(status: u16) -> Response {
        Response {
            status,
            headers: String::new(),
            body: Body::Empty,
            limit: u64::MAX,
            ending: Ending::Close,
        }
    }

    fn header(mut self, name: &str, value: impl std::fmt::Display) -> Response {
        use std::fmt::Write as _;
        let _ = write!(self.headers, "{name}: {value}\r\n");
        self
    }

    /// A short text/plain response.
    fn text(status: u16, msg: &str) -> Response {
        let body = format!("{status} {}: {msg}\n", reason(status));
        let mut r = Response::new(status);
        if !bodyless_status(status) {
            r = r
                .header("Content-Type", "text/plain; charset=utf-8")
                .header("Content-Length", body.len());
            r.body = Body::Bytes(body.into_bytes());
        }
        r
    }
}

fn bodyless_status(status: u16) -> bool {
    status < 200 || status == 204 || status == 304
}

struct Head {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

enum HeadError {
    /// Nothing usable arrived (client closed or timed out): just hang up.
    Gone,
    TooLarge(Vec<u8>),
    Malformed(Vec<u8>),
}

fn handle_connection(mut stream: TcpStream, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_nodelay(true);

    let (method, path, headers, response) = match read_head(&mut stream) {
        Err(HeadError::Gone) => return,
        Err(HeadError::TooLarge(raw)) => {
            let (m, p) = request_line_guess(&raw);
            let r = Response::text(431, "request head too large");
            (m, p, Vec::new(), r)
        }
        Err(HeadError::Malformed(raw)) => {
            let (m, p) = request_line_guess(&raw);
            (m, p, Vec::new(), Response::text(400, "malformed request"))
        }
        Ok(head) => {
            let path = url_path(&head.target).to_owned();
            let response = respond(&head, &path, shared);
            (head.method, path, head.headers, response)
        }
    };
    let is_head = method == "HEAD";
    let index = {
        let mut log = lock(&shared.log);
        log.push(Request {
            method,
            path,
            headers,
            status: response.status,
            body_bytes_sent: 0,
        });
        log.len() - 1
    };
    let record = |sent: u64| {
        if let Some(r) = lock(&shared.log).get_mut(index) {
            r.body_bytes_sent = sent;
        }
    };
    send(stream, response, is_head, shared, &record);
}

fn take_fault(shared: &Shared, path: &str) -> Option<Fault> {
    if let Some(f) = lock(&shared.sequences)
        .get_mut(path)
        .and_then(|q| q.pop_front())
    {
        return Some(f);
    }
    let mut faults = lock(&shared.faults);
    let (fault, times) = faults.get_mut(path)?;
    let fault = fault.clone();
    if *times != u32::MAX {
        *times -= 1;
        if *times == 0 {
            faults.remove(path);
        }
    }
    Some(fault)
}

fn respond(head: &Head, path: &str, shared: &Shared) -> Response {
    if head.method != "GET" && head.method != "HEAD" {
        return Response::text(405, "only GET and HEAD").header("Allow", "GET, HEAD");
    }
    if let Some(want) = lock(&shared.authorization).as_deref()
        && head.header("authorization") != Some(want)
    {
        return Response::text(401, "authorization required")
            .header("WWW-Authenticate", "Bearer realm=\"charter\"");
    }
    let fault = take_fault(shared, path);
    match fault {
        Some(Fault::Status(code)) => return Response::text(code, "injected fault"),
        Some(Fault::Replace(bytes)) => {
            let mut r = Response::new(200)
                .header("Content-Type", "application/octet-stream")
                .header("Content-Length", bytes.len());
            r.body = Body::Bytes(bytes);
            return r;
        }
        Some(Fault::Endless) => {
            let mut r = Response::new(200).header("Content-Type", "application/octet-stream");
            r.body = Body::Endless;
            return r;
        }
        _ => {}
    }
    let mut r = serve_file(head, path, &shared.root, fault.as_ref());
    match fault {
        Some(Fault::DropAfter(n)) => {
            r.limit = n;
            r.ending = Ending::Abrupt;
        }
        Some(Fault::StallAfter(n)) => {
            r.limit = n;
            r.ending = Ending::Stall;
        }
        _ => {}
    }
    r
}

/// The normal response for a GET/HEAD of `path`. With a
/// [`Fault::WrongContentLength`], that value replaces the true length.
fn serve_file(head: &Head, path: &str, root: &Path, fault: Option<&Fault>) -> Response {
    let Some(fs_path) = map_path(root, path) else {
        return Response::text(400, "bad path");
    };
    let file = match File::open(&fs_path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Response::text(404, "not found"),
        Err(e) if e.kind() == ErrorKind::PermissionDenied => {
            return Response::text(403, "forbidden");
        }
        Err(_) => return Response::text(404, "not found"),
    };
    let meta = match file.metadata() {
        Ok(m) if m.is_file() => m,
        _ => return Response::text(404, "not found"),
    };
    let size = meta.len();
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .unwrap_or_default();
    let etag = format!("\"{:x}-{:x}\"", size, mtime.as_nanos());
    let last_modified = http_date(mtime.as_secs());

    // Conditional GET (RFC 9110 13.2.2: If-None-Match wins over
    // If-Modified-Since).
    let not_modified = match head.header("if-none-match") {
        Some(inm) => etag_list_matches(inm, &etag, false),
        None => head
            .header("if-modified-since")
            .and_then(parse_http_date)
            .is_some_and(|since| since >= mtime.as_secs()),
    };
    if not_modified {
        return Response::new(304)
            .header("ETag", &etag)
            .header("Last-Modified", &last_modified);
    }

    let r = Response::new(200)
        .header("Content-Type", "application/octet-stream")
        .header("ETag", &etag)
        .header("Last-Modified", &last_modified)
        .header("Accept-Ranges", "bytes");

    let if_range_ok = match head.header("if-range") {
        None => true,
        Some(v) if v.starts_with('"') => etag_list_matches(v, &etag, true),
        Some(v) => v == last_modified,
    };
    let range = match head.header("range") {
        Some(spec)
            if head.method == "GET"
                && if_range_ok
                && !matches!(fault, Some(Fault::IgnoreRange)) =>
        {
            parse_range(spec, size)
        }
        _ => RangeSpec::Full,
    };
    let (mut r, start, len) = match range {
        RangeSpec::Full => (r, 0, size),
        RangeSpec::Unsatisfiable => {
            let mut r = r
                .header("Content-Range", format_args!("bytes */{size}"))
                .header("Content-Length", 0);
            r.status = 416;
            return r;
        }
        RangeSpec::Part(first, last) => {
            let mut r = r.header("Content-Range", format_args!("bytes {first}-{last}/{size}"));
            r.status = 206;
            (r, first, last - first + 1)
        }
    };
    let claimed = match fault {
        Some(Fault::WrongContentLength(n)) => *n,
        _ => len,
    };
    r = r.header("Content-Length", claimed);
    r.body = Body::File { file, start, len };
    r
}

/// Writes the response and ends the connection as the response asks.
fn send(
    stream: TcpStream,
    response: Response,
    is_head: bool,
    shared: &Shared,
    record: &dyn Fn(u64),
) {
    let Response {
        status,
        headers,
        body,
        limit,
        ending,
    } = response;
    let body = if is_head { Body::Empty } else { body };
    let Ok(sock) = stream.try_clone() else {
        return;
    };
    let mut w = BufWriter::with_capacity(WRITE_BUF, stream);
    let head = format!(
        "HTTP/1.1 {status} {}\r\nDate: {}\r\n{headers}Connection: close\r\n\r\n",
        reason(status),
        http_date(now_secs()),
    );
    let sent = match write_body(&mut w, head.as_bytes(), body, limit, record) {
        Ok(sent) => sent,
        Err(_) => {
            let _ = sock.shutdown(Shutdown::Both);
            return;
        }
    };
    record(sent);
    if w.flush().is_err() {
        let _ = sock.shutdown(Shutdown::Both);
        return;
    }
    drop(w);
    match ending {
        Ending::Abrupt => {
            let _ = sock.shutdown(Shutdown::Both);
        }
        Ending::Close => {
            let _ = sock.shutdown(Shutdown::Write);
            // Read until the client closes, so unread request bytes cannot
            // turn our close into a reset that destroys the response.
            linger(&sock, LINGER, shared);
            let _ = sock.shutdown(Shutdown::Both);
        }
        Ending::Stall => {
            linger(&sock, STALL_LIMIT, shared);
            let _ = sock.shutdown(Shutdown::Both);
        }
    }
}

/// Writes the head and up to `limit` body bytes into `w` (without the final
/// flush). Returns the number of body bytes written.
fn write_body(
    w: &mut BufWriter<TcpStream>,
    head: &[u8],
    body: Body,
    limit: u64,
    record: &dyn Fn(u64),
) -> io::Result<u64> {
    w.write_all(head)?;
    match body {
        Body::Empty => Ok(0),
        Body::Bytes(b) => {
            let n = usize::try_from(limit).unwrap_or(usize::MAX).min(b.len());
            w.write_all(&b[..n])?;
            Ok(n as u64)
        }
        Body::File {
            mut file,
            start,
            len,
        } => {
            let want = len.min(limit);
            if want > 0 && start > 0 {
                file.seek(SeekFrom::Start(start))?;
            }
            let mut buf = vec![0u8; CHUNK];
            let mut progress = Progress::new(record);
            while progress.sent < want {
                let n = usize::try_from(want - progress.sent)
                    .unwrap_or(CHUNK)
                    .min(CHUNK);
                let got = match file.read(&mut buf[..n]) {
                    Ok(0) => break, // the file shrank under us: short body
                    Ok(got) => got,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                progress.write(w, &buf[..got])?;
            }
            Ok(progress.sent)
        }
        Body::Endless => {
            let buf = vec![b'A'; CHUNK];
            let want = limit.min(ENDLESS_LIMIT);
            let mut progress = Progress::new(record);
            while progress.sent < want {
                let n = usize::try_from(want - progress.sent)
                    .unwrap_or(CHUNK)
                    .min(CHUNK);
                progress.write(w, &buf[..n])?;
            }
            Ok(progress.sent)
        }
    }
}

/// Counts body bytes written and records them in the log every MiB and on
/// a write error (so long or aborted transfers show their progress).
struct Progress<'a> {
    sent: u64,
    next_record: u64,
    record: &'a dyn Fn(u64),
}

impl<'a> Progress<'a> {
    fn new(record: &'a dyn Fn(u64)) -> Self {
        Progress {
            sent: 0,
            next_record: 1 << 20,
            record,
        }
    }

    fn write(&mut self, w: &mut BufWriter<TcpStream>, data: &[u8]) -> io::Result<()> {
        if let Err(e) = w.write_all(data) {
            (self.record)(self.sent);
            return Err(e);
        }
        self.sent += data.len() as u64;
        if self.sent >= self.next_record {
            (self.record)(self.sent);
            self.next_record = self.sent + (1 << 20);
        }
        Ok(())
    }
}

/// Reads and discards input until the client closes, `limit` passes, or the
/// server stops. Used both to linger before closing and to stall.
fn linger(sock: &TcpStream, limit: Duration, shared: &Shared) {
    let deadline = Instant::now() + limit;
    let mut sock = sock;
    let mut buf = [0u8; 4096];
    let mut drained = 0usize;
    let _ = sock.set_read_timeout(Some(Duration::from_millis(100)));
    while !shared.stopping.load(Ordering::SeqCst) && Instant::now() < deadline {
        match sock.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                drained += n;
                if drained > (1 << 20) {
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(_) => return,
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        410 => "Gone",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}
