//! Helpers for the end-to-end tests: find the real binaries, run them in a
//! scratch directory, and snapshot a directory to prove a refused command
//! changed nothing.
#![allow(clippy::unwrap_used, missing_docs)]

pub mod hook;
pub mod host;
pub mod nginx;
pub mod server;
pub mod sigstore;
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The passphrase every test key is encrypted with.
pub const PASS: &str = "correct horse battery staple";

/// Path of a workspace binary (`charter`, `charter-update`, `charter-agent`).
/// They are built by `cargo build --workspace --bins` (README's test command
/// does it first); `CHARTER_BIN_DIR` overrides the directory.
pub fn bin(name: &str) -> PathBuf {
    let dir = match std::env::var_os("CHARTER_BIN_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            // target/<profile>/deps/<test-binary> -> target/<profile>/
            let exe = std::env::current_exe().unwrap();
            exe.parent().unwrap().parent().unwrap().to_owned()
        }
    };
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not found: run `cargo build --workspace --all-features --bins` before the tests",
        path.display()
    );
    path
}

/// A copy of an executable that another uid can run: the tests that run a
/// client as uid 65534 (root only) cannot exec the binaries in `target/`
/// when the checkout sits under a directory only its owner may enter (a
/// `mktemp -d` clone is 0700). The copy lives in a fresh 0755 directory of
/// the system temp dir and goes with this value.
#[derive(Debug)]
pub struct OtherUidExe {
    dir: tempfile::TempDir,
    path: PathBuf,
}

impl OtherUidExe {
    /// Copies `exe` (a workspace binary from [`bin`] or this test binary
    /// from `std::env::current_exe`) so that any uid can run it.
    pub fn new(exe: &Path) -> Self {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new()
            .prefix("charter-other-uid-")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.path().join(exe.file_name().unwrap());
        std::fs::copy(exe, &path)
            .unwrap_or_else(|e| panic!("copying {} for another uid: {e}", exe.display()));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        OtherUidExe { dir, path }
    }

    /// Where the copy is.
    pub fn path(&self) -> &Path {
        debug_assert!(self.path.starts_with(self.dir.path()));
        &self.path
    }
}

/// The result of running a binary.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "expected success, got {self:#?}");
        self
    }

    #[track_caller]
    pub fn fails_with(self, needle: &str) -> Self {
        assert_ne!(self.code, 0, "expected failure, got {self:#?}");
        assert!(
            self.stderr.contains(needle),
            "stderr does not contain {needle:?}: {self:#?}"
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:#?}"))
    }
}

/// Runs `name` with `args` in `cwd`, no stdin, a clean charter environment
/// and CHARTER_PASSPHRASE set to [`PASS`].
pub fn run(name: &str, cwd: &Path, args: &[&str]) -> Output {
    run_env(name, cwd, args, &[("CHARTER_PASSPHRASE", PASS)])
}

/// As [`run`], with explicit environment variables (nothing inherited that
/// starts with CHARTER_).
pub fn run_env(name: &str, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bin(name));
    cmd.args(args).current_dir(cwd).stdin(Stdio::null());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("CHARTER_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `charter`.
pub fn charter(cwd: &Path, args: &[&str]) -> Output {
    run("charter", cwd, args)
}

/// A directory's contents: path -> (size, mode, mtime ns, content hash).
pub type Snapshot = BTreeMap<PathBuf, (u64, u32, i64, u64)>;

/// Every path under `dir` with its size, mode, mtime and content digest:
/// equal snapshots mean nothing was written, removed or changed.
pub fn snapshot(dir: &Path) -> Snapshot {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let md = std::fs::symlink_metadata(e.path()).unwrap();
            let sum = if md.is_file() {
                let bytes = std::fs::read(e.path()).unwrap();
                bytes.iter().fold(0xcbf29ce484222325u64, |h, b| {
                    (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
                })
            } else {
                0
            };
            if md.is_dir() {
                stack.push(e.path());
            }
            out.insert(
                e.path().strip_prefix(dir).unwrap().to_owned(),
                (
                    md.len(),
                    md.mode(),
                    md.mtime_nsec() + md.mtime() * 1_000_000_000,
                    sum,
                ),
            );
        }
    }
    out
}

/// A scratch directory with a full set of keys and a signed root:
/// `root.key`, `rel1.key`, `rel2.key` (release, threshold 2),
/// `chan.key`, `lic.key`, each with `.pub`, and `root.json`.
pub struct Fixture {
    pub dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let f = Fixture { dir };
        for k in ["root", "rel1", "rel2", "chan", "lic"] {
            f.charter(&["key", "generate", "--out", &format!("{k}.key")])
                .ok();
        }
        f.charter(&[
            "root",
            "init",
            "--out",
            "root.json",
            "--root-key",
            "root.key.pub",
            "--release-key",
            "rel1.key.pub",
            "--release-key",
            "rel2.key.pub",
            "--release-threshold",
            "2",
            "--channel-key",
            "chan.key.pub",
            "--license-key",
            "lic.key.pub",
            "--key",
            "root.key",
        ])
        .ok();
        f
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn charter(&self, args: &[&str]) -> Output {
        charter(self.path(), args)
    }

    /// Writes a small release tree at `name/`: a program, a config, data and
    /// an inner symlink.
    pub fn tree(&self, name: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let t = self.path().join(name);
        for d in ["bin", "etc", "data"] {
            std::fs::create_dir_all(t.join(d)).unwrap();
        }
        std::fs::write(t.join("bin/panel"), b"#!/bin/sh\necho panel\n").unwrap();
        std::fs::set_permissions(t.join("bin/panel"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        std::fs::write(t.join("etc/panel.toml"), b"listen = 8080\n").unwrap();
        std::fs::write(t.join("data/blob"), vec![7u8; 70_000]).unwrap();
        std::os::unix::fs::symlink("../bin/panel", t.join("data/link")).unwrap();
        t
    }

    /// Creates and signs (with rel1 and rel2) a release of `tree` at
    /// `out/`, returning the manifest path.
    pub fn release(&self, tree: &str, version: &str, out: &str) -> PathBuf {
        self.charter(&[
            "manifest",
            "create",
            "--product",
            "panel",
            "--version",
            version,
            "--from",
            tree,
            "--out",
            out,
            "--config",
            "etc/*.toml",
            "--preserve",
            "data/**",
        ])
        .ok();
        let m = format!("{out}/manifest.json");
        self.charter(&["manifest", "sign", "--key", "rel1.key", &m])
            .ok();
        self.charter(&["manifest", "sign", "--key", "rel2.key", &m])
            .ok();
        self.path().join(m)
    }
}

impl Default for Fixture {
    fn default() -> Self {
        Self::new()
    }
}
