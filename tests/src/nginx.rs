//! A real nginx on 127.0.0.1 for the tests whose behaviour depends on a
//! real server (conditional GETs, HEAD, caching): an origin serving a
//! directory, or a caching proxy in front of another server. Each request
//! is logged as one line of [`LogLine`] fields, with the bytes on the wire
//! both ways. `nginx` must be installed (`.ci/run` installs it).

use std::io::Read as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One request as nginx logged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub method: String,
    pub uri: String,
    pub status: u16,
    /// Bytes of the request: request line, headers and body.
    pub request_bytes: u64,
    /// Bytes sent to the client: status line, headers and body.
    pub response_bytes: u64,
    /// `HIT`, `MISS`, `REVALIDATED`, `EXPIRED`, … for a caching proxy;
    /// `-` for an origin.
    pub cache: String,
}

/// A running nginx; stopped when dropped.
#[derive(Debug)]
pub struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

/// The log format: fields separated by one space, none of them with a
/// space in it.
const LOG_FORMAT: &str =
    "$request_method $uri $status $request_length $bytes_sent $upstream_cache_status";

impl Nginx {
    /// An origin serving `root` (ETag and Last-Modified on, as nginx's
    /// defaults are).
    pub fn origin(root: &Path) -> Nginx {
        Self::start(
            "",
            &format!(
                "location / {{ root {}; }}",
                root.canonicalize().unwrap().display()
            ),
        )
    }

    /// A caching proxy in front of `upstream` (`http://127.0.0.1:PORT`):
    /// answers are cached for `ttl` and revalidated with conditional GETs
    /// once stale, as a CDN edge does; `X-Cache` says what the cache did.
    pub fn caching_proxy(upstream: &str, ttl: Duration) -> Nginx {
        let secs = ttl.as_secs().max(1);
        Self::start(
            "proxy_cache_path cache levels=1 keys_zone=repo:1m inactive=1d use_temp_path=off;",
            &format!(
                "location / {{\n\
               proxy_pass {upstream};\n\
               proxy_cache repo;\n\
               proxy_cache_valid 200 404 {secs}s;\n\
               proxy_cache_revalidate on;\n\
               proxy_cache_lock on;\n\
               add_header X-Cache $upstream_cache_status;\n\
             }}"
            ),
        )
    }

    /// nginx with `http_extra` in its `http` block and `server_body` in
    /// its one `server`.
    fn start(http_extra: &str, server_body: &str) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        for d in ["logs", "tmp", "cache"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        // A free port, released for nginx to take (a race with another
        // process is possible and retried below).
        for _ in 0..10 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let conf = format!(
                "daemon off;\nmaster_process on;\nworker_processes 1;\npid {p}/nginx.pid;\n\
                 error_log {p}/logs/error.log warn;\n\
                 events {{ worker_connections 256; }}\n\
                 http {{\n\
                   log_format repo '{LOG_FORMAT}';\n\
                   access_log {p}/logs/access.log repo;\n\
                   client_body_temp_path {p}/tmp/body;\n\
                   proxy_temp_path {p}/tmp/proxy;\n\
                   fastcgi_temp_path {p}/tmp/fastcgi;\n\
                   uwsgi_temp_path {p}/tmp/uwsgi;\n\
                   scgi_temp_path {p}/tmp/scgi;\n\
                   default_type application/octet-stream;\n\
                   server_tokens off;\n\
                   {http_extra}\n\
                   server {{\n\
                     listen 127.0.0.1:{port};\n\
                     {server_body}\n\
                   }}\n\
                 }}\n",
                p = dir.path().display(),
            );
            // Relative paths in the config (proxy_cache_path) are under
            // the prefix.
            std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
            let mut child = Command::new(nginx_bin())
                .arg("-p")
                .arg(dir.path())
                .arg("-c")
                .arg(dir.path().join("nginx.conf"))
                .arg("-e")
                .arg(dir.path().join("logs/error.log"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("nginx is installed (apt-get install nginx)");
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Nginx { child, dir, port };
                }
                if let Some(status) = child.try_wait().unwrap() {
                    let mut err = String::new();
                    child.stderr.take().unwrap().read_to_string(&mut err).ok();
                    let log = std::fs::read_to_string(dir.path().join("logs/error.log"))
                        .unwrap_or_default();
                    if log.contains("Address already in use") {
                        break;
                    }
                    panic!("nginx exited ({status}): {err}{log}");
                }
                assert!(Instant::now() < deadline, "nginx did not listen in 10 s");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("no free port for nginx after 10 tries");
    }

    /// Its base URL, with a trailing slash.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// `http://127.0.0.1:PORT`, for a proxy's upstream.
    pub fn origin_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn access_log(&self) -> PathBuf {
        self.dir.path().join("logs/access.log")
    }

    /// The requests logged so far (nginx writes a line when an answer is
    /// done, so this waits a moment for lines still being written).
    pub fn log(&self) -> Vec<LogLine> {
        std::thread::sleep(Duration::from_millis(50));
        let text = std::fs::read_to_string(self.access_log()).unwrap_or_default();
        text.lines()
            .map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                assert_eq!(f.len(), 6, "access log line: {l}");
                LogLine {
                    method: f[0].into(),
                    uri: f[1].into(),
                    status: f[2].parse().unwrap(),
                    request_bytes: f[3].parse().unwrap(),
                    response_bytes: f[4].parse().unwrap(),
                    cache: f[5].into(),
                }
            })
            .collect()
    }

    /// Forgets the requests logged so far.
    pub fn clear_log(&self) {
        std::thread::sleep(Duration::from_millis(50));
        std::fs::write(self.access_log(), "").unwrap();
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: a fast shutdown of master and workers.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

fn nginx_bin() -> PathBuf {
    for p in ["/usr/sbin/nginx", "/usr/bin/nginx"] {
        if Path::new(p).exists() {
            return p.into();
        }
    }
    PathBuf::from("nginx")
}
