//! End-to-end tests: the real binaries, real files, real archives, real
//! signatures. One test binary with a module per area.
#![allow(clippy::unwrap_used)]

mod agent;
mod cli_blob;
mod cli_errors;
mod cli_keys;
mod cli_manifest;
mod cli_root;
mod docs;
mod secrets;
mod updater_attacks;
mod updater_auto;
mod updater_cosign;
mod updater_crash;
mod updater_flow;
mod updater_network;
mod updater_notify;
mod updater_plain;
mod updater_rollout;
mod updater_servers;
