//! `[rollout]`: where this host stands in the vendor's phased rollouts
//! (docs/SPEC.md §9.6). By default its position is derived from the
//! machine id; an operator may put the host at the front (their own
//! canaries) or the back, or at a number.

use std::path::PathBuf;

use charter_release::rollout::POSITIONS;
use serde::Deserialize;

/// The `[rollout]` table.
#[derive(Debug, Clone, Deserialize)]
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
    /// Where this host POSTs a signed report of each update's outcome
    /// (docs/SPEC.md §9.8); unset: no reports.
    #[serde(default)]
    pub report_url: Option<String>,
    /// The license's report key, as `charter rollout report-key` writes it
    /// (mode 0600); required with `report_url`.
    #[serde(default)]
    pub report_key: Option<PathBuf>,
    /// Seconds one report attempt may take.
    #[serde(default = "default_report_timeout")]
    pub report_timeout_secs: u32,
    /// PEM file of CA certificates to trust for `report_url` instead of
    /// the built-in roots.
    #[serde(default)]
    pub report_ca_file: Option<PathBuf>,
}

impl Default for RolloutConfig {
    fn default() -> Self {
        RolloutConfig {
            position: None,
            machine_id: None,
            report_url: None,
            report_key: None,
            report_timeout_secs: default_report_timeout(),
            report_ca_file: None,
        }
    }
}

fn default_report_timeout() -> u32 {
    10
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
        for (field, p) in [
            ("rollout.machine_id", &self.machine_id),
            ("rollout.report_key", &self.report_key),
            ("rollout.report_ca_file", &self.report_ca_file),
        ] {
            if let Some(p) = p
                && !p.is_absolute()
            {
                return Err(format!(
                    "{field} `{}` must be an absolute path",
                    p.display()
                ));
            }
        }
        match (&self.report_url, &self.report_key) {
            (Some(url), Some(_)) => {
                super::notify::post_url("rollout.report_url", url)?;
                if !(1..=300).contains(&self.report_timeout_secs) {
                    return Err(format!(
                        "rollout.report_timeout_secs {} is not 1 to 300",
                        self.report_timeout_secs
                    ));
                }
            }
            (Some(_), None) => {
                return Err(
                    "rollout.report_url needs rollout.report_key (`charter rollout report-key` writes it)"
                        .into(),
                );
            }
            (None, Some(_)) => {
                return Err("rollout.report_key is set but rollout.report_url is not".into());
            }
            (None, None) => {}
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

    #[test]
    fn reports_need_a_url_and_a_key() {
        let ok = parse(
            "report_url = \"https://r.example/panel\"\nreport_key = \"/etc/charter/report.key\"",
        )
        .unwrap();
        assert_eq!(ok.report_timeout_secs, 10);
        for (bad, needle) in [
            (
                "report_url = \"https://r.example/\"",
                "needs rollout.report_key",
            ),
            ("report_key = \"/k\"", "rollout.report_url is not"),
            (
                "report_url = \"ftp://r\"\nreport_key = \"/k\"",
                "must start with https://",
            ),
            (
                "report_url = \"https://u:p@r/\"\nreport_key = \"/k\"",
                "credentials",
            ),
            (
                "report_url = \"https://r/\"\nreport_key = \"k\"",
                "absolute",
            ),
            (
                "report_url = \"https://r/\"\nreport_key = \"/k\"\nreport_timeout_secs = 0",
                "1 to 300",
            ),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }
}
