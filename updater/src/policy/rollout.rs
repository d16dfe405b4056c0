//! This host in the vendor's phased rollouts (docs/SPEC.md §9.6): its
//! position, and where it stands in the rollout a channel pointer signs.

use charter_release::channel::ChannelPointer;
use charter_release::rollout::{self, Standing};
use jiff::Timestamp;
use serde::Serialize;

use crate::Result;
use crate::config::Config;
use crate::host::state::StateDir;

/// This host's position and where it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HostPosition {
    /// 0 to 9999.
    pub position: u16,
    /// `set` (`[rollout] position`), `machine-id` or `state` (the random
    /// id in the state directory, on a host without a machine id).
    pub source: &'static str,
}

/// This host's position for the configured product.
pub fn host_position(cfg: &Config, state: &StateDir) -> Result<HostPosition> {
    if let Some(position) = cfg
        .rollout
        .fixed_position()
        .map_err(|reason| crate::Error::Config {
            path: "[rollout]".into(),
            reason,
        })?
    {
        return Ok(HostPosition {
            position,
            source: "set",
        });
    }
    let (id, source) = host_id(cfg, state)?;
    Ok(HostPosition {
        position: rollout::position(&cfg.product, &id),
        source,
    })
}

/// The id a host's position and report tag are derived from: the machine
/// id (trimmed, lowercased), or the random one kept in the state
/// directory on a host without one; and which it is.
pub fn host_id(cfg: &Config, state: &StateDir) -> Result<(Vec<u8>, &'static str)> {
    let path = cfg.rollout.machine_id_path();
    let machine = charter_keys::fsutil::read_capped(&path, 4096, "a machine id")
        .ok()
        .map(|b| b.trim_ascii().to_ascii_lowercase())
        .filter(|b| !b.is_empty());
    Ok(match machine {
        Some(id) => (id, "machine-id"),
        None => (state.rollout_id()?.trim_ascii().to_vec(), "state"),
    })
}

/// Where a host at `position` stands in the pointer's rollout at `now`;
/// none when the pointer has no plan (every host at once).
pub fn standing(pointer: &ChannelPointer, position: u16, now: Timestamp) -> Option<Standing> {
    pointer.rollout.as_ref().map(|r| r.standing(position, now))
}

/// One line on a standing: "position 1234, wave 2 of 7, eligible from T"
/// (or since T, or halted).
pub fn describe(s: &Standing, version: &semver::Version) -> String {
    let at = format!("position {}, wave {} of {}", s.position, s.wave, s.waves);
    match &s.halted {
        Some(h) if h.reason.is_empty() => {
            format!("the rollout of {version} is halted (since {}); {at}", h.at)
        }
        Some(h) => format!(
            "the rollout of {version} is halted (since {}: {}); {at}",
            h.at, h.reason
        ),
        None if s.eligible => format!("{at}, eligible for {version} since {}", s.eligible_at),
        None => format!("{at}, eligible for {version} from {}", s.eligible_at),
    }
}
