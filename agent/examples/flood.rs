//! flood: a load generator for charter-agent's local API, run as a separate
//! process by bench/agent.sh. Standard library only.
//!
//! ```text
//! flood SOCKET closed CONNS SECONDS        saturate: CONNS keep-alive connections,
//!                                          each sends its next request as soon as
//!                                          the previous answer is in (closed loop)
//! flood SOCKET open RATE SECONDS CONNS     RATE requests/s on a fixed timeline,
//!                                          spread round-robin over CONNS keep-alive
//!                                          connections (open loop)
//! ```
//!
//! Open loop and coordinated omission: request i is due at t0 + i/RATE, and
//! its latency is measured from that due time, not from when it was actually
//! written. A stall in the agent therefore shows up in the latency of every
//! request that should have been sent during it, even though each connection
//! only has one request in flight (plain HTTP/1.1 keep-alive, no pipelining).
//! The service time (from the actual write) and the send lag (actual write
//! minus due time: the client's own timer overshoot plus queueing behind a
//! slow answer) are printed too.
//!
//! Every answer is read in full by its Content-Length and its status checked
//! (non-200 answers count as errors: a 429 means the agent's rate limit was
//! not raised). The hot loop allocates nothing: each connection has one fixed
//! buffer, the request is a static byte string and latencies go into a
//! fixed-size log-linear histogram (< 0.4 % relative error; max is exact).
//!
//! Environment:
//!   FLOOD_PATH      request target (default /v1/features/backups)
//!   FLOOD_WARMUP    requests per connection before timing (default 200)
//!   FLOOD_SPIN_US   open loop: sleep until this many us before the due time,
//!                   then spin (default 0: sleep only, with timer slack 1 ns)
//!
//! The last line of output is machine-readable: `RESULT key=value ...`.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

const BUF: usize = 16 << 10;

/// One keep-alive connection with a fixed receive buffer.
struct Conn {
    s: UnixStream,
    buf: Box<[u8]>,
    /// Bytes in `buf`.
    len: usize,
    /// Bytes at the front of `buf` that belong to the last answer (dropped
    /// at the start of the next call, so the last body stays readable).
    last: usize,
    /// Where the last answer's body starts.
    body_at: usize,
}

impl Conn {
    fn connect(path: &str) -> io::Result<Self> {
        let s = UnixStream::connect(path)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        s.set_write_timeout(Some(Duration::from_secs(30)))?;
        Ok(Conn {
            s,
            buf: vec![0u8; BUF].into_boxed_slice(),
            len: 0,
            last: 0,
            body_at: 0,
        })
    }

    /// Writes `req` and reads one whole answer; returns its status code.
    fn call(&mut self, req: &[u8]) -> io::Result<u16> {
        if self.last > 0 {
            self.buf.copy_within(self.last..self.len, 0);
            self.len -= self.last;
            self.last = 0;
        }
        self.s.write_all(req)?;
        loop {
            if let Some((code, body_at, total)) = parse(&self.buf[..self.len])? {
                self.last = total;
                self.body_at = body_at;
                return Ok(code);
            }
            if self.len == self.buf.len() {
                return Err(io::Error::other("answer larger than the buffer"));
            }
            let n = self.s.read(&mut self.buf[self.len..])?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the agent closed the connection",
                ));
            }
            self.len += n;
        }
    }

    fn last_body(&self) -> &[u8] {
        &self.buf[self.body_at..self.last]
    }
}

/// Parses one answer at the front of `b`: (status, body start, total length),
/// or None when it is not all there yet.
fn parse(b: &[u8]) -> io::Result<Option<(u16, usize, usize)>> {
    let Some(end) = b.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = &b[..end];
    let bad = |why: &str| io::Error::new(io::ErrorKind::InvalidData, why.to_owned());
    if head.len() < 12 || !head.starts_with(b"HTTP/1.") || head[8] != b' ' {
        return Err(bad("not an HTTP/1.x answer"));
    }
    let code = digits(&head[9..12]).ok_or_else(|| bad("bad status code"))? as u16;
    let mut clen = None;
    for line in head.split(|&c| c == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        const CL: &[u8] = b"content-length:";
        if line.len() > CL.len() && line[..CL.len()].eq_ignore_ascii_case(CL) {
            clen = digits(line[CL.len()..].trim_ascii());
        }
    }
    let clen = clen.ok_or_else(|| bad("no Content-Length"))?;
    let total = end + 4 + clen;
    Ok((b.len() >= total).then_some((code, end + 4, total)))
}

