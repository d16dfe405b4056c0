//! Update events posted to a webhook (docs/SPEC.md §11.13): `[notify]` in
//! charter.toml names a URL; after an update installs, rolls back, fails
//! or is deferred, charter-update POSTs one JSON event there, signed with
//! HMAC-SHA256 under `notify.secret` the way GitHub signs its webhooks
//! (`X-Charter-Signature: sha256=<hex>` over the exact body bytes).
//!
//! Delivery is best effort: a webhook that is down never fails or undoes
//! an update. It is tried three times, each attempt bounded as a whole by
//! `timeout_secs`, redirects are not followed (a POST turned into a GET
//! elsewhere would lose the event, or send its headers to another host),
//! and a failure is printed on stderr with the URL's scheme and host only
//! (chat webhooks carry their token in the path). Every event carries a
//! random id and its time inside the signed body, so a receiver can
//! refuse replays.

use std::time::Duration;

use charter_release::Error as ReleaseError;
use hmac::{KeyInit, Mac};
use jiff::Timestamp;
use semver::Version;
use serde::Serialize;

use crate::Result;
use crate::config::notify::NotifyConfig;

/// Re-exported for the transaction, which names event kinds from here.
use crate::config::notify::EventKind;

/// One event (the JSON body).
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// What happened.
    pub event: EventKind,
    /// Random, 128 bits, hex: a receiver can drop an id it saw.
    pub id: String,
    /// When it was sent.
    pub time: Timestamp,
    /// The host's name.
    pub host: String,
    /// The product.
    pub product: String,
    /// The release the event is about: installed, failed (when known),
    /// deferred, or rolled back from.
    pub release: Option<Version>,
    /// The release running after it.
    pub running: Option<Version>,
    /// Why (failures, rollbacks, deferrals).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Event {
    /// An event for this host, now.
    pub fn new(
        kind: EventKind,
        product: &str,
        release: Option<Version>,
        running: Option<Version>,
        reason: Option<String>,
        now: Timestamp,
    ) -> Self {
        let mut id = [0u8; 16];
        // A failing RNG leaves a zero id, which only weakens replay
        // detection of this one event; the update goes on.
        let _ = getrandom::fill(&mut id);
        Event {
            event: kind,
            id: hex::encode(id),
            time: now,
            host: rustix::system::uname()
                .nodename()
                .to_string_lossy()
                .into_owned(),
            product: product.to_owned(),
            release,
            running,
            reason,
        }
    }
}

/// `sha256=<hex>` of HMAC-SHA256(`key`, `body`).
pub fn signature(key: &[u8], body: &[u8]) -> String {
    let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    m.update(body);
    format!("sha256={}", hex::encode(m.finalize().into_bytes()))
}

/// Sends events to the configured webhook.
pub struct Notifier {
    url: String,
    events: Vec<EventKind>,
    key: Option<zeroize::Zeroizing<Vec<u8>>>,
    agent: ureq::Agent,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Notifier({})", redacted(&self.url))
    }
}

/// `scheme://host[:port]/…`: what messages show of a webhook URL, whose
/// path may be its credential.
pub fn redacted(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if rest.len() > host.len() {
        format!("{scheme}://{host}/…")
    } else {
        format!("{scheme}://{host}")
    }
}

impl Notifier {
    /// Prepares the client (the secret must be resolved already).
    pub fn new(cfg: &NotifyConfig) -> Result<Self> {
        let key = match &cfg.secret {
            Some(s) => Some(zeroize::Zeroizing::new(
                crate::config::secret(s, "notify.secret")?
                    .as_bytes()
                    .to_vec(),
            )),
            None => None,
        };
        let t = Duration::from_secs(u64::from(cfg.timeout_secs));
        let agent = crate::net::http::http_agent(
            cfg.ca_file.as_deref(),
            crate::net::http::TlsVerification::Verify,
            t,
            0,
            Some(t),
        )?;
        if key.as_ref().is_some_and(|k| k.is_empty()) {
            return Err(ReleaseError::InvalidInput {
                what: "notify.secret",
                reason: "is empty".into(),
            }
            .into());
        }
        Ok(Notifier {
            url: cfg.url.clone(),
            events: cfg.events.clone(),
            key,
            agent,
        })
    }

    /// Whether `kind` is sent at all.
    pub fn wants(&self, kind: EventKind) -> bool {
        self.events.contains(&kind)
    }

    /// POSTs `ev` (if its kind is wanted): up to three attempts, 2xx is
    /// delivered. The error says what the webhook answered, never the
    /// secret.
    pub fn send(&self, ev: &Event) -> std::result::Result<(), String> {
        if !self.wants(ev.event) {
            return Ok(());
        }
        let body = serde_json::to_vec(ev).map_err(|e| e.to_string())?;
        let mut headers = vec![
            ("X-Charter-Event", ev.event.name().to_owned()),
            ("X-Charter-Delivery", ev.id.clone()),
        ];
        if let Some(k) = &self.key {
            headers.push(("X-Charter-Signature", signature(k, &body)));
        }
        post(&self.agent, &self.url, "notify.url", &headers, &body)
    }
}

/// POSTs `body` as JSON with `headers`: up to three attempts (again only
/// after a connection error, 5xx, 408 or 429), 2xx is delivered,
/// redirects are not followed. The error names the URL by its scheme and
/// host only (`field` is the setting to fix after a redirect).
pub(crate) fn post(
    agent: &ureq::Agent,
    url: &str,
    field: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> std::result::Result<(), String> {
    let mut last = String::new();
    for attempt in 0..3u32 {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(200 * u64::from(attempt)));
        }
        let mut req = agent.post(url).header("Content-Type", "application/json");
        for (name, value) in headers {
            req = req.header(*name, value.as_str());
        }
        match req.send(body) {
            // The body is not read: only the status matters.
            Ok(resp) => {
                let status = resp.status().as_u16();
                if (200..300).contains(&status) {
                    return Ok(());
                }
                last = format!("{} answered {status}", redacted(url));
                if (300..400).contains(&status) {
                    last.push_str(&format!(
                        " (redirects are not followed: set {field} to the target)"
                    ));
                    break;
                }
                if status < 500 && status != 408 && status != 429 {
                    break;
                }
            }
            Err(e) => {
                // ureq's message may repeat the URL.
                let msg = e.to_string().replace(url, &redacted(url));
                last = format!("{}: {msg}", redacted(url));
            }
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_rfc_4231_case_2() {
        // RFC 4231, test case 2: key "Jefe".
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn urls_are_shown_without_their_path() {
        assert_eq!(
            redacted("https://hooks.slack.com/services/T0/B0/secret"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(redacted("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
    }
}
