//! The local API: HTTP/1.1 with JSON over a unix socket (docs/API.md,
//! docs/openapi.yaml). Every connection's peer is identified with
//! SO_PEERCRED; only the uids and groups the config names (and root and
//! the agent's own uid) get answers, everyone else gets 403. Requests are
//! bounded (8 KiB head, 4 KiB body), rate-limited per peer uid, and served
//! by one thread per connection up to a fixed number of connections.
//!
//! The parts: `shared` (what every connection shares), `server` (the
//! accept and connection loops), `http` (framing and bounds), `access`
//! (group membership), `routes` (the endpoints) and `door` (update jobs).

mod access;
mod door;
mod http;
mod routes;
mod server;
mod shared;

pub use access::Membership;
pub use server::serve;
pub use shared::{Job, Shared};
