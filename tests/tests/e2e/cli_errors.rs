//! The error output of the three binaries for their common mistakes
//! (missing or malformed config, unknown flag, missing trust root, a held
//! state lock, a private key others can read), pinned by trycmd snapshots
//! in tests/cmd/<binary>/: one file per case holding its args, its exact
//! stderr and stdout, and its exit status. `TRYCMD=overwrite` rewrites
//! them from the binaries' real output (read every changed file before
//! committing it).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use charter_tests::bin;

fn cases() -> trycmd::TestCases {
    let t = trycmd::TestCases::new();
    // A case that stopped failing (`charter-agent run` with its trust root
    // found, say) must not hang the suite.
    t.timeout(std::time::Duration::from_secs(60));
    for name in ["charter", "charter-update", "charter-agent"] {
        t.register_bin(name, bin(name));
    }
    t
}

/// Cases that need nothing but their `.in/` directory.
#[test]
fn cli_error_snapshots() {
    // Git keeps only the executable bit, and a checkout under umask 077
    // would make this key 0600: the case is about a key others can read.
    std::fs::set_permissions(
        "tests/cmd/charter/key-readable-by-others.in/release.key",
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    cases()
        .case("tests/cmd/charter/*.toml")
        .case("tests/cmd/charter-update/*.toml")
        .case("tests/cmd/charter-agent/*.toml");
}

/// A host for the charter-update cases whose config needs absolute paths
/// (`[paths]` must be): `HOST/etc/charter.toml`, with `opt/` and `state/`
/// and no trust root at `etc/root.json`. The cases find the config through
/// CHARTER_CONFIG; `[HOST]` stands for the directory in their output.
fn host(dir: &Path) -> trycmd::TestCases {
    let r = dir.display();
    for d in ["etc", "opt", "state"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    let config = dir.join("etc/charter.toml");
    std::fs::write(
        &config,
        format!(
            "product = \"panel\"\nchannel = \"stable\"\n\n[repository]\nurl = \"http://127.0.0.1:9/\"\n\n[paths]\ninstall_root = \"{r}/opt\"\nstate_dir = \"{r}/state\"\ntrust_root = \"{r}/etc/root.json\"\n"
        ),
    )
    .unwrap();
    let t = cases();
    t.env("CHARTER_CONFIG", config.to_str().unwrap());
    t.insert_var("[HOST]", dir.to_str().unwrap().to_owned())
        .unwrap();
    t
}

#[test]
fn cli_error_snapshot_missing_trust_root() {
    let dir = tempfile::tempdir().unwrap();
    host(dir.path())
        .case("tests/cmd/charter-update-host/missing-trust-root.toml")
        .run();
}

/// The state lock held by another process (this test, with its pid in the
/// lock file as charter-update writes its own): `[PID]` in the output.
#[test]
fn cli_error_snapshot_state_locked() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let t = host(dir.path());
    let mut lock = std::fs::File::create(dir.path().join("state/lock")).unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).unwrap();
    write!(lock, "{}", std::process::id()).unwrap();
    t.insert_var("[PID]", std::process::id().to_string())
        .unwrap();
    t.case("tests/cmd/charter-update-host/state-locked.toml")
        .run();
    drop(lock);
}
