//! Feature hooks (docs/SPEC.md §10.8): the commands the config names for
//! a feature turning on or off, run one at a time on a thread of their
//! own, without a shell, in an empty environment, killed with their
//! process group on timeout.

use std::time::Duration;

use crate::procgroup::kill_group;

/// The `PATH` a hook gets: its environment is otherwise empty.
const HOOK_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Hooks waiting to run, at most; past that a change is noted and its
/// hook skipped.
const HOOK_QUEUE: usize = 64;

/// One hook to run.
pub(crate) struct HookJob {
    pub(crate) label: String,
    pub(crate) argv: Vec<String>,
    pub(crate) timeout: Duration,
}

/// Runs feature hooks on a thread of its own, one at a time in the order
/// they were queued (an `off` never overtakes the `on` before it), so a
/// slow or hanging hook never holds the agent (docs/SPEC.md §10.8). The
/// results come back as notes. The thread ends when the agent is dropped
/// and the queue is empty.
pub(crate) struct HookRunner {
    tx: Option<std::sync::mpsc::SyncSender<HookJob>>,
    notes: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl HookRunner {
    pub(crate) fn start() -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel::<HookJob>(HOOK_QUEUE);
        let notes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let out = std::sync::Arc::clone(&notes);
        let spawned = std::thread::Builder::new()
            .name("feature-hooks".into())
            .spawn(move || {
                for job in rx {
                    let result = run_hook(&job.argv, job.timeout);
                    out.lock().unwrap_or_else(|e| e.into_inner()).push(format!(
                        "{}: {}",
                        job.label,
                        result.as_deref().unwrap_or_else(|e| e.as_str())
                    ));
                }
            });
        HookRunner {
            tx: spawned.is_ok().then_some(tx),
            notes,
        }
    }

    /// The results of the hooks run since the last call.
    pub(crate) fn take_notes(&self) -> Vec<String> {
        std::mem::take(&mut *self.notes.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub(crate) fn queue(&self, job: HookJob) -> std::result::Result<(), String> {
        let Some(tx) = &self.tx else {
            return Err(format!("{}: hook not run: no thread to run it", job.label));
        };
        tx.try_send(job).map_err(|e| match e {
            std::sync::mpsc::TrySendError::Full(j) => format!(
                "{}: hook not run: {HOOK_QUEUE} hooks are already waiting",
                j.label
            ),
            std::sync::mpsc::TrySendError::Disconnected(j) => {
                format!("{}: hook not run: the hook thread is gone", j.label)
            }
        })
    }
}

/// Runs a feature hook: no shell, stdin/stdout/stderr on `/dev/null`, an
/// empty environment but for `PATH`, in a process group of its own that
/// is killed as a whole when `timeout` passes.
fn run_hook(argv: &[String], timeout: Duration) -> std::result::Result<String, String> {
    use std::os::unix::process::CommandExt;
    let Some((prog, args)) = argv.split_first() else {
        return Err("empty command".into());
    };
    let mut child = std::process::Command::new(prog)
        .args(args)
        .env_clear()
        .env("PATH", HOOK_PATH)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot run `{prog}`: {e}"))?;
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(s)) if s.success() => return Ok("ok".into()),
            Ok(Some(s)) => return Err(format!("`{prog}` failed: {s}")),
            Ok(None) if std::time::Instant::now() > deadline => {
                kill_group(child.id());
                let _ = child.wait();
                return Err(format!(
                    "`{prog}` timed out after {} s; its process group was killed",
                    timeout.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(e.to_string()),
        }
    }
}
