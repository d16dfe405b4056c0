//! Crashes at every step: the process is aborted at each failpoint (and
//! killed with SIGKILL for real mid-download and mid-health-check), then the
//! next command recovers. Afterwards exactly one release is installed,
//! whole (it verifies against its manifest), with the operator's config
//! bytes unchanged and no staging left behind.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use charter_tests::host::Host;
use charter_tests::server::Fault;

const FAILPOINTS_APPLY: &[(&str, &str)] = &[
    ("apply:after-begin", "1.0.0"),
    ("apply:mid-extract", "1.0.0"),
    ("apply:after-extract", "1.0.0"),
    ("apply:after-stage-rename", "1.0.0"),
    ("apply:after-staged", "1.0.0"),
    ("apply:after-pre-swap", "1.0.0"),
    ("apply:after-swap", "1.0.0"),
    ("apply:after-swapped", "1.0.0"),
    ("apply:after-restart", "1.0.0"),
    ("apply:after-post-swap", "1.0.0"),
    ("apply:after-healthy", "2.0.0"),
    ("apply:after-commit-state", "2.0.0"),
];

const FAILPOINTS_ROLLBACK: &[&str] = &[
    "rollback:after-begin",
    "rollback:after-swap",
    "rollback:after-swapped",
    "rollback:after-restart",
    "rollback:after-state",
];

const MY_CONFIG: &[u8] = b"listen = 9999 # the operator's\n";

/// A host running 1.0.0 with an edited config, 2.0.0 published.
fn host() -> Host {
    let h = Host::with_config("[service]\nrestart = [\"/bin/true\"]\n");
    h.publish("1.0.0", true, "listen = 1\n", &[]);
    h.update(&["apply"]).ok();
    std::fs::write(h.root.join("opt/current/etc/panel.toml"), MY_CONFIG).unwrap();
    h.publish("2.0.0", true, "listen = 2\n", &[]);
    h
}

