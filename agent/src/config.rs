//! The agent's configuration, `/etc/charter/agent.toml` by default
//! (`--config` or `CHARTER_AGENT_CONFIG` point elsewhere). See docs/CONFIG.md.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::fingerprint::Sources;
use charter_keys::confsecret::{MasterKey, SecretValue};

/// Largest agent config file read.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Default location of the config file.
pub const DEFAULT_PATH: &str = "/etc/charter/agent.toml";

/// The whole config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Product this host runs.
    pub product: String,
    /// Paths.
    pub paths: Paths,
    /// Local API.
    #[serde(default)]
    pub api: Api,
    /// Status refresh.
    #[serde(default)]
    pub status: StatusRefresh,
    /// The door to the updater.
    #[serde(default)]
    pub update: UpdateDoor,
    /// Clock checks.
    #[serde(default)]
    pub clock: ClockCfg,
    /// Where the fingerprint's ids are read from.
    #[serde(default)]
    pub fingerprint: Sources,
    /// Commands run when a feature turns on or off.
    #[serde(default)]
    pub features: BTreeMap<String, FeatureHooks>,
}

/// Paths.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Paths {
    /// The license file (kept across updates).
    pub license: PathBuf,
    /// Agent state: host secret, runtime state, audit log.
    pub state_dir: PathBuf,
    /// The trust root.
    pub trust_root: PathBuf,
    /// The API's unix socket.
    pub socket: PathBuf,
    /// The feature state, written atomically for other programs to read.
    pub features_file: PathBuf,
    /// The newest trust root the updater accepted (its state dir's
    /// root.json): used when newer than `trust_root`, so a rotated license
    /// key reaches the agent too.
    #[serde(default)]
    pub updater_root: Option<PathBuf>,
}

/// The local API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Api {
    /// Users (by uid) allowed to use the API; the agent's own uid always is.
    #[serde(default)]
    pub allowed_uids: Vec<u32>,
    /// Groups (by name) whose members may use it.
    #[serde(default)]
    pub allowed_groups: Vec<String>,
    /// The group database membership is read from (tests and containers
    /// point it elsewhere); re-read whenever it changes.
    #[serde(default = "default_group_file")]
    pub group_file: PathBuf,
    /// The user database that names each uid.
    #[serde(default = "default_passwd_file")]
    pub passwd_file: PathBuf,
    /// Requests per second per peer uid (token bucket refill).
    #[serde(default = "default_rate")]
    pub rate_per_sec: u32,
    /// Burst size of the bucket.
    #[serde(default = "default_burst")]
    pub burst: u32,
    /// Most simultaneous connections.
    #[serde(default = "default_conns")]
    pub max_connections: usize,
    /// Most simultaneous connections from one uid (default: half of
    /// `max_connections`; see [`Api::per_uid_cap`]).
    #[serde(default)]
    pub max_connections_per_uid: Option<usize>,
    /// Seconds a connection has for each request's head and body, counted
    /// from when the agent starts waiting for it (1 to 300).
    #[serde(default = "default_request_timeout")]
    pub request_timeout_secs: u64,
}

impl Api {
    /// Most simultaneous connections one uid may hold:
    /// `max_connections_per_uid`, or half of `max_connections` (32 of 64:
    /// a panel's connection pool fits, and one peer still cannot take
    /// every slot).
    pub fn per_uid_cap(&self) -> usize {
        self.max_connections_per_uid
            .unwrap_or((self.max_connections / 2).max(1))
    }
}

impl Default for Api {
    fn default() -> Self {
        Api {
            allowed_uids: Vec::new(),
            allowed_groups: Vec::new(),
            group_file: default_group_file(),
            passwd_file: default_passwd_file(),
            rate_per_sec: default_rate(),
            burst: default_burst(),
            max_connections: default_conns(),
            max_connections_per_uid: None,
            request_timeout_secs: default_request_timeout(),
        }
    }
}

/// Status refresh timing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusRefresh {
    /// Seconds between refreshes.
    #[serde(default = "default_refresh")]
    pub refresh_secs: u64,
    /// Random extra delay, up to this many seconds (spreads a fleet).
    #[serde(default = "default_jitter")]
    pub jitter_secs: u64,
    /// Seconds a fetch may take.
    #[serde(default = "default_http_timeout")]
    pub timeout_secs: u64,
    /// Bearer token sent with status fetches over HTTP(S) (secret: may be
    /// `enc:v1:`).
    #[serde(default)]
    pub token: Option<SecretValue>,
}

