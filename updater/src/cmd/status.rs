use std::process::ExitCode;

use anyhow::Result;
use charter_updater::txn::Updater;

use super::{Ctx, print_json};

#[derive(Debug, clap::Args)]
pub struct Args {}

impl Args {
    pub fn run(self, ctx: &Ctx, updater: Updater) -> Result<ExitCode> {
        let s = updater.status()?;
        if ctx.json {
            print_json(&s)?;
        } else {
            let v =
                |x: &Option<semver::Version>| x.as_ref().map_or("none".into(), ToString::to_string);
            outln!("product:  {} (channel {})", s.product, s.channel);
            outln!("current:  {}", v(&s.state.current));
            outln!("previous: {}", v(&s.state.previous));
            outln!("ratchet:  {}", v(&s.state.ratchet));
            let bad: Vec<String> = s.state.bad.iter().map(ToString::to_string).collect();
            outln!(
                "bad:      {}",
                if bad.is_empty() {
                    "none".into()
                } else {
                    bad.join(", ")
                }
            );
            if let Some(t) = s.state.last_check {
                outln!("checked:  {t}");
            }
            outln!("releases: {}", s.releases_from);
            outln!("requires: {}", s.signature_policy);
            outln!("auto:     {}", s.automatic);
            if let Some(h) = &s.state.hold {
                outln!("hold:     {}", h.describe(jiff::Timestamp::now()));
            }
            let r = &s.rollout;
            match (&r.standing, &r.version) {
                (Some(st), Some(v)) => outln!(
                    "rollout:  {} ({})",
                    charter_updater::policy::rollout::describe(st, v),
                    r.position.source
                ),
                _ => outln!(
                    "rollout:  position {} ({}); the channel signs no rollout",
                    r.position.position,
                    r.position.source
                ),
            }
            if let Some(h) = &s.recovered {
                outln!("recovered: {} {}", h.op, h.result);
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
