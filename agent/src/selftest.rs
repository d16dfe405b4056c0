//! `charter-agent config test`: each check the agent needs, ok or failed
//! with its reason (docs/SPEC.md §10.9). Nothing is written: the license
//! state is read as the updater reads it, and the status URL is fetched
//! and verified but not recorded. Secrets are never shown.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::config::Config;
use crate::installed::load_root;
use crate::license::VerifiedStatus;
use crate::status_fetch::fetch;

/// One check.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked.
    pub name: &'static str,
    /// Whether it passed.
    pub ok: bool,
    /// What was found, or why it failed.
    pub detail: String,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The config file tested.
    pub config: String,
    /// Each check, in order.
    pub checks: Vec<Check>,
}

impl Report {
    /// An empty report for the config at `path`.
    pub fn new(path: &Path) -> Self {
        Report {
            config: path.display().to_string(),
            checks: Vec::new(),
        }
    }

    /// The report as text: the config, then one line a check.
    pub fn to_text(&self) -> String {
        let width = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
        let mut out = format!("config {}\n", self.config);
        for c in &self.checks {
            out.push_str(&format!(
                "{} {:<width$} {}\n",
                if c.ok { "ok    " } else { "FAILED" },
                c.name,
                c.detail
            ));
        }
        out
    }

    /// Whether every check passed.
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    /// Records a check; returns whether it passed.
    pub fn push(&mut self, name: &'static str, r: std::result::Result<String, String>) -> bool {
        let ok = r.is_ok();
        self.checks.push(Check {
            name,
            ok,
            detail: r.unwrap_or_else(|e| e),
        });
        ok
    }
}

/// Runs every check against the config at `path`.
pub fn run(path: &Path, clock: Box<dyn charter_keys::Clock>) -> Report {
    let mut r = Report::new(path);
    let parsed = std::fs::read(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
        .and_then(|b| String::from_utf8(b).map_err(|_| "not UTF-8".to_owned()))
        .and_then(|t| Config::parse(&t, path).map_err(|e| e.to_string()));
    if !r.push(
        "config",
        parsed
            .as_ref()
            .map(|c| {
                format!(
                    "product {}, license {}",
                    c.product,
                    c.paths.license.display()
                )
            })
            .map_err(Clone::clone),
    ) {
        return r;
    }
    let cfg = match Config::load(path) {
        Ok(cfg) => {
            let detail = match &cfg.status.token {
                None => Ok("no secret fields".to_owned()),
                Some(t) if t.is_encrypted() => Ok("status.token (encrypted)".to_owned()),
                // Works, with a warning; not a failure.
                Some(_) => Ok(
                    "status.token (PLAIN TEXT); warning: encrypt with `charter secrets encrypt`"
                        .to_owned(),
                ),
            };
            r.push("secrets", detail);
            cfg
        }
        Err(e) => {
            r.push("secrets", Err(e.to_string()));
            return r;
        }
    };
    let root = match load_root(&cfg) {
        Ok(root) => {
            r.push(
                "trust root",
                Ok(format!(
                    "version {}, expires {}",
                    root.version(),
                    root.expires()
                )),
            );
            root
        }
        Err(e) => {
            r.push("trust root", Err(e.to_string()));
            return r;
        }
    };
    let how = crate::fingerprint::DmiRead::for_this_process();
    let fp = crate::fingerprint::HostIds::read(&cfg.product, &cfg.fingerprint, how)
        .map_err(|e| e.to_string())
        .and_then(|h| match h.v2() {
            Ok(v2) => Ok(format!("{v2} (v1 {})", h.v1())),
            Err(why) => Err(format!("v2 unknown: {why} (v1 {})", h.v1())),
        });
    r.push("fingerprint", fp);
    let timeout = Duration::from_secs(cfg.status.timeout_secs);
    let token = cfg
        .status
        .token
        .as_ref()
        .and_then(|t| t.expose().map(str::to_owned));
    let ent = match crate::entitlement::read(&cfg, clock.as_ref(), how) {
        Ok(ent) => ent,
        Err(e) => {
            r.push("license", Err(e.to_string()));
            return r;
        }
    };
    let e = ent.evaluation();
    let lic = match ent.license() {
        Some(l) => {
            let detail = format!(
                "{} for {} ({}), expires {}: {}",
                l.license_id, l.customer, l.product, l.expires_at, e.state
            );
            if e.reasons.is_empty() {
                Ok(detail)
            } else {
                Err(format!("{detail}: {}", e.reasons.join("; ")))
            }
        }
        None => Err(format!("{}: {}", e.state, e.reasons.join("; "))),
    };
    r.push("license", lic);
    if let Some(url) = ent.license().and_then(|l| l.status_url.clone()) {
        let st = fetch(&url, timeout, token.as_deref())
            .and_then(|b| VerifiedStatus::verify(&b, &root))
            .map(|s| {
                format!(
                    "{url}: {:?}, valid until {}",
                    s.status().state,
                    s.status().valid_until
                )
            })
            .map_err(|e| format!("{url}: {e}"));
        r.push("status", st);
    }
    r
}