impl Default for StatusRefresh {
    fn default() -> Self {
        StatusRefresh {
            refresh_secs: default_refresh(),
            jitter_secs: default_jitter(),
            timeout_secs: default_http_timeout(),
            token: None,
        }
    }
}

/// The narrow door to the updater: exact commands, no arguments from the
/// caller ever added.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateDoor {
    /// `charter-update check --json` through the door.
    #[serde(default = "door_check")]
    pub check: Vec<String>,
    /// `charter-update apply --json` through the door.
    #[serde(default = "door_apply")]
    pub apply: Vec<String>,
    /// `charter-update rollback --json` through the door.
    #[serde(default = "door_rollback")]
    pub rollback: Vec<String>,
    /// `charter-update status --json` through the door.
    #[serde(default = "door_status")]
    pub status: Vec<String>,
    /// The operator's hold through the socket door; the agent appends one
    /// argument, the seconds it parsed from the request.
    #[serde(default = "door_hold")]
    pub hold: Vec<String>,
    /// Lifting the hold through the socket door.
    #[serde(default = "door_hold_clear")]
    pub hold_clear: Vec<String>,
    /// Seconds one door command may take.
    #[serde(default = "default_door_timeout")]
    pub timeout_secs: u64,
}

fn door(cmd: &str) -> Vec<String> {
    [
        "/usr/bin/sudo",
        "-n",
        "/usr/bin/charter-update",
        cmd,
        "--json",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}
fn door_check() -> Vec<String> {
    door("check")
}
fn door_apply() -> Vec<String> {
    door("apply")
}
fn door_rollback() -> Vec<String> {
    door("rollback")
}
fn door_status() -> Vec<String> {
    door("status")
}
// The hold goes through the socket door only: a sudoers rule cannot check
// its one argument (DECISIONS.md).
fn door_hold() -> Vec<String> {
    vec![
        "/usr/bin/charter-update".into(),
        "door".into(),
        "hold".into(),
    ]
}
fn door_hold_clear() -> Vec<String> {
    vec![
        "/usr/bin/charter-update".into(),
        "door".into(),
        "hold-clear".into(),
    ]
}

impl Default for UpdateDoor {
    fn default() -> Self {
        UpdateDoor {
            check: door_check(),
            apply: door_apply(),
            rollback: door_rollback(),
            status: door_status(),
            hold: door_hold(),
            hold_clear: door_hold_clear(),
            timeout_secs: default_door_timeout(),
        }
    }
}

/// Clock checks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockCfg {
    /// Seconds the clock may fall below the high-water mark (NTP steps).
    #[serde(default = "default_tolerance")]
    pub tolerance_secs: u64,
}

impl ClockCfg {
    /// `tolerance_secs` as a duration (values past `i64` read as the default).
    pub fn tolerance(&self) -> jiff::SignedDuration {
        jiff::SignedDuration::from_secs(i64::try_from(self.tolerance_secs).unwrap_or(300))
    }
}

impl Default for ClockCfg {
    fn default() -> Self {
        ClockCfg {
            tolerance_secs: default_tolerance(),
        }
    }
}

/// Commands run when a feature turns on or off (argv, no shell).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureHooks {
    /// Run when the feature turns on.
    #[serde(default)]
    pub on: Option<Vec<String>>,
    /// Run when it turns off.
    #[serde(default)]
    pub off: Option<Vec<String>>,
    /// Seconds a hook may run before its process group is killed.
    #[serde(default = "default_hook_timeout")]
    pub timeout_secs: u64,
}

impl Default for FeatureHooks {
    fn default() -> Self {
        FeatureHooks {
            on: None,
            off: None,
            timeout_secs: default_hook_timeout(),
        }
    }
}

fn default_hook_timeout() -> u64 {
    60
}

fn default_group_file() -> PathBuf {
    PathBuf::from("/etc/group")
}
fn default_passwd_file() -> PathBuf {
    PathBuf::from("/etc/passwd")
}
fn default_rate() -> u32 {
    200
}
fn default_burst() -> u32 {
    400
}
fn default_request_timeout() -> u64 {
    10
}

