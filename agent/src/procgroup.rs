//! Child processes the agent starts (feature hooks, door commands) run as
//! leaders of a process group of their own, so that a timeout kills all
//! they started (sudo and the `charter-update` under it, a hook's
//! children). This module owns that kill.

/// Kills a process group (the child was started as its leader).
pub(crate) fn kill_group(pid: u32) {
    if let Some(p) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process_group(p, rustix::process::Signal::KILL);
    }
}
