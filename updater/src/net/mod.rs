//! The network: the repository client (conditional GETs, capped bodies,
//! resumable downloads) and the update webhooks.

pub mod download;
pub mod fetch;
pub mod http;
pub mod notify;
pub mod report;
