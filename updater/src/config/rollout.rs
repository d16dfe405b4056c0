//! `[rollout]`: where this host stands in the vendor's phased rollouts
//! (docs/SPEC.md §9.6). By default its position is derived from the
//! machine id; an operator may put the host at the front (their own
//! canaries) or the back, or at a number.

use std::path::PathBuf;

use charter_release::rollout::POSITIONS;
use serde::Deserialize;

/// The `[rollout]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutConfig {
    /// `"early"` (position 0), `"late"` (9999) or a number 0 to 9999;
    /// unset: derived from the machine id and the product.
    #[serde(default)]
    pub position: Option<PositionSetting>,
    /// The machine id the position is derived from (default
    /// `/etc/machine-id`; missing or empty: a random id kept in the state
    /// directory, `rollout-id`).
    #[serde(default)]
    pub machine_id: Option<PathBuf>,
}

/// How `position` is written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum PositionSetting {
    /// A number.
    Number(i64),
    /// `early` or `late`.
    Named(String),
}

impl RolloutConfig {
    /// Checks the table.
    pub fn validate(&self) -> Result<(), String> {
        self.fixed_position().map(|_| ())?;
        if let Some(p) = &self.machine_id
            && !p.is_absolute()
        {
            return Err(format!(
                "rollout.machine_id `{}` must be an absolute path",
                p.display()
            ));
        }
        Ok(())
    }

    /// The position the operator set, if any.
    pub fn fixed_position(&self) -> Result<Option<u16>, String> {
        match &self.position {
            None => Ok(None),
            Some(PositionSetting::Named(n)) if n == "early" => Ok(Some(0)),
            Some(PositionSetting::Named(n)) if n == "late" => Ok(Some(POSITIONS - 1)),
            Some(PositionSetting::Number(n)) if (0..i64::from(POSITIONS)).contains(n) => {
                Ok(Some(*n as u16))
            }
            Some(p) => Err(format!(
                "rollout.position {} is not \"early\", \"late\" or a number 0 to {}",
                match p {
                    PositionSetting::Number(n) => n.to_string(),
                    PositionSetting::Named(s) => format!("\"{s}\""),
                },
                POSITIONS - 1
            )),
        }
    }

    /// Where the machine id is read.
    pub fn machine_id_path(&self) -> PathBuf {
        self.machine_id
            .clone()
            .unwrap_or_else(|| PathBuf::from("/etc/machine-id"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RolloutConfig, String> {
        let c: RolloutConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        c.validate()?;
        Ok(c)
    }

    #[test]
    fn positions_as_operators_write_them() {
        assert_eq!(parse("").unwrap().fixed_position(), Ok(None));
        assert_eq!(
            parse("position = \"early\"").unwrap().fixed_position(),
            Ok(Some(0))
        );
        assert_eq!(
            parse("position = \"late\"").unwrap().fixed_position(),
            Ok(Some(9999))
        );
        assert_eq!(
            parse("position = 42").unwrap().fixed_position(),
            Ok(Some(42))
        );
        for bad in ["position = 10000", "position = -1", "position = \"first\""] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains("rollout.position"), "{bad}: {e}");
        }
        assert!(
            parse("machine_id = \"etc/machine-id\"")
                .unwrap_err()
                .contains("absolute")
        );
    }
}