fn digits(b: &[u8]) -> Option<usize> {
    if b.is_empty() || b.len() > 12 {
        return None;
    }
    b.iter().try_fold(0usize, |n, &c| {
        c.is_ascii_digit().then(|| n * 10 + usize::from(c - b'0'))
    })
}

/// Log-linear latency histogram in nanoseconds: exact below 512 ns, then
/// 256 sub-buckets per power of two (width/value <= 1/256).
struct Hist {
    counts: Box<[u64]>,
    n: u64,
    max: u64,
    sum: u128,
}

const SUB_BITS: u32 = 9;
const SUB: u64 = 1 << SUB_BITS;
const HALF: u64 = SUB / 2;

impl Hist {
    fn new() -> Self {
        let buckets = SUB + (64 - u64::from(SUB_BITS)) * HALF + HALF;
        Hist {
            counts: vec![0; buckets as usize].into_boxed_slice(),
            n: 0,
            max: 0,
            sum: 0,
        }
    }

    fn index(v: u64) -> usize {
        if v < SUB {
            return v as usize;
        }
        let e = 63 - v.leading_zeros(); // >= SUB_BITS
        let shift = e - (SUB_BITS - 1); // >= 1
        let m = v >> shift; // in [HALF, SUB)
        (SUB + u64::from(shift - 1) * HALF + (m - HALF)) as usize
    }

    /// Midpoint of bucket `i`.
    fn value(i: usize) -> u64 {
        let i = i as u64;
        if i < SUB {
            return i;
        }
        let k = i - SUB;
        let shift = k / HALF + 1;
        let lo = (k % HALF + HALF) << shift;
        lo + (1u64 << shift) / 2
    }

    fn record(&mut self, d: Duration) {
        let v = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.counts[Self::index(v)] += 1;
        self.n += 1;
        self.max = self.max.max(v);
        self.sum += u128::from(v);
    }

    fn merge(&mut self, o: &Hist) {
        for (a, b) in self.counts.iter_mut().zip(o.counts.iter()) {
            *a += b;
        }
        self.n += o.n;
        self.max = self.max.max(o.max);
        self.sum += o.sum;
    }

    /// The q-quantile (0..=1) in nanoseconds.
    fn quantile(&self, q: f64) -> u64 {
        if self.n == 0 {
            return 0;
        }
        let rank = ((q * self.n as f64).ceil() as u64).clamp(1, self.n);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::value(i).min(self.max);
            }
        }
        self.max
    }

    fn mean(&self) -> u64 {
        if self.n == 0 {
            0
        } else {
            (self.sum / u128::from(self.n)) as u64
        }
    }
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

/// What one connection's thread measured.
struct Stats {
    ok: u64,
    errors: u64,
    io_error: Option<String>,
    elapsed: Duration,
    /// Closed: per-request latency. Open: from the due time.
    lat: Hist,
    /// Open only: from the actual write.
    service: Hist,
    /// Open only: actual write minus due time.
    lag: Hist,
    /// Open only: when the last answer arrived.
    done: Option<Instant>,
}

impl Stats {
    fn new() -> Self {
        Stats {
            ok: 0,
            errors: 0,
            io_error: None,
            elapsed: Duration::ZERO,
            lat: Hist::new(),
            service: Hist::new(),
            lag: Hist::new(),
            done: None,
        }
    }
}

fn warm(c: &mut Conn, req: &[u8], n: u64) -> io::Result<()> {
    for _ in 0..n {
        c.call(req)?;
    }
    Ok(())
}

fn closed_worker(path: &str, req: &[u8], warmup: u64, secs: f64, start: &Barrier) -> Stats {
    let mut st = Stats::new();
    let conn = Conn::connect(path).and_then(|mut c| warm(&mut c, req, warmup).map(|()| c));
    start.wait();
    let mut c = match conn {
        Ok(c) => c,
        Err(e) => {
            st.io_error = Some(e.to_string());
            return st;
        }
    };
    let begin = Instant::now();
    let end = begin + Duration::from_secs_f64(secs);
    let mut t = begin;
    while t < end {
        match c.call(req) {
            Ok(200) => st.ok += 1,
            Ok(_) => st.errors += 1,
            Err(e) => {
                st.io_error = Some(e.to_string());
                break;
            }
        }
        let now = Instant::now();
        st.lat.record(now - t);
        t = now;
    }
    st.elapsed = t - begin;
    st
}

