//! What the updater keeps and changes on the host: the layout of the
//! install root, file system helpers and the checks of directories root
//! works in, the state directory and its journal, config and license
//! backups, extraction into staging, the runner of commands, scripts and
//! health checks, and the check of an installed tree against its manifest.

pub mod backup;
pub mod extract;
pub mod fs;
pub mod layout;
pub mod run;
pub mod state;
pub mod verify;
