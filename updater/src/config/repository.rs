//! `[repository]`: where releases come from and how to reach it.

use std::path::PathBuf;

use charter_keys::confsecret::SecretValue;
use serde::Deserialize;

/// The release repository.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Repository {
    /// Base URL: `https://...`, `http://...` or `file:///...`.
    pub url: String,
    /// PEM file of CA certificates to trust instead of the built-in roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Turns TLS certificate verification off. Loud: logged at every run.
    #[serde(default)]
    pub insecure_skip_tls_verify: bool,
    /// Seconds a connection or a read may stall before it is retried.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u32,
    /// Retries of a failed request (with exponential backoff).
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Bearer token sent to a private repository (secret: may be
    /// `enc:v1:`).
    #[serde(default)]
    pub token: Option<SecretValue>,
    /// User name for HTTP basic authentication.
    #[serde(default)]
    pub username: Option<String>,
    /// Password for HTTP basic authentication (secret: may be `enc:v1:`).
    #[serde(default)]
    pub password: Option<SecretValue>,
}

fn default_timeout() -> u32 {
    30
}
fn default_retries() -> u32 {
    5
}
