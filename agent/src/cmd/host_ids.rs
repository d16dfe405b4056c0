use std::process::ExitCode;

use anyhow::{Context, Result};
use charter_agent::config::Config;
use charter_agent::fingerprint::{Dmi, write_host_ids};

use super::{Ctx, print_json};

#[derive(Debug, clap::Args)]
pub struct Args {}

impl Args {
    /// The config is parsed without decrypting its secrets (root may not
    /// hold the master key the agent is given as a credential).
    pub fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let path = ctx.config_path();
        let cfg = charter_keys::fsutil::read_capped(
            &path,
            charter_agent::config::MAX_CONFIG_BYTES,
            "a config file",
        )
        .map_err(anyhow::Error::from)
        .and_then(|b| Ok(String::from_utf8(b)?))
        .and_then(|t| Ok(Config::parse(&t, &path)?))
        .with_context(|| format!("cannot load the config (from {})", path.display()))?;
        charter_agent::fingerprint::check_host_ids_target(&path, &cfg.product, &cfg.fingerprint)?;
        let dmi = write_host_ids(&cfg.product, &cfg.fingerprint)?;
        let what = match dmi {
            Dmi::Present(_) => "present",
            _ => "absent",
        };
        let out = &cfg.fingerprint.host_ids;
        if ctx.json {
            print_json(&serde_json::json!({"host_ids": out, "dmi_product_uuid": what}))?;
        } else if dmi == Dmi::Absent {
            outln!(
                "{}: this host has no DMI product UUID ({} is missing); v2 fingerprints bind its machine id alone",
                out.display(),
                cfg.fingerprint.dmi_product_uuid.display()
            );
        } else {
            outln!("{}: DMI product UUID digest written", out.display());
        }
        Ok(ExitCode::SUCCESS)
    }
}
