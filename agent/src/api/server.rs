//! The accept loop and the connection loop of the local API: each peer
//! identified (SO_PEERCRED) and counted in its pool, refused peers
//! answered 403, allowed peers served request by request within the rate
//! limit.

use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::json;

use super::http::{ReadOutcome, read_request, refusal, refuse, respond};
use super::routes::route;
use super::shared::Shared;

/// Serves the listener forever (one thread per connection). The peer is
/// identified (SO_PEERCRED) before its connection is counted: a refused
/// peer is answered from a pool of its own, also `api.max_connections`
/// large, so strangers never take an allowed peer's slot; when that pool
/// is full, the 403 is written without waiting and the connection closed.
pub fn serve(listener: UnixListener, shared: Arc<Shared>) {
    for conn in listener.incoming() {
        let Ok(mut stream) = conn else { continue };
        let Ok(cred) = rustix::net::sockopt::socket_peercred(&stream) else {
            continue;
        };
        let peer = Peer {
            uid: cred.uid.as_raw(),
            pid: cred.pid.as_raw_nonzero().get(),
        };
        let allowed = shared.authorized(peer.uid, cred.gid.as_raw());
        let pool = if allowed {
            &shared.conns
        } else {
            &shared.refused_conns
        };
        if pool.fetch_add(1, Ordering::AcqRel) >= shared.max_conns {
            pool.fetch_sub(1, Ordering::AcqRel);
            let _ = stream.set_nonblocking(true);
            let _ = if allowed {
                respond(
                    &mut stream,
                    503,
                    &json!({"error": "too many connections"}),
                    true,
                )
            } else {
                respond(&mut stream, 403, &refusal(peer.uid), true)
            };
            continue;
        }
        let shared = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .stack_size(128 << 10)
            .spawn(move || {
                if allowed {
                    connection(stream, &shared, peer);
                    shared.conns.fetch_sub(1, Ordering::AcqRel);
                } else {
                    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
                    refuse(&mut stream, peer.uid);
                    shared.refused_conns.fetch_sub(1, Ordering::AcqRel);
                }
            });
        if spawned.is_err() {
            // Could not start a thread: the connection is dropped.
        }
    }
}

/// Who is on the other end of a connection.
#[derive(Debug, Clone, Copy)]
struct Peer {
    uid: u32,
    pid: i32,
}

/// Serves an allowed peer's connection (the peer was checked in
/// [`serve`]).
fn connection(mut stream: UnixStream, shared: &Arc<Shared>, peer: Peer) {
    let Peer { uid, pid } = peer;
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    // No single peer may take every slot (`api.max_connections_per_uid`).
    {
        let mut c = shared.per_uid.lock().unwrap_or_else(|e| e.into_inner());
        let n = c.entry(uid).or_insert(0);
        if *n >= shared.per_uid_cap {
            drop(c);
            let _ = respond(
                &mut stream,
                503,
                &json!({"error": "too many connections from this uid"}),
                true,
            );
            return;
        }
        *n += 1;
    }
    serve_connection(&mut stream, shared, uid, pid);
    let mut c = shared.per_uid.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(n) = c.get_mut(&uid) {
        *n = n.saturating_sub(1);
    }
}

fn serve_connection(stream: &mut UnixStream, shared: &Arc<Shared>, uid: u32, pid: i32) {
    let mut buf = Vec::with_capacity(1024);
    loop {
        let deadline = Instant::now() + shared.request_timeout;
        let req = match read_request(stream, &mut buf, deadline) {
            ReadOutcome::Closed => return,
            ReadOutcome::Bad(code, why) => {
                let _ = respond(stream, code, &json!({"error": why}), true);
                return;
            }
            ReadOutcome::Request(r) => r,
        };
        if !shared.take_token(uid) {
            if respond(
                stream,
                429,
                &json!({"error": "rate limit exceeded"}),
                req.close,
            )
            .is_err()
                || req.close
            {
                return;
            }
            continue;
        }
        let (code, body) = route(shared, &req, uid, pid);
        if respond(stream, code, &body, req.close).is_err() || req.close {
            return;
        }
    }
}