fn default_conns() -> usize {
    64
}
fn default_refresh() -> u64 {
    3600
}
fn default_jitter() -> u64 {
    600
}
fn default_http_timeout() -> u64 {
    20
}
fn default_door_timeout() -> u64 {
    3600
}
fn default_tolerance() -> u64 {
    300
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = charter_keys::fsutil::read_capped(path, MAX_CONFIG_BYTES, "a config file")?;
        let text = std::str::from_utf8(&bytes).map_err(|_| Error::Config {
            path: path.to_owned(),
            reason: "not UTF-8".into(),
        })?;
        let mut cfg = Self::parse(text, path)?;
        cfg.fingerprint.config_owner = std::fs::metadata(path)
            .ok()
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m));
        let bad = |e: charter_keys::Error| Error::Config {
            path: path.to_owned(),
            reason: e.to_string(),
        };
        if let Some(t) = &mut cfg.status.token {
            let key = if t.is_encrypted() {
                MasterKey::locate().map_err(bad)?
            } else {
                None
            };
            t.resolve("status.token", key.as_ref()).map_err(bad)?;
        }
        Ok(cfg)
    }

    /// Secret fields written in plain text (warned about at start and in
    /// the API's license answer).
    pub fn plain_secrets(&self) -> Vec<&'static str> {
        match &self.status.token {
            Some(t) if !t.is_encrypted() => vec!["status.token"],
            _ => Vec::new(),
        }
    }

    /// Parses and validates config text.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let cfg: Config = toml::from_str(text).map_err(|e| Error::Config {
            path: path.to_owned(),
            reason: e.to_string().trim_end().to_owned(),
        })?;
        let bad = |reason: String| Error::Config {
            path: path.to_owned(),
            reason,
        };
        for (name, cmd) in [
            ("update.check", &cfg.update.check),
            ("update.apply", &cfg.update.apply),
            ("update.rollback", &cfg.update.rollback),
            ("update.status", &cfg.update.status),
            ("update.hold", &cfg.update.hold),
            ("update.hold_clear", &cfg.update.hold_clear),
        ] {
            if cmd.is_empty() {
                return Err(bad(format!("{name} is an empty command")));
            }
        }
        if cfg.api.rate_per_sec == 0 || cfg.api.burst == 0 || cfg.api.max_connections == 0 {
            return Err(bad(
                "api.rate_per_sec, api.burst and api.max_connections must be positive".into(),
            ));
        }
        for (name, hooks) in &cfg.features {
            if !(1..=3600).contains(&hooks.timeout_secs) {
                return Err(bad(format!(
                    "features.{name}.timeout_secs must be 1 to 3600"
                )));
            }
        }
        if let Some(n) = cfg.api.max_connections_per_uid
            && !(1..=cfg.api.max_connections).contains(&n)
        {
            return Err(bad(format!(
                "api.max_connections_per_uid must be 1 to api.max_connections ({}), not {n}",
                cfg.api.max_connections
            )));
        }
        if !(1..=300).contains(&cfg.api.request_timeout_secs) {
            return Err(bad(format!(
                "api.request_timeout_secs must be 1 to 300, not {}",
                cfg.api.request_timeout_secs
            )));
        }
        if cfg.status.refresh_secs < 10 {
            return Err(bad("status.refresh_secs must be at least 10".into()));
        }
        Ok(cfg)
    }

    /// The config path from `--config`, then CHARTER_AGENT_CONFIG, then the
    /// default.
    pub fn locate(flag: Option<&Path>) -> PathBuf {
        flag.map(Path::to_owned)
            .or_else(|| std::env::var_os("CHARTER_AGENT_CONFIG").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_PATH))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATHS: &str = "[paths]\nlicense = \"/l\"\nstate_dir = \"/s\"\ntrust_root = \"/r\"\nsocket = \"/k\"\nfeatures_file = \"/f\"\n";

    fn parse(api: &str) -> Result<Config> {
        Config::parse(
            &format!("product = \"panel\"\n{PATHS}[api]\n{api}"),
            Path::new("agent.toml"),
        )
    }

    #[test]
    fn per_uid_cap_defaults_to_half_and_is_range_checked() {
        assert_eq!(parse("").unwrap().api.per_uid_cap(), 32);
        assert_eq!(parse("max_connections = 1").unwrap().api.per_uid_cap(), 1);
        assert_eq!(
            parse("max_connections_per_uid = 64")
                .unwrap()
                .api
                .per_uid_cap(),
            64
        );
        for bad in [
            "max_connections_per_uid = 0",
            "max_connections_per_uid = 65",
        ] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(
                err.contains("api.max_connections_per_uid must be 1 to api.max_connections (64)"),
                "{err}"
            );
        }
    }

    #[test]
    fn request_timeout_defaults_to_10_and_is_range_checked() {
        assert_eq!(parse("").unwrap().api.request_timeout_secs, 10);
        assert_eq!(
            parse("request_timeout_secs = 300")
                .unwrap()
                .api
                .request_timeout_secs,
            300
        );
        for bad in ["request_timeout_secs = 0", "request_timeout_secs = 301"] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(
                err.contains("api.request_timeout_secs must be 1 to 300"),
                "{err}"
            );
        }
    }
}