#[allow(clippy::too_many_arguments)]
fn open_worker(
    path: &str,
    req: &[u8],
    warmup: u64,
    first: u64,
    step: u64,
    total: u64,
    interval_ns: f64,
    spin: Duration,
    ready: &Barrier,
    t0: &Mutex<Option<Instant>>,
    go: &Barrier,
) -> Stats {
    let mut st = Stats::new();
    let conn = Conn::connect(path).and_then(|mut c| warm(&mut c, req, warmup).map(|()| c));
    ready.wait();
    go.wait();
    let Some(t0) = *t0.lock().unwrap_or_else(|e| e.into_inner()) else {
        return st;
    };
    let mut c = match conn {
        Ok(c) => c,
        Err(e) => {
            st.io_error = Some(e.to_string());
            return st;
        }
    };
    let mut i = first;
    while i < total {
        let due = t0 + Duration::from_nanos((i as f64 * interval_ns) as u64);
        let now = Instant::now();
        if due > now {
            let wait = due - now;
            if wait > spin {
                std::thread::sleep(wait - spin);
            }
            while Instant::now() < due {
                std::hint::spin_loop();
            }
        }
        let sent = Instant::now();
        match c.call(req) {
            Ok(200) => st.ok += 1,
            Ok(_) => st.errors += 1,
            Err(e) => {
                st.io_error = Some(e.to_string());
                break;
            }
        }
        let done = Instant::now();
        st.lat.record(done - due);
        st.service.record(done - sent);
        st.lag.record(sent.saturating_duration_since(due));
        st.done = Some(done);
        i += step;
    }
    st
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: flood SOCKET closed CONNS SECONDS\n       flood SOCKET open RATE SECONDS CONNS"
    );
    ExitCode::from(2)
}