/// After recovery: one whole release, the config kept, nothing pending.
#[track_caller]
fn assert_consistent(h: &Host, expect: &str, what: &str) {
    let st = h.status();
    assert_eq!(
        st["pending"],
        serde_json::Value::Null,
        "{what}: journal left: {st}"
    );
    assert_eq!(h.current().as_deref(), Some(expect), "{what}: {st}");
    assert_eq!(st["current"], expect, "{what}");
    let v = h.update(&["verify", "--json"]).json();
    assert_eq!(v["problems"], serde_json::json!([]), "{what}: {v}");
    assert_eq!(
        h.installed("etc/panel.toml").unwrap(),
        MY_CONFIG,
        "{what}: config changed"
    );
    let staging = h.root.join("opt/.staging");
    let left: Vec<_> = std::fs::read_dir(&staging)
        .map(|r| r.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{what}: staging left: {left:?}");
    assert!(!h.root.join("opt/.current.tmp").exists(), "{what}");
}

#[test]
fn crash_at_every_apply_step_then_recover() {
    for (fp, expect) in FAILPOINTS_APPLY {
        let h = host();
        let out = h.update_env(&["apply"], &[("CHARTER_FAILPOINT", fp)]);
        assert_ne!(out.code, 0, "{fp}: the failpoint did not fire: {out:?}");
        assert!(
            out.stderr.contains(&format!("failpoint {fp}")),
            "{fp}: {out:?}"
        );
        assert_consistent(&h, expect, fp);
        // An interrupted update is not a bad release: the next run installs it.
        h.update(&["apply"]).ok();
        assert_consistent(&h, "2.0.0", &format!("{fp}, then apply"));
    }
}

#[test]
fn crash_at_every_rollback_step_then_recover() {
    for fp in FAILPOINTS_ROLLBACK {
        let h = host();
        h.update(&["apply"]).ok();
        h.publish("3.0.0", false, "listen = 3\n", &[]);
        let out = h.update_env(&["apply"], &[("CHARTER_FAILPOINT", fp)]);
        assert_ne!(out.code, 0, "{fp}: {out:?}");
        assert!(
            out.stderr.contains(&format!("failpoint {fp}")),
            "{fp}: {out:?}"
        );
        assert_consistent(&h, "2.0.0", fp);
        let st = h.status();
        assert_eq!(st["bad"][0], "3.0.0", "{fp}: {st}");
    }
}

#[test]
fn every_failpoint_is_exercised() {
    let listed: Vec<&str> = FAILPOINTS_APPLY
        .iter()
        .map(|(f, _)| *f)
        .chain(FAILPOINTS_ROLLBACK.iter().copied())
        .collect();
    assert_eq!(listed, charter_updater::failpoint::ALL);
}

fn spawn_apply(h: &Host) -> std::process::Child {
    Command::new(charter_tests::bin("charter-update"))
        .arg("apply")
        .env("CHARTER_CONFIG", &h.config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn wait_for(mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < Duration::from_secs(20), "timed out waiting");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn sigkill_mid_download() {
    let h = host();
    let size = std::fs::metadata(h.repo.join("releases/panel/2.0.0/panel-2.0.0.tar.zst"))
        .unwrap()
        .len();
    h.server.set_fault(
        &h.artifact_url_path("2.0.0"),
        Fault::StallAfter(size / 2),
        u32::MAX,
    );
    let mut child = spawn_apply(&h);
    wait_for(|| {
        h.server
            .requests()
            .iter()
            .any(|r| r.path.ends_with("2.0.0.tar.zst"))
    });
    std::thread::sleep(Duration::from_millis(200));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    h.server.clear_faults();
    assert_consistent(&h, "1.0.0", "SIGKILL mid-download");
    h.update(&["apply"]).ok();
    assert_consistent(&h, "2.0.0", "SIGKILL mid-download, then apply");
}

#[test]
fn sigkill_during_the_health_check() {
    let h = host();
    // 2.1.0's health check announces itself, then takes its time.
    let marker = h.path().join("health-running");
    let t = h.tree("2.1.0", true, "listen = 2\n");
    std::fs::write(
        t.join("bin/health"),
        format!("#!/bin/sh\ntouch {}\nsleep 30\n", marker.display()),
    )
    .unwrap();
    h.publish_tree(
        "2.1.0",
        &[
            "--config",
            "etc/*.toml",
            "--health-cmd",
            "bin/health",
            "--health-timeout",
            "60s",
        ],
    );
    let mut child = spawn_apply(&h);
    wait_for(|| marker.exists());
    // Swapped, health check running: kill -9 now.
    assert_eq!(h.current().as_deref(), Some("2.1.0"));
    child.kill().unwrap();
    child.wait().unwrap();
    // The orphaned health check is killed so it cannot touch anything.
    let _ = Command::new("pkill").args(["-f", "sleep 30"]).status();
    assert_consistent(&h, "1.0.0", "SIGKILL during the health check");
    let hist = h.update(&["history", "--json"]).ok().json();
    let last = hist.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["result"], "rolled-back", "{last}");
    assert!(
        last["reason"]
            .as_str()
            .unwrap()
            .contains("interrupted after the swap"),
        "{last}"
    );
}

/// The journal fixtures: what the previous release of charter-update left
/// in its state dir when it crashed at these failpoints (written by
/// `write_journal_fixtures` with that release's binaries). The host's own
/// path in them is `@HOST@`.
const JOURNAL_FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/journal-0.1.0");

/// (fixture, failpoint, rollback scenario, release expected after recovery)
const JOURNAL_CASES: &[(&str, &str, bool, &str)] = &[
    ("apply-after-staged", "apply:after-staged", false, "1.0.0"),
    ("apply-after-swap", "apply:after-swap", false, "1.0.0"),
    ("apply-after-restart", "apply:after-restart", false, "1.0.0"),
    ("apply-after-healthy", "apply:after-healthy", false, "2.0.0"),
    ("rollback-after-swap", "rollback:after-swap", true, "2.0.0"),
];

/// The files of the state dir a transaction writes (the others, signed
/// metadata under the test's own keys, stay the host's).
const JOURNAL_FILES: &[&str] = &["journal.json", "state.json", "history.jsonl", "backups"];

/// Brings a host to the crash of `fp` (1.0.0 to 2.0.0, or 2.0.0 to an
/// unhealthy 3.0.0 that rolls back).
fn crash_at(fp: &str, rollback: bool) -> Host {
    let h = host();
    if rollback {
        h.update(&["apply"]).ok();
        h.publish("3.0.0", false, "listen = 3\n", &[]);
    }
    let out = h.update_env(&["apply"], &[("CHARTER_FAILPOINT", fp)]);
    assert!(
        out.stderr.contains(&format!("failpoint {fp}")),
        "{fp}: {out:?}"
    );
    h
}

/// An update interrupted by the previous release of charter-update is
/// recovered by this one: the host is brought to the same crash, then its
/// journal, state, history and backups are replaced by the bytes the
/// previous release wrote there (tests/fixtures/journal-0.1.0). A change of
/// these formats that the new binary cannot read fails here.
#[test]
fn journal_written_by_the_previous_release_is_recovered() {
    for (name, fp, rollback, expect) in JOURNAL_CASES {
        let h = crash_at(fp, *rollback);
        let state = h.root.join("state");
        let host = h.root.to_str().unwrap();
        let fixture = std::path::Path::new(JOURNAL_FIXTURES).join(name);
        assert!(fixture.join("journal.json").is_file(), "{name}: no fixture");
        for f in JOURNAL_FILES {
            let _ = std::fs::remove_dir_all(state.join(f));
            let _ = std::fs::remove_file(state.join(f));
        }
        copy_tree(&fixture, &state, &|text| text.replace("@HOST@", host));
        let journal = std::fs::read_to_string(state.join("journal.json")).unwrap();
        assert!(!journal.contains("@HOST@"), "{name}");
        assert_consistent(&h, expect, name);
        let st = h.status();
        if *rollback {
            assert_eq!(st["bad"][0], "3.0.0", "{name}: {st}");
        } else {
            assert_eq!(st["bad"], serde_json::json!([]), "{name}: {st}");
        }
    }
}

/// Copies a fixture directory, passing each file's text through `edit`.
fn copy_tree(from: &std::path::Path, to: &std::path::Path, edit: &dyn Fn(&str) -> String) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dst, edit);
            std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o700)).unwrap();
        } else {
            let text = std::fs::read_to_string(e.path()).unwrap();
            std::fs::write(&dst, edit(&text)).unwrap();
            std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
    }
}

/// Writes the journal fixtures with the binaries of this build: run it
/// with the release whose journal format the next one must read
/// (`CHARTER_WRITE_JOURNAL_FIXTURES=<dir> cargo test ... -- --ignored`).
#[test]
#[ignore = "writes fixtures for journal_written_by_the_previous_release_is_recovered"]
fn write_journal_fixtures() {
    let Some(out) = std::env::var_os("CHARTER_WRITE_JOURNAL_FIXTURES") else {
        return;
    };
    let out = std::path::Path::new(&out);
    for (name, fp, rollback, _) in JOURNAL_CASES {
        let h = crash_at(fp, *rollback);
        let host = h.root.to_str().unwrap().to_owned();
        let dst = out.join(name);
        let _ = std::fs::remove_dir_all(&dst);
        std::fs::create_dir_all(&dst).unwrap();
        for f in JOURNAL_FILES {
            let src = h.root.join("state").join(f);
            if src.is_dir() {
                copy_tree(&src, &dst.join(f), &|text| text.replace(&host, "@HOST@"));
            } else if src.is_file() {
                let text = std::fs::read_to_string(&src).unwrap();
                std::fs::write(dst.join(f), text.replace(&host, "@HOST@")).unwrap();
            }
        }
    }
}
