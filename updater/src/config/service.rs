//! `[service]`: how the product is restarted and its scripts run.

use serde::Deserialize;

/// The product's service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Command that (re)starts the product (argv, no shell), run after
    /// every swap. None: nothing is restarted.
    #[serde(default)]
    pub restart: Option<Vec<String>>,
    /// Seconds the restart command may take.
    #[serde(default = "default_restart_timeout")]
    pub restart_timeout_secs: u32,
    /// User update scripts run as (root when absent).
    #[serde(default)]
    pub scripts_user: Option<String>,
    /// Seconds an update script may take.
    #[serde(default = "default_script_timeout")]
    pub script_timeout_secs: u32,
}

impl Default for Service {
    fn default() -> Self {
        Service {
            restart: None,
            restart_timeout_secs: default_restart_timeout(),
            scripts_user: None,
            script_timeout_secs: default_script_timeout(),
        }
    }
}

fn default_restart_timeout() -> u32 {
    120
}
fn default_script_timeout() -> u32 {
    600
}
