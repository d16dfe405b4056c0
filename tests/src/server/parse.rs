//! Parsing what a client sends: the request head (bounded), the URL path
//! and its mapping onto the served root, `If-None-Match` lists and
//! `Range` specs.

use std::io::{ErrorKind, Read};
use std::net::TcpStream;
use std::path::{Path, PathBuf};

use super::{Head, HeadError, MAX_HEAD};

/// Reads the request head (up to and including the blank line).
pub(super) fn read_head(stream: &mut TcpStream) -> Result<Head, HeadError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let end = loop {
        let n = match stream.read(&mut chunk) {
            Ok(0) => return Err(HeadError::Gone),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return Err(HeadError::Gone),
        };
        // Only the new bytes (plus 3 before them) can complete the terminator.
        let from = buf.len().saturating_sub(3);
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = find_head_end(&buf, from) {
            if end > MAX_HEAD {
                return Err(HeadError::TooLarge(buf));
            }
            break end;
        }
        if buf.len() > MAX_HEAD {
            return Err(HeadError::TooLarge(buf));
        }
    };
    let Ok(text) = std::str::from_utf8(&buf[..end]) else {
        return Err(HeadError::Malformed(buf));
    };
    let mut lines = text
        .trim_start_matches(['\r', '\n'])
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l));
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ').filter(|s| !s.is_empty());
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HeadError::Malformed(buf));
    };
    if !version.starts_with("HTTP/1.") || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(HeadError::Malformed(buf));
    }
    let mut headers = Vec::new();
    for line in lines {
        if line.is_empty() {
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(HeadError::Malformed(buf));
        };
        if name.is_empty() || name.contains([' ', '\t']) {
            return Err(HeadError::Malformed(buf));
        }
        headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
    }
    Ok(Head {
        method: method.to_owned(),
        target: target.to_owned(),
        headers,
    })
}

/// Index just past the blank line ending the head ("\r\n\r\n" or "\n\n"),
/// searching from `from`. Leading empty lines (allowed before the request
/// line) do not count.
pub(super) fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let from = from.max(start);
    (from..buf.len()).find_map(|i| {
        if buf[i..].starts_with(b"\r\n\r\n") {
            Some(i + 4)
        } else if buf[i..].starts_with(b"\n\n") {
            Some(i + 2)
        } else {
            None
        }
    })
}

/// Method and path from a raw head that could not be parsed, for the log.
pub(super) fn request_line_guess(raw: &[u8]) -> (String, String) {
    let line = raw.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let path = url_path(parts.next().unwrap_or("")).to_owned();
    (method, path)
}

/// The path of a request target: origin-form or absolute-form, without query
/// string or fragment.
pub(super) fn url_path(target: &str) -> &str {
    let mut t = target;
    for scheme in ["http://", "https://"] {
        if let Some(rest) = t.strip_prefix(scheme) {
            t = rest.find('/').map_or("/", |i| &rest[i..]);
        }
    }
    let end = t.find(['?', '#']).unwrap_or(t.len());
    &t[..end]
}

/// Maps a URL path onto `root`; None if a segment is `..` (also when
/// percent-encoded) or otherwise unsafe.
pub(super) fn map_path(root: &Path, path: &str) -> Option<PathBuf> {
    let rest = path.strip_prefix('/')?;
    let mut out = root.to_owned();
    for seg in rest.split('/') {
        let seg = percent_decode(seg);
        match seg.as_str() {
            "" | "." => {}
            ".." => return None,
            s if s.contains(['/', '\0']) => return None,
            s => out.push(s),
        }
    }
    Some(out)
}

/// Decodes %XX escapes; invalid escapes and non-UTF-8 results are kept as
/// written.
pub(super) fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_owned();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let hex = |c: u8| (c as char).to_digit(16);
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_owned())
}

/// Whether an If-None-Match / If-Range value matches `etag`. `strong`
/// selects strong comparison (If-Range), otherwise weak (If-None-Match).
pub(super) fn etag_list_matches(list: &str, etag: &str, strong: bool) -> bool {
    list.split(',').map(str::trim).any(|candidate| {
        if candidate == "*" {
            return !strong;
        }
        match candidate.strip_prefix("W/") {
            Some(weak) => !strong && weak == etag,
            None => candidate == etag,
        }
    })
}

pub(super) enum RangeSpec {
    Full,
    Part(u64, u64),
    Unsatisfiable,
}

/// Parses a single-range `bytes=` header against a representation of
/// `size` bytes. Anything not understood (other units, several ranges,
/// syntax errors) is ignored, which serves the whole file.
pub(super) fn parse_range(spec: &str, size: u64) -> RangeSpec {
    let Some(set) = spec.trim().strip_prefix("bytes=") else {
        return RangeSpec::Full;
    };
    let set = set.trim();
    if set.contains(',') {
        return RangeSpec::Full;
    }
    let Some((first, last)) = set.split_once('-') else {
        return RangeSpec::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            None
        } else {
            // Overlong numbers saturate: they only ever mean "past the end".
            Some(s.parse().unwrap_or(u64::MAX))
        }
    };
    if first.is_empty() {
        // Suffix range: the last N bytes.
        return match num(last) {
            None => RangeSpec::Full,
            Some(0) => RangeSpec::Unsatisfiable,
            Some(_) if size == 0 => RangeSpec::Unsatisfiable,
            Some(n) => RangeSpec::Part(size.saturating_sub(n), size - 1),
        };
    }
    let Some(first) = num(first) else {
        return RangeSpec::Full;
    };
    let last = if last.is_empty() {
        None
    } else {
        match num(last) {
            Some(l) if l >= first => Some(l),
            _ => return RangeSpec::Full,
        }
    };
    if first >= size {
        return RangeSpec::Unsatisfiable;
    }
    let last = last.map_or(size - 1, |l| l.min(size - 1));
    RangeSpec::Part(first, last)
}
