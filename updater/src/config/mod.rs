//! The host configuration, `/etc/charter/charter.toml` by default
//! (`--config` or `CHARTER_CONFIG` point elsewhere). See docs/CONFIG.md.
//!
//! One file per table; this one holds the whole [`Config`], its loading,
//! the checks that span tables, and the secret fields.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::{Error, Result};
use auto::AutoPolicy;
use charter_keys::confsecret::{MasterKey, SecretValue};
use charter_release::archive::SetuidPolicy;
use charter_release::manifest::{HealthCheck, compile_globs, validate_product};
use charter_release::path::ArchivePath;
use charter_release::signatures::Require;
use notify::NotifyConfig;
use plain::PlainConfig;
use rollout::RolloutConfig;
use signatures::SignaturesConfig;

pub mod auto;
mod license;
pub mod notify;
mod paths;
pub mod plain;
mod repository;
pub mod rollout;
mod self_update;
mod service;
pub mod signatures;
mod update;

pub use license::LicenseCheck;
pub use paths::Paths;
pub use repository::Repository;
pub use self_update::SelfUpdate;
pub use service::Service;
pub use update::Update;

/// Default location of the config file.
pub const DEFAULT_PATH: &str = "/etc/charter/charter.toml";

/// Largest config file read.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The whole config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Product this host runs.
    pub product: String,
    /// Channel it follows (default `stable`).
    #[serde(default = "default_channel")]
    pub channel: String,
    /// Where releases come from.
    pub repository: Repository,
    /// Where things live on the host.
    pub paths: Paths,
    /// How to restart the product.
    #[serde(default)]
    pub service: Service,
    /// Health check override (otherwise the manifest's).
    #[serde(default)]
    pub health: Option<HealthCheck>,
    /// Update behaviour.
    #[serde(default)]
    pub update: Update,
    /// License entitlement: when set, a release is installed only if the
    /// license (read from the agent's files) entitles this host to it.
    #[serde(default)]
    pub license: Option<LicenseCheck>,
    /// When the product is charter itself: replace the running updater
    /// with the one in the new release after a successful update.
    #[serde(default)]
    pub self_update: Option<SelfUpdate>,
    /// Which signatures a release needs (ed25519, cosign, both, either).
    #[serde(default)]
    pub signatures: SignaturesConfig,
    /// Plain artifacts (tarball, checksum file, cosign bundle) instead of
    /// charter manifests and channel pointers (docs/SPEC.md §13.5).
    #[serde(default)]
    pub plain: Option<PlainConfig>,
    /// A webhook that hears of installs, rollbacks and failures.
    #[serde(default)]
    pub notify: Option<NotifyConfig>,
    /// This host's place in phased rollouts.
    #[serde(default)]
    pub rollout: RolloutConfig,
}

fn default_channel() -> String {
    "stable".into()
}

impl Config {
    /// Reads and validates a config file and decrypts its secret values
    /// (finding the master key only when one is encrypted).
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = charter_keys::fsutil::read_capped(path, MAX_CONFIG_BYTES, "a config file")?;
        let text = std::str::from_utf8(&bytes).map_err(|_| Error::Config {
            path: path.to_owned(),
            reason: "not UTF-8".into(),
        })?;
        let mut cfg = Self::parse(text, path)?;
        let key = if cfg.secrets().iter().any(|(_, v)| v.is_encrypted()) {
            MasterKey::locate().map_err(|e| Error::Config {
                path: path.to_owned(),
                reason: e.to_string(),
            })?
        } else {
            None
        };
        cfg.resolve_secrets(key.as_ref())
            .map_err(|e| Error::Config {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
        Ok(cfg)
    }

    /// The secret fields that are set, by name.
    pub fn secrets(&self) -> Vec<(&'static str, &SecretValue)> {
        let r = &self.repository;
        [
            ("repository.token", r.token.as_ref()),
            ("repository.password", r.password.as_ref()),
            (
                "notify.secret",
                self.notify.as_ref().and_then(|n| n.secret.as_ref()),
            ),
        ]
        .into_iter()
        .filter_map(|(n, v)| v.map(|v| (n, v)))
        .collect()
    }

    /// Decrypts every encrypted secret field with `key`.
    pub fn resolve_secrets(&mut self, key: Option<&MasterKey>) -> charter_keys::Result<()> {
        let r = &mut self.repository;
        for (name, v) in [
            ("repository.token", &mut r.token),
            ("repository.password", &mut r.password),
        ] {
            if let Some(v) = v {
                v.resolve(name, key)?;
            }
        }
        if let Some(v) = self.notify.as_mut().and_then(|n| n.secret.as_mut()) {
            v.resolve("notify.secret", key)?;
        }
        Ok(())
    }

    /// Secret fields written in plain text (warned about at start and in
    /// `status`).
    pub fn plain_secrets(&self) -> Vec<&'static str> {
        self.secrets()
            .into_iter()
            .filter(|(_, v)| !v.is_encrypted())
            .map(|(n, _)| n)
            .collect()
    }

