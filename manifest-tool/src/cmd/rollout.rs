//! `charter rollout`: where a channel's phased rollout stands
//! (docs/SPEC.md §9.6), read from its signed pointer in the repository.

use anyhow::{Context, Result, anyhow, bail};
use charter_release::channel::ChannelPointer;
use charter_release::rollout::Rollout;
use jiff::Timestamp;
use serde_json::json;

use super::Ctx;
use super::channel::existing;
use crate::cli::RolloutCmd;
use crate::util::{parse_duration, print_json};

pub fn run(ctx: &Ctx, cmd: RolloutCmd) -> Result<()> {
    match cmd {
        RolloutCmd::Status {
            repo,
            product,
            channel,
            at,
        } => {
            let Some(p) = existing(&repo, &product, &channel)? else {
                bail!(
                    "{} has no pointer for {product}/{channel}; `charter channel publish` writes one",
                    repo.display()
                );
            };
            let now = match &at {
                None => Timestamp::now(),
                Some(text) => when(text, Timestamp::now())?,
            };
            status(ctx, &p, now)
        }
    }
}

/// `--at`: an RFC 3339 time, or a duration from now.
fn when(text: &str, now: Timestamp) -> Result<Timestamp> {
    if let Ok(t) = text.parse::<Timestamp>() {
        return Ok(t);
    }
    let d = parse_duration(text).with_context(|| {
        format!("--at `{text}` is neither a duration (1d) nor an RFC 3339 time")
    })?;
    now.checked_add(d)
        .map_err(|_| anyhow!("--at `{text}` is out of range"))
}

/// Where each wave stands at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WaveState {
    Done,
    InProgress,
    ToCome,
}

impl WaveState {
    fn name(self) -> &'static str {
        match self {
            WaveState::Done => "done",
            WaveState::InProgress => "in progress",
            WaveState::ToCome => "to come",
        }
    }
}

/// The rollout at `now`: the instant the plan is read at (the halt's, when
/// halted: a halted plan does not move), each wave's end and state, the
/// wave in progress and the share of positions eligible.
struct Standing {
    at: Timestamp,
    waves: Vec<(Timestamp, u8, WaveState)>,
    wave: usize,
    share: f64,
}

fn standing(r: &Rollout, now: Timestamp) -> Standing {
    let at = r.halted.as_ref().map_or(now, |h| h.at.min(now));
    let wave = r.wave_at(at);
    let waves = r
        .waves
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let ends = r
                .start
                .checked_add(jiff::SignedDuration::from_secs(w.after_secs as i64))
                .unwrap_or(r.start);
            let state = if ends <= at {
                WaveState::Done
            } else if i + 1 == wave {
                WaveState::InProgress
            } else {
                WaveState::ToCome
            };
            (ends, w.percent, state)
        })
        .collect();
    Standing {
        at,
        waves,
        wave,
        share: r.share_at(at),
    }
}

fn status(ctx: &Ctx, p: &ChannelPointer, now: Timestamp) -> Result<()> {
    let s = p.rollout.as_ref().map(|r| (r, standing(r, now)));
    if ctx.json {
        let rollout = s.as_ref().map(|(r, s)| {
            json!({
                "plan": r.plan,
                "start": r.start.to_string(),
                "halted": r.halted,
                "waves": s.waves.iter().map(|(ends, percent, state)| json!({
                    "percent": percent,
                    "ends": ends.to_string(),
                    "state": state.name(),
                })).collect::<Vec<_>>(),
                "wave": s.wave,
                "eligible_percent": (s.share * 100.0).round() / 100.0,
                "eligible_below_position": (s.share * 100.0).floor() as u32,
            })
        });
        return print_json(&json!({
            "product": p.product,
            "channel": p.channel,
            "version": p.version.to_string(),
            "published_at": p.published_at.to_string(),
            "expires": p.expires.to_string(),
            "at": now.to_string(),
            "previous": p.previous.as_ref().map(|x| x.version.to_string()),
            "reverted": p.reverted,
            "rollout": rollout,
        }));
    }
    outln!(
        "{}/{}: {} (published {}, expires {})",
        p.product,
        p.channel,
        p.version,
        p.published_at,
        p.expires
    );
    if let Some(prev) = &p.previous {
        outln!("previous: {}", prev.version);
    }
    if let Some(r) = &p.reverted {
        outln!(
            "reverted: from {} at {}{}; hosts that run it go back to {}",
            r.version,
            r.at,
            if r.reason.is_empty() {
                String::new()
            } else {
                format!(" ({})", r.reason)
            },
            p.version
        );
    }
    let Some((r, s)) = s else {
        outln!("rollout: none: every host is eligible at once");
        return Ok(());
    };
    outln!("rollout: plan `{}`, from {}", r.plan, r.start);
    for (i, (ends, percent, state)) in s.waves.iter().enumerate() {
        outln!(
            "  wave {}: {percent:>3}% by {ends}  {}",
            i + 1,
            state.name()
        );
    }
    match &r.halted {
        Some(h) => outln!(
            "HALTED at {}{}: {:.2}% of hosts were eligible (wave {} of {}); \
             `charter channel resume` goes on from there",
            h.at,
            if h.reason.is_empty() {
                String::new()
            } else {
                format!(" ({})", h.reason)
            },
            s.share,
            s.wave,
            r.waves.len()
        ),
        None => outln!(
            "at {}: wave {} of {}, {:.2}% of hosts eligible (positions below {})",
            s.at,
            s.wave,
            r.waves.len(),
            s.share,
            (s.share * 100.0).floor() as u32
        ),
    }
    Ok(())
}
