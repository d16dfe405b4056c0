//! Helpers shared by the subcommands: passphrases, key loading, times,
//! output.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use charter_keys::secret::{Passphrase, SecretKey};
use charter_keys::{Limits, PublicKey};
use jiff::{SignedDuration, Timestamp};
use zeroize::Zeroizing;

/// Where passphrases come from: --passphrase-file, then CHARTER_PASSPHRASE,
/// then a prompt when there is a terminal.
#[derive(Debug, Clone)]
pub struct PassphraseSource {
    pub file: Option<PathBuf>,
}

impl PassphraseSource {
    /// The passphrase to unlock `key`.
    pub fn unlock(&self, key: &Path) -> charter_keys::Result<Passphrase> {
        if let Some(p) = self.given()? {
            return Ok(p);
        }
        if std::io::stdin().is_terminal() || std::io::stderr().is_terminal() {
            let p = rpassword::prompt_password(format!("Passphrase for {}: ", key.display()))
                .map_err(|_| charter_keys::Error::PassphraseRequired {
                    path: key.to_owned(),
                })?;
            return Ok(Zeroizing::new(Zeroizing::new(p).as_bytes().to_vec()));
        }
        Err(charter_keys::Error::PassphraseRequired {
            path: key.to_owned(),
        })
    }

    /// A passphrase for a new key (asked twice on a terminal).
    pub fn new_passphrase(&self, key: &Path) -> Result<Passphrase> {
        if let Some(p) = self.given()? {
            return Ok(p);
        }
        if !(std::io::stdin().is_terminal() || std::io::stderr().is_terminal()) {
            bail!(
                "a passphrase is needed to encrypt {}: set CHARTER_PASSPHRASE, pass --passphrase-file, run on a terminal, or pass --unencrypted",
                key.display()
            );
        }
        let a = Zeroizing::new(rpassword::prompt_password(format!(
            "New passphrase for {}: ",
            key.display()
        ))?);
        let b = Zeroizing::new(rpassword::prompt_password("Repeat the passphrase: ")?);
        if a != b {
            bail!("the passphrases do not match");
        }
        Ok(Zeroizing::new(a.as_bytes().to_vec()))
    }

    fn given(&self) -> charter_keys::Result<Option<Passphrase>> {
        if let Some(file) = &self.file {
            let bytes = Zeroizing::new(charter_keys::fsutil::read_private(
                file,
                4096,
                "a passphrase file",
            )?);
            let line = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            return Ok(Some(Zeroizing::new(line.to_vec())));
        }
        if let Some(v) = std::env::var_os("CHARTER_PASSPHRASE") {
            use std::os::unix::ffi::OsStrExt;
            return Ok(Some(Zeroizing::new(v.as_bytes().to_vec())));
        }
        Ok(None)
    }
}

/// Loads a private key, warning on stderr when it was not encrypted.
pub fn load_secret(path: &Path, pass: &PassphraseSource) -> Result<SecretKey> {
    let loaded = SecretKey::read_file(path, &Limits::default(), || pass.unlock(path))?;
    if !loaded.was_encrypted {
        eprintln!(
            "charter: warning: {} is not encrypted at rest; anyone who reads it can sign (re-encrypt with `openssl pkcs8 -topk8 -v2 aes-256-cbc -scrypt`)",
            path.display()
        );
    }
    Ok(loaded.key)
}

/// Loads a public key from a public key PEM, or from a private key file
/// (taking its public half).
pub fn load_public(path: &Path, pass: &PassphraseSource) -> Result<PublicKey> {
    let bytes = charter_keys::fsutil::read_capped(path, 64 << 10, "a key file")?;
    let text = String::from_utf8_lossy(&bytes);
    if text.contains("-----BEGIN PUBLIC KEY-----") {
        return PublicKey::from_pem(&text)
            .with_context(|| format!("cannot read public key {}", path.display()));
    }
    Ok(load_secret(path, pass)?.public().clone())
}

/// Parses a duration like `90d`, `12h`, `2w`, `30m`, `45s`.
pub fn parse_duration(text: &str) -> Result<SignedDuration> {
    charter_release::duration::parse_duration(text).map_err(|e| anyhow!(e))
}

/// Parses an expiry: a duration after `base`, or an RFC 3339 time.
pub fn parse_expiry(text: &str, base: Timestamp) -> Result<Timestamp> {
    let t = match text.parse::<Timestamp>() {
        Ok(t) => t,
        Err(_) => {
            let d = parse_duration(text).with_context(|| {
                format!("expiry `{text}` is neither a duration (365d) nor an RFC 3339 time")
            })?;
            base.checked_add(d)
                .map_err(|_| anyhow!("expiry `{text}` is out of range"))?
        }
    };
    // Whole seconds keep the documents short and comparable.
    Ok(Timestamp::from_second(t.as_second())?)
}

/// Seconds of a duration, for the manifest's health check fields.
pub fn duration_secs(text: &str) -> Result<u32> {
    let d = parse_duration(text)?;
    u32::try_from(d.as_secs()).map_err(|_| anyhow!("duration `{text}` is out of range"))
}

/// Prints a JSON value on stdout.
pub fn print_json(v: &serde_json::Value) -> Result<()> {
    use std::io::Write;
    // Serialize first, then write: a closed pipe then surfaces as an
    // io::Error, which main treats as success.
    let mut text = serde_json::to_vec_pretty(v)?;
    text.push(b'\n');
    std::io::stdout().lock().write_all(&text)?;
    Ok(())
}

/// A progress bar on stderr when it is a terminal; hidden otherwise.
pub fn progress_bar(total: u64, what: &str) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

/// Writes `bytes` to a file atomically, keeping mode 0644.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    charter_keys::fsutil::write_atomic(path, bytes, 0o644)?;
    Ok(())
}

/// Creates a new file (never replacing one) with mode 0644, atomically.
pub fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    if path.exists() {
        bail!(
            "{} already exists; remove it or choose another path",
            path.display()
        );
    }
    let dir = charter_keys::fsutil::parent_dir(path);
    let mut tmp = tempfile::Builder::new()
        .prefix(".charter-tmp-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    use std::io::Write;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    use std::os::unix::fs::PermissionsExt;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    tmp.persist_noclobber(path)
        .map_err(|e| anyhow!("cannot create {}: {}", path.display(), e.error))?;
    charter_keys::fsutil::sync_parent(path)?;
    Ok(())
}
