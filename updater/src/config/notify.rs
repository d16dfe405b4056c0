//! `[notify]`: the webhook that hears of update events (docs/SPEC.md
//! §11.13) and which events it is sent. Sending them is
//! [`crate::net::notify`]'s.

use std::path::PathBuf;

use charter_keys::confsecret::SecretValue;
use serde::{Deserialize, Serialize};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// A release was installed and is healthy.
    Installed,
    /// A release failed after the swap and the previous one runs again
    /// (also a rollback the operator asked for).
    RolledBack,
    /// An update stopped before the swap (nothing changed).
    Failed,
    /// `auto` found a release it may not install by itself yet.
    Deferred,
}

impl EventKind {
    /// The name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Installed => "installed",
            EventKind::RolledBack => "rolled-back",
            EventKind::Failed => "failed",
            EventKind::Deferred => "deferred",
        }
    }
}

fn default_events() -> Vec<EventKind> {
    vec![
        EventKind::Installed,
        EventKind::RolledBack,
        EventKind::Failed,
    ]
}

fn default_timeout() -> u32 {
    10
}

/// `[notify]` in charter.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// Where events are POSTed (https:// or http://).
    pub url: String,
    /// HMAC key for `X-Charter-Signature` (secret: may be `enc:v1:`).
    #[serde(default)]
    pub secret: Option<SecretValue>,
    /// Which events are sent.
    #[serde(default = "default_events")]
    pub events: Vec<EventKind>,
    /// Seconds one attempt may take.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u32,
    /// PEM file of CA certificates to trust instead of the built-in roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

/// Checks a URL charter-update POSTs to (`field` names the setting):
/// `https://` or `http://`, and no credentials in it.
pub(crate) fn post_url(field: &str, url: &str) -> std::result::Result<(), String> {
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(format!(
            "{field} `{url}` must start with https:// or http://"
        ));
    }
    if let Some(rest) = url.split("://").nth(1)
        && rest.split('/').next().is_some_and(|a| a.contains('@'))
    {
        return Err(format!("{field} must not carry credentials"));
    }
    Ok(())
}

impl NotifyConfig {
    /// Checks the URL and the numbers; the message names the field.
    pub fn validate(&self) -> std::result::Result<(), String> {
        post_url("notify.url", &self.url)?;
        if self.timeout_secs == 0 || self.timeout_secs > 300 {
            return Err("notify.timeout_secs must be within 1..=300".into());
        }
        if self.events.is_empty() {
            return Err("notify.events is empty: leave [notify] out instead".into());
        }
        if self
            .secret
            .as_ref()
            .is_some_and(|s| !s.is_encrypted() && s.expose().is_some_and(str::is_empty))
        {
            return Err("notify.secret is empty".into());
        }
        if let Some(p) = &self.ca_file
            && !p.is_absolute()
        {
            return Err(format!(
                "notify.ca_file `{}` must be an absolute path",
                p.display()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_mistakes_are_named() {
        let base = |url: &str| NotifyConfig {
            url: url.into(),
            secret: None,
            events: default_events(),
            timeout_secs: 10,
            ca_file: None,
        };
        base("https://panel.example/hook").validate().unwrap();
        assert!(
            base("ftp://x/")
                .validate()
                .unwrap_err()
                .contains("notify.url")
        );
        assert!(
            base("https://u:p@x/")
                .validate()
                .unwrap_err()
                .contains("credentials")
        );
        let mut c = base("https://x/");
        c.timeout_secs = 0;
        assert!(c.validate().unwrap_err().contains("timeout_secs"));
        let mut c = base("https://x/");
        c.events.clear();
        assert!(c.validate().unwrap_err().contains("notify.events"));
    }
}