    /// Parses and validates config text; `path` is for messages only.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let cfg: Config = toml::from_str(text).map_err(|e| Error::Config {
            path: path.to_owned(),
            reason: e.to_string().trim_end().to_owned(),
        })?;
        let bad = |reason: String| Error::Config {
            path: path.to_owned(),
            reason,
        };
        validate_product(&cfg.product).map_err(|e| bad(e.to_string()))?;
        validate_product(&cfg.channel)
            .map_err(|_| bad(format!("invalid channel `{}`", cfg.channel)))?;
        let url = &cfg.repository.url;
        if !(url.starts_with("https://")
            || url.starts_with("http://")
            || url.starts_with("file:///"))
        {
            return Err(bad(format!(
                "repository.url `{url}` must start with https://, http:// or file:///"
            )));
        }
        if let Some(rest) = url.split("://").nth(1)
            && rest
                .split('/')
                .next()
                .is_some_and(|auth| auth.contains('@'))
        {
            return Err(bad(
                "repository.url must not carry credentials; use repository.token or \
                 repository.username and repository.password (which may be encrypted)"
                    .into(),
            ));
        }
        let r = &cfg.repository;
        if r.token.is_some() && (r.username.is_some() || r.password.is_some()) {
            return Err(bad(
                "repository.token and repository.username/password are exclusive".into(),
            ));
        }
        if r.username.is_some() != r.password.is_some() {
            return Err(bad(
                "repository.username and repository.password go together".into(),
            ));
        }
        if cfg.paths.trust_root.is_none() && cfg.plain.is_none() {
            return Err(bad(
                "paths.trust_root is required (the vendor's root.json)".into()
            ));
        }
        for (name, p) in [
            ("paths.install_root", Some(&cfg.paths.install_root)),
            ("paths.state_dir", Some(&cfg.paths.state_dir)),
            ("paths.trust_root", cfg.paths.trust_root.as_ref()),
        ] {
            let Some(p) = p else { continue };
            if !p.is_absolute() {
                return Err(bad(format!(
                    "{name} `{}` must be an absolute path",
                    p.display()
                )));
            }
        }
        if cfg.paths.state_dir.starts_with(&cfg.paths.install_root) {
            return Err(bad(
                "paths.state_dir must not be inside paths.install_root".into()
            ));
        }
        if let Some(r) = &cfg.service.restart
            && r.is_empty()
        {
            return Err(bad("service.restart is an empty command".into()));
        }
        if cfg.update.keep_releases < 2 {
            return Err(bad(
                "update.keep_releases must be at least 2 (current and previous)".into(),
            ));
        }
        compile_globs(&cfg.update.preserve).map_err(|e| bad(e.to_string()))?;
        cfg.setuid_policy().map_err(bad)?;
        // The time zone is looked up when `auto` runs, not here: a host
        // without the zone database must still be able to roll back.
        AutoPolicy::new(
            cfg.update.automatic,
            &cfg.update.windows,
            cfg.update.min_age.as_deref(),
            None,
        )
        .map_err(bad)?;
        if let Some(n) = &cfg.notify {
            n.validate().map_err(bad)?;
        }
        if let Some(h) = &cfg.health {
            h.validate().map_err(|e| bad(format!("health: {e}")))?;
        }
        cfg.signatures.validate().map_err(bad)?;
        cfg.rollout.validate().map_err(bad)?;
        if let Some(p) = &cfg.plain {
            p.validate().map_err(bad)?;
            if cfg.signatures.require != Require::Cosign {
                return Err(bad(
                    "[plain] artifacts carry no release-key signature: set \
                     signatures.require = \"cosign\" and a [signatures.cosign] table"
                        .into(),
                ));
            }
        }
        if let Some(su) = &cfg.self_update {
            charter_release::path::ArchivePath::new(&su.binary, 4096)
                .map_err(|e| bad(format!("self_update.binary: {e}")))?;
        }
        Ok(cfg)
    }

    /// Where setuid/setgid bits may be installed (`update.allow_setuid`).
    pub fn setuid_policy(&self) -> std::result::Result<SetuidPolicy, String> {
        let paths = self
            .update
            .allow_setuid
            .iter()
            .map(|p| {
                ArchivePath::new(p, 4096).map_err(|e| {
                    format!("update.allow_setuid: `{p}` is not a path inside the release: {e}")
                })
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(SetuidPolicy::allow(paths))
    }

    /// The unattended-update policy of `[update]`.
    pub fn auto_policy(&self) -> std::result::Result<AutoPolicy, String> {
        let u = &self.update;
        AutoPolicy::new(
            u.automatic,
            &u.windows,
            u.min_age.as_deref(),
            u.timezone.as_deref(),
        )
    }

    /// The config path from `--config`, then CHARTER_CONFIG, then the default.
    pub fn locate(flag: Option<&Path>) -> PathBuf {
        flag.map(Path::to_owned)
            .or_else(|| std::env::var_os("CHARTER_CONFIG").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_PATH))
    }
}

