use std::process::ExitCode;

use anyhow::Result;
use charter_agent::config::Config;
use charter_agent::fingerprint::{DmiRead, HostIds};

use super::{Ctx, print_json};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// v2 (`v2:` and 64 hex digits) or v1 (64 hex digits, the form
    /// before v2).
    #[arg(long, value_enum, default_value_t = FormArg::V2)]
    form: FormArg,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum FormArg {
    V1,
    V2,
}

impl Args {
    pub fn run(self, ctx: &Ctx, cfg: Config) -> Result<ExitCode> {
        let ids = HostIds::read(&cfg.product, &cfg.fingerprint, DmiRead::for_this_process())?;
        let (name, fp) = match self.form {
            FormArg::V1 => ("v1", ids.v1()),
            FormArg::V2 => (
                "v2",
                ids.v2().map_err(|why| {
                    anyhow::anyhow!(
                        "this host's v2 fingerprint is unknown: {why}; \
                     `charter-agent fingerprint --form v1` prints the v1 form"
                    )
                })?,
            ),
        };
        if ctx.json {
            print_json(
                &serde_json::json!({"product": cfg.product, "form": name, "fingerprint": fp}),
            )?;
        } else {
            outln!("{fp}");
        }
        Ok(ExitCode::SUCCESS)
    }
}
