//! `[plain]` in charter.toml: where a plain artifact's files are
//! (docs/SPEC.md §13.5) and the host's caps on it. The format itself (the
//! checksum file, its verified type, the tarball scan) is
//! charter_release::plain's.

use semver::Version;
use serde::Deserialize;

use crate::Result;
use charter_release::Error as ReleaseError;
use charter_release::manifest::{ArtifactFormat, compile_globs};
use charter_release::path::ArchivePath;
use charter_release::plain::{Located, checksum_lines};

/// Default download cap.
pub const DEFAULT_MAX_SIZE: u64 = 1 << 30;

/// Default cap on the unpacked tar stream.
pub const DEFAULT_MAX_UNPACKED: u64 = 4 << 30;

/// `[plain]` in charter.toml: where a version's files are, relative to
/// `repository.url`, with `{version}` replaced by the version.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlainConfig {
    /// The tarball, e.g. `v{version}/panel-{version}.tar.gz`. Its file name
    /// must hold `{version}`.
    pub artifact: String,
    /// The checksum file; default: the artifact path + `.sha256`.
    #[serde(default)]
    pub checksums: Option<String>,
    /// The cosign bundle over the checksum file; default: the checksum
    /// path + `.sigstore.json`.
    #[serde(default)]
    pub bundle: Option<String>,
    /// A file holding the newest version (unsigned; see the module docs).
    /// Without it, `check` and `apply` need `--version`.
    #[serde(default)]
    pub latest: Option<String>,
    /// Download cap in bytes.
    #[serde(default = "default_max_size")]
    pub max_size: u64,
    /// Cap on the unpacked tar stream in bytes (decompression bombs).
    #[serde(default = "default_max_unpacked")]
    pub max_unpacked_size: u64,
    /// Leading path components dropped from every entry (1 for tarballs
    /// that hold one top directory such as `panel-1.4.0/`).
    #[serde(default)]
    pub strip_components: u8,
    /// Globs of config files (kept across updates like dpkg conffiles).
    #[serde(default)]
    pub config: Vec<String>,
    /// Archive format; default: from the artifact's extension.
    #[serde(default)]
    pub format: Option<ArtifactFormat>,
    /// Install pre-release versions (`2.0.0-rc.1`) and versions with build
    /// metadata. Off by default: an unsigned `latest` could otherwise move
    /// a stable host onto a release candidate, and a sibling artifact
    /// (`panel-1.4.0-arm64.tar.gz` beside `panel-1.4.0.tar.gz`) would read
    /// as a version of its own.
    #[serde(default)]
    pub allow_prerelease: bool,
}

fn default_max_size() -> u64 {
    DEFAULT_MAX_SIZE
}
fn default_max_unpacked() -> u64 {
    DEFAULT_MAX_UNPACKED
}

impl PlainConfig {
    /// Checks templates, caps and globs; the message names the field.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let sample = Version::new(1, 2, 3);
        check_template("plain.artifact", &self.artifact)?;
        let file = self.artifact.rsplit('/').next().unwrap_or("");
        if file.matches("{version}").count() > 1 {
            return Err(format!(
                "plain.artifact `{}`: the file name may hold {{version}} only once",
                self.artifact
            ));
        }
        if !file.contains("{version}") {
            return Err(format!(
                "plain.artifact `{}`: the file name must hold {{version}}, so that the signed \
                 checksum file names the version",
                self.artifact
            ));
        }
        for (name, t) in [
            ("plain.checksums", &self.checksums),
            ("plain.bundle", &self.bundle),
            ("plain.latest", &self.latest),
        ] {
            if let Some(t) = t {
                check_template(name, t)?;
            }
        }
        if self.latest.as_deref().is_some_and(|l| l.contains('{')) {
            return Err("plain.latest cannot hold {version}".into());
        }
        if self.max_size == 0 || self.max_unpacked_size == 0 {
            return Err("plain.max_size and plain.max_unpacked_size must be above 0".into());
        }
        self.format().map_err(|e| e.to_string())?;
        compile_globs(&self.config).map_err(|e| format!("plain.config: {e}"))?;
        let l = self.locate(&sample);
        if l.checksums == l.artifact || l.bundle == l.checksums || l.bundle == l.artifact {
            return Err("plain.artifact, plain.checksums and plain.bundle must differ".into());
        }
        Ok(())
    }

    /// The archive format: `format`, else the artifact's extension.
    pub fn format(&self) -> Result<ArtifactFormat> {
        if let Some(f) = self.format {
            return Ok(f);
        }
        let a = self.artifact.as_str();
        if a.ends_with(".tar.gz") || a.ends_with(".tgz") {
            Ok(ArtifactFormat::TarGz)
        } else if a.ends_with(".tar.zst") || a.ends_with(".tzst") {
            Ok(ArtifactFormat::TarZst)
        } else {
            Err(ReleaseError::InvalidInput {
                what: "plain.artifact",
                reason: format!(
                    "`{a}` does not end in .tar.gz, .tgz, .tar.zst or .tzst; set plain.format"
                ),
            }
            .into())
        }
    }

    /// The paths of version `v`.
    pub fn locate(&self, v: &Version) -> Located {
        let r = |t: &str| t.replace("{version}", &v.to_string());
        let artifact = r(&self.artifact);
        let checksums = self
            .checksums
            .as_deref()
            .map_or_else(|| format!("{artifact}.sha256"), r);
        let bundle = self.bundle.as_deref().map_or_else(
            || format!("{checksums}{}", charter_release::signatures::BUNDLE_SUFFIX),
            r,
        );
        Located {
            file_name: artifact.rsplit('/').next().unwrap_or("").to_owned(),
            artifact,
            checksums,
            bundle,
        }
    }
}

