//! Update jobs started through the API: the door command for `check`,
//! `apply`, `rollback` or `status` (the config's `[update]`, which runs
//! `charter-update`), one at a time, on a thread of its own, with its
//! output kept for `GET /v1/update` and each step in the audit log.

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::shared::{Job, Shared};

/// Starts `action`'s door command, with `extra` appended (a hold's
/// seconds, which the route parsed and formatted itself: nothing else of a
/// request ever reaches a command).
pub(super) fn trigger(
    shared: &Arc<Shared>,
    action: &str,
    extra: Option<u32>,
    uid: u32,
    pid: i32,
) -> (u16, Value) {
    let who = json!({"uid": uid, "pid": pid});
    let argv = match shared.with_agent(|a| a.door(action)) {
        Ok(mut argv) => {
            argv.extend(extra.map(|n| n.to_string()));
            argv
        }
        Err(why) => {
            shared.with_agent(|a| a.record(json!({"kind": "api", "action": action, "by": who, "result": "refused", "reason": why}))).ok();
            return (403, json!({"error": why}));
        }
    };
    let mut job = shared.job.lock().unwrap_or_else(|e| e.into_inner());
    if job.as_ref().is_some_and(|j| j.finished.is_none()) {
        return (
            409,
            json!({"error": "an update command is already running", "job": *job}),
        );
    }
    let started = shared.with_agent(|a| a.now());
    *job = Some(Job {
        action: action.to_owned(),
        requested_by: who.clone(),
        started,
        finished: None,
        exit_code: None,
        output: Value::Null,
    });
    drop(job);
    shared
        .with_agent(|a| {
            a.record(json!({"kind": "api", "action": action, "by": who, "result": "started"}))
        })
        .ok();
    let shared_ptr = Arc::clone(shared);
    let action = action.to_owned();
    std::thread::spawn(move || {
        let (code, output) = run_door(&argv, shared_ptr.door_timeout);
        let finished = shared_ptr.with_agent(|a| {
            let _ = a.record(
                json!({"kind": "api", "action": action, "result": "finished", "exit_code": code}),
            );
            a.now()
        });
        if let Some(j) = shared_ptr
            .job
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            j.finished = Some(finished);
            j.exit_code = code;
            j.output = output;
        }
    });
    (202, json!({"accepted": true, "action": "started"}))
}

fn run_door(argv: &[String], timeout: Duration) -> (Option<i32>, Value) {
    let Some((prog, args)) = argv.split_first() else {
        return (None, json!("empty command"));
    };
    use std::os::unix::process::CommandExt;
    let child = std::process::Command::new(prog)
        .args(args)
        .process_group(0)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return (None, json!(format!("cannot run `{prog}`: {e}"))),
    };
    let deadline = Instant::now() + timeout;
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.take(1 << 20).read_to_end(&mut v);
        }
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(s) = stderr.as_mut() {
            let _ = s.take(64 << 10).read_to_end(&mut v);
        }
        v
    });
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() > deadline => {
                // The whole group: sudo and the charter-update under it.
                crate::procgroup::kill_group(child.id());
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(_) => break None,
        }
    };
    let out = out_t.join().unwrap_or_default();
    let err = err_t.join().unwrap_or_default();
    let output = serde_json::from_slice::<Value>(&out).unwrap_or_else(|_| {
        let text = String::from_utf8_lossy(&err);
        let tail: Vec<&str> = text.lines().rev().take(5).collect();
        json!(tail.into_iter().rev().collect::<Vec<_>>().join("\n"))
    });
    (status.and_then(|s| s.code()), output)
}
