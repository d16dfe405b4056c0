//! `[update]`: what is kept, carried over and installed by itself.

use serde::Deserialize;

use super::auto::Automatic;

/// Update behaviour.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Update {
    /// Installed releases kept on disk (current and previous always are).
    #[serde(default = "default_keep")]
    pub keep_releases: usize,
    /// Extra globs of paths carried over from the running release.
    #[serde(default)]
    pub preserve: Vec<String>,
    /// What `charter-update auto` (the timer) may install by itself.
    #[serde(default)]
    pub automatic: Automatic,
    /// When it may (`DAYS HH:MM-HH:MM`; none: any time).
    #[serde(default)]
    pub windows: Vec<String>,
    /// How long a release must have been out before `auto` installs it.
    #[serde(default)]
    pub min_age: Option<String>,
    /// The zone of `windows` (an IANA name); default: the system's.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Files of the release installed with the setuid/setgid bits their
    /// manifest signs (paths inside the release). Everywhere else those
    /// bits are stripped.
    #[serde(default)]
    pub allow_setuid: Vec<String>,
}

impl Default for Update {
    fn default() -> Self {
        Update {
            keep_releases: default_keep(),
            preserve: Vec::new(),
            automatic: Automatic::default(),
            windows: Vec::new(),
            min_age: None,
            timezone: None,
            allow_setuid: Vec::new(),
        }
    }
}

fn default_keep() -> usize {
    3
}