impl PlainConfig {
    /// Whether `v` may be installed at all: release versions only, unless
    /// `allow_prerelease`.
    pub fn admit_version(&self, v: &Version) -> Result<()> {
        if !self.allow_prerelease && (!v.pre.is_empty() || !v.build.is_empty()) {
            return Err(ReleaseError::PlainArtifact {
                what: format!("version {v}"),
                reason: "is a pre-release or carries build metadata; set \
                         plain.allow_prerelease = true to install such versions"
                    .into(),
            }
            .into());
        }
        Ok(())
    }

    /// The versions the names in a (signed) checksum file stand for under
    /// the artifact template's file name: `prefix<version>suffix`.
    fn listed_versions<'a>(&self, names: impl Iterator<Item = &'a str>) -> Vec<Version> {
        let file = self.artifact.rsplit('/').next().unwrap_or("");
        let Some((prefix, suffix)) = file.split_once("{version}") else {
            return Vec::new();
        };
        names
            .filter_map(|n| {
                let n = n.rsplit('/').next().unwrap_or(n);
                n.strip_prefix(prefix)?.strip_suffix(suffix)?.parse().ok()
            })
            .collect()
    }

    /// With pre-releases allowed, a checksum file in which two names read
    /// as versions of the same release (`1.4.0` and `1.4.0-arm64`) does not
    /// say which one is the release: refused.
    pub fn unambiguous(&self, v: &Version, checksums: &[u8]) -> Result<()> {
        if !self.allow_prerelease {
            // Only release versions are admitted, and rendering one into
            // the template gives exactly one name.
            return Ok(());
        }
        let lines = checksum_lines(checksums).map_err(|reason| ReleaseError::PlainArtifact {
            what: "checksum file".into(),
            reason,
        })?;
        let other = self
            .listed_versions(lines.iter().map(|(_, n)| *n))
            .into_iter()
            .find(|o| o != v && (o.major, o.minor, o.patch) == (v.major, v.minor, v.patch));
        match other {
            Some(o) => Err(ReleaseError::PlainArtifact {
                what: format!("version {v}"),
                reason: format!(
                    "is ambiguous: the signed checksum file also lists a file that reads as \
                     version {o} under plain.artifact; delimit the version in the template \
                     (e.g. panel_{{version}}_linux_amd64.tar.gz)"
                ),
            }
            .into()),
            None => Ok(()),
        }
    }
}

/// A template is a relative path of plain components with no other
/// placeholder than `{version}`.
fn check_template(name: &str, t: &str) -> std::result::Result<(), String> {
    let rendered = t.replace("{version}", "1.2.3");
    if rendered.contains(['{', '}', '?', '#', '%']) {
        return Err(format!(
            "{name} `{t}`: only {{version}} may be replaced, and no ? # % may appear"
        ));
    }
    ArchivePath::new(&rendered, 1024)
        .map(|_| ())
        .map_err(|e| format!("{name} `{t}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(artifact: &str) -> PlainConfig {
        PlainConfig {
            artifact: artifact.into(),
            checksums: None,
            bundle: None,
            latest: None,
            max_size: DEFAULT_MAX_SIZE,
            max_unpacked_size: DEFAULT_MAX_UNPACKED,
            strip_components: 0,
            config: Vec::new(),
            format: None,
            allow_prerelease: false,
        }
    }

    #[test]
    fn templates_render_and_default() {
        let c = cfg("v{version}/panel-{version}.tar.gz");
        c.validate().unwrap();
        let l = c.locate(&Version::new(1, 4, 0));
        assert_eq!(l.artifact, "v1.4.0/panel-1.4.0.tar.gz");
        assert_eq!(l.file_name, "panel-1.4.0.tar.gz");
        assert_eq!(l.checksums, "v1.4.0/panel-1.4.0.tar.gz.sha256");
        assert_eq!(l.bundle, "v1.4.0/panel-1.4.0.tar.gz.sha256.sigstore.json");
        assert_eq!(c.format().unwrap(), ArtifactFormat::TarGz);
    }

    #[test]
    fn templates_that_would_not_bind_the_version_are_refused() {
        for (t, want) in [
            ("v{version}/panel.tar.gz", "must hold {version}"),
            ("../panel-{version}.tar.gz", "`..`"),
            ("/abs/panel-{version}.tar.gz", "absolute"),
            ("panel-{version}-{arch}.tar.gz", "only {version}"),
            ("panel-{version}.zip", ".tar.gz"),
            ("panel-{version}.tar.gz?x=1", "no ? # %"),
        ] {
            let e = cfg(t).validate().unwrap_err();
            assert!(e.contains(want), "{t}: {e}");
        }
        let mut c = cfg("panel-{version}.tar.gz");
        c.checksums = Some("panel-{version}.tar.gz".into());
        assert!(c.validate().unwrap_err().contains("must differ"));
        let mut c = cfg("panel-{version}.tar.gz");
        c.latest = Some("{version}/LATEST".into());
        assert!(c.validate().unwrap_err().contains("plain.latest"));
    }
}