/// Lower this process's timer slack (inherited by threads spawned after) so
/// open-loop sleeps end close to their due time: 50 us by default.
fn tighten_timer_slack() -> bool {
    std::fs::write("/proc/self/timerslack_ns", b"1").is_ok()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize| args.get(i).and_then(|s| s.parse::<f64>().ok());
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (Some(socket), Some(mode)) = (args.first(), args.get(1)) else {
        return usage();
    };
    let target = std::env::var("FLOOD_PATH").unwrap_or_else(|_| "/v1/features/backups".into());
    // Built once; the hot loops only borrow it.
    let req: &'static [u8] = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .into_bytes()
        .leak();
    let warmup = env("FLOOD_WARMUP", 200);

    // Check the endpoint once and show its answer.
    match Conn::connect(socket).and_then(|mut c| c.call(req).map(|code| (code, c))) {
        Ok((code, c)) => {
            let body = String::from_utf8_lossy(c.last_body());
            println!("probe: GET {target} -> {code} {}", body.trim_end());
            if code != 200 {
                eprintln!("flood: the agent answered {code}, not 200");
                return ExitCode::from(1);
            }
        }
        Err(e) => {
            eprintln!("flood: cannot reach the agent at {socket}: {e}");
            return ExitCode::from(1);
        }
    }

    match mode.as_str() {
        "closed" => {
            let (Some(conns), Some(secs)) = (num(2), num(3)) else {
                return usage();
            };
            let conns = conns as usize;
            let start = Arc::new(Barrier::new(conns));
            let threads: Vec<_> = (0..conns)
                .map(|_| {
                    let (socket, start) = (socket.clone(), Arc::clone(&start));
                    std::thread::spawn(move || closed_worker(&socket, req, warmup, secs, &start))
                })
                .collect();
            let stats: Vec<Stats> = threads
                .into_iter()
                .map(|t| t.join().unwrap_or_else(|_| Stats::new()))
                .collect();
            let mut lat = Hist::new();
            let (mut ok, mut errors, mut rps) = (0, 0, 0.0);
            for (i, s) in stats.iter().enumerate() {
                if let Some(e) = &s.io_error {
                    eprintln!("flood: connection {i}: {e}");
                }
                lat.merge(&s.lat);
                ok += s.ok;
                errors += s.errors;
                let secs = s.elapsed.as_secs_f64();
                if secs > 0.0 {
                    rps += (s.ok + s.errors) as f64 / secs;
                }
            }
            let io_errors = stats.iter().filter(|s| s.io_error.is_some()).count();
            println!(
                "closed loop: {conns} connection(s), {secs} s: {ok} ok, {errors} non-200, {io_errors} broken connection(s)"
            );
            println!(
                "  {rps:.0} requests/s; latency us: mean {:.1}  p50 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}",
                us(lat.mean()),
                us(lat.quantile(0.50)),
                us(lat.quantile(0.99)),
                us(lat.quantile(0.999)),
                us(lat.max)
            );
            println!(
                "RESULT mode=closed conns={conns} secs={secs} ok={ok} errors={errors} io_errors={io_errors} rps={rps:.0} p50_us={:.1} p99_us={:.1} max_us={:.1}",
                us(lat.quantile(0.50)),
                us(lat.quantile(0.99)),
                us(lat.max)
            );
            if errors > 0 || io_errors > 0 {
                return ExitCode::from(1);
            }
        }
        "open" => {
            let (Some(rate), Some(secs), Some(conns)) = (num(2), num(3), num(4)) else {
                return usage();
            };
            let conns = conns as u64;
            if rate <= 0.0 || secs <= 0.0 || conns == 0 {
                return usage();
            }
            let total = (rate * secs).round() as u64;
            let interval_ns = 1e9 / rate;
            let spin = Duration::from_micros(env("FLOOD_SPIN_US", 0));
            let slack = tighten_timer_slack();
            let ready = Arc::new(Barrier::new(conns as usize + 1));
            let go = Arc::new(Barrier::new(conns as usize + 1));
            let t0 = Arc::new(Mutex::new(None));
            let threads: Vec<_> = (0..conns)
                .map(|c| {
                    let socket = socket.clone();
                    let (ready, go, t0) = (Arc::clone(&ready), Arc::clone(&go), Arc::clone(&t0));
                    std::thread::spawn(move || {
                        open_worker(
                            &socket,
                            req,
                            warmup,
                            c,
                            conns,
                            total,
                            interval_ns,
                            spin,
                            &ready,
                            &t0,
                            &go,
                        )
                    })
                })
                .collect();
            ready.wait();
            let start = Instant::now() + Duration::from_millis(20);
            *t0.lock().unwrap_or_else(|e| e.into_inner()) = Some(start);
            go.wait();
            let stats: Vec<Stats> = threads
                .into_iter()
                .map(|t| t.join().unwrap_or_else(|_| Stats::new()))
                .collect();
            let (mut lat, mut service, mut lag) = (Hist::new(), Hist::new(), Hist::new());
            let (mut ok, mut errors) = (0, 0);
            let mut last = start;
            for (i, s) in stats.iter().enumerate() {
                if let Some(e) = &s.io_error {
                    eprintln!("flood: connection {i}: {e}");
                }
                lat.merge(&s.lat);
                service.merge(&s.service);
                lag.merge(&s.lag);
                ok += s.ok;
                errors += s.errors;
                if let Some(d) = s.done {
                    last = last.max(d);
                }
            }
            let io_errors = stats.iter().filter(|s| s.io_error.is_some()).count();
            let wall = (last - start).as_secs_f64();
            let achieved = (ok + errors) as f64 / wall.max(1e-9);
            println!(
                "open loop: {rate} requests/s for {secs} s over {conns} connection(s) (timer slack 1 ns: {}, spin {} us): {ok} ok, {errors} non-200, {io_errors} broken connection(s), {:.0} requests/s achieved",
                if slack { "yes" } else { "no" },
                spin.as_micros(),
                achieved
            );
            for (name, h) in [
                ("from due time (CO-corrected)", &lat),
                ("from actual send (service)  ", &service),
                ("send lag (actual - due)     ", &lag),
            ] {
                println!(
                    "  {name} us: mean {:.1}  p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}",
                    us(h.mean()),
                    us(h.quantile(0.50)),
                    us(h.quantile(0.90)),
                    us(h.quantile(0.99)),
                    us(h.quantile(0.999)),
                    us(h.max)
                );
            }
            let over_1ms = lat.counts[Hist::index(1_000_000)..].iter().sum::<u64>();
            println!("  requests over 1 ms from due time: {over_1ms}");
            println!(
                "RESULT mode=open rate={rate} secs={secs} conns={conns} ok={ok} errors={errors} io_errors={io_errors} achieved={achieved:.0} p50_us={:.1} p99_us={:.1} p999_us={:.1} max_us={:.1} svc_p50_us={:.1} svc_p99_us={:.1} svc_max_us={:.1} lag_p50_us={:.1} lag_p99_us={:.1} over_1ms={over_1ms}",
                us(lat.quantile(0.50)),
                us(lat.quantile(0.99)),
                us(lat.quantile(0.999)),
                us(lat.max),
                us(service.quantile(0.50)),
                us(service.quantile(0.99)),
                us(service.max),
                us(lag.quantile(0.50)),
                us(lag.quantile(0.99)),
            );
            if errors > 0 || io_errors > 0 {
                return ExitCode::from(1);
            }
        }
        _ => return usage(),
    }
    ExitCode::SUCCESS
}