/// A resolved secret field's plain text (an error names the field when
/// it is still encrypted).
pub(crate) fn secret(
    v: &charter_keys::confsecret::SecretValue,
    field: &str,
) -> Result<zeroize::Zeroizing<String>> {
    v.expose()
        .map(|s| zeroize::Zeroizing::new(s.to_owned()))
        .ok_or_else(|| {
            Error::Keys(charter_keys::Error::Secret {
                field: field.into(),
                reason: "it is encrypted and was not decrypted".into(),
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
product = "panel"
[repository]
url = "http://127.0.0.1:8000/"
[paths]
install_root = "/opt/panel"
state_dir = "/var/lib/charter/state"
trust_root = "/etc/charter/trust/root.json"
"#;

    #[test]
    fn minimal_config_gets_defaults() {
        let c = Config::parse(GOOD, Path::new("c.toml")).unwrap();
        assert_eq!(c.channel, "stable");
        assert_eq!(c.update.keep_releases, 3);
        assert_eq!(c.repository.retries, 5);
        assert_eq!(c.service.script_timeout_secs, 600);
        assert_eq!(c.service.restart_timeout_secs, 120);
    }

    #[test]
    fn errors_name_the_file_and_field() {
        let e = Config::parse(&GOOD.replace("http://", "ftp://"), Path::new("c.toml")).unwrap_err();
        assert!(
            e.to_string().contains("c.toml") && e.to_string().contains("repository.url"),
            "{e}"
        );
        let e = Config::parse(&format!("{GOOD}\nbogus = 1\n"), Path::new("c.toml")).unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
        let e = Config::parse(
            &GOOD.replace("\"/opt/panel\"", "\"opt\""),
            Path::new("c.toml"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("paths.install_root"), "{e}");
    }

    /// The example the package installs as /etc/charter/charter.toml
    /// parses as shipped, and with its commented plain-artifact block
    /// switched on.
    #[test]
    fn packaged_example_parses_with_and_without_the_plain_block() {
        let text =
            include_str!("../../../packaging/etc/charter.toml").replace("@PRODUCT@", "panel");
        Config::parse(&text, Path::new("charter.toml")).unwrap();
        let start = text.find("# [signatures]").unwrap();
        let plain: String = text[start..]
            .lines()
            .map(|l| l.strip_prefix("# ").unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n");
        let c =
            Config::parse(&format!("{}{plain}\n", &text[..start]), Path::new("c.toml")).unwrap();
        let p = c.plain.unwrap();
        assert_eq!(
            p.locate(&semver::Version::new(1, 0, 0)).artifact,
            "v1.0.0/panel-1.0.0.tar.gz"
        );
        assert_eq!(c.signatures.require, Require::Cosign);
    }
}
