//! Plain artifacts (docs/SPEC.md §13.5): a vendor that publishes what many
//! projects publish, a tarball made by GNU tar, a goreleaser-style
//! `checksums.txt` and a cosign bundle over it, and no charter manifest.
//! The host has no charter trust root at all; the bundles come from a
//! private Sigstore deployment whose trusted root the config names.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use charter_tests::host::Host;
use charter_tests::sigstore::TestSigstore;
use sha2::Digest;

const GH: &str = "https://token.actions.githubusercontent.com";

fn workflow(version: &str) -> String {
    format!("https://github.com/acme/panel/.github/workflows/release.yml@refs/tags/v{version}")
}

struct Plain {
    h: Host,
    sg: TestSigstore,
}

impl Plain {
    /// A host with `[plain]` (`extra` goes inside that table), no
    /// `paths.trust_root`, a command health check and a restart command.
    fn new(extra: &str) -> Self {
        let h = Host::new();
        let sg = TestSigstore::new();
        let tr = h.root.join("etc/trusted_root.json");
        std::fs::write(&tr, sg.trusted_root()).unwrap();
        let r = h.root.display();
        std::fs::write(
            &h.config,
            format!(
                r#"product = "panel"

[repository]
url = "{url}"
timeout_secs = 2
retries = 1

[paths]
install_root = "{r}/opt"
state_dir = "{r}/state"

[service]
restart = ["/bin/true"]

[health]
timeout_secs = 5
retries = 0
interval_secs = 1
[health.command]
argv = ["bin/health"]

[signatures]
require = "cosign"
[signatures.cosign]
certificate_identity_regexp = 'https://github\.com/acme/panel/\.github/workflows/release\.yml@refs/tags/v.*'
certificate_oidc_issuer = "{GH}"
trusted_root = "{tr}"

[plain]
artifact = "v{{version}}/panel-{{version}}.tar.gz"
checksums = "v{{version}}/checksums.txt"
latest = "LATEST"
strip_components = 1
config = ["etc/*.toml"]
{extra}
"#,
                url = h.server.url(),
                tr = tr.display(),
            ),
        )
        .unwrap();
        Plain { h, sg }
    }

    fn dir(&self, version: &str) -> PathBuf {
        let d = self.h.repo.join(format!("v{version}"));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// A tree `panel-<v>/` as a vendor's build leaves it.
    fn tree(&self, version: &str, healthy: bool, config: &str) -> PathBuf {
        let top = self.h.path().join("build").join(version);
        let t = top.join(format!("panel-{version}"));
        for d in ["bin", "etc", "share/doc"] {
            std::fs::create_dir_all(t.join(d)).unwrap();
        }
        let exe = |p: PathBuf, body: &str| {
            std::fs::write(&p, body).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        exe(
            t.join("bin/panel"),
            &format!("#!/bin/sh\necho panel {version}\n"),
        );
        exe(
            t.join("bin/health"),
            "#!/bin/sh\ngrep -q yes \"$(dirname \"$0\")/../etc/healthy\"\n",
        );
        std::fs::write(t.join("etc/panel.toml"), config).unwrap();
        std::fs::write(
            t.join("etc/healthy"),
            if healthy { "yes\n" } else { "no\n" },
        )
        .unwrap();
        std::fs::write(
            t.join("share/doc/README"),
            format!("panel {version}\n").repeat(5000),
        )
        .unwrap();
        std::os::unix::fs::symlink("../bin/panel", t.join("share/panel")).unwrap();
        top
    }

    /// Packs `members` of the build directory with GNU tar into the
    /// repository as the version's tarball.
    fn pack(&self, version: &str, build: &Path, members: &[&str], extra: &[&str]) {
        let out = self.dir(version).join(format!("panel-{version}.tar.gz"));
        let st = Command::new("tar")
            .arg("-czf")
            .arg(&out)
            .args(["--owner=0", "--group=0", "--numeric-owner"])
            .args(extra)
            .arg("-C")
            .arg(build)
            .args(members)
            .status()
            .unwrap();
        assert!(st.success(), "tar failed");
    }

    /// Writes checksums.txt (the tarball and a sibling artifact) and signs
    /// it as the release workflow of `version`.
    fn sign(&self, version: &str) {
        let d = self.dir(version);
        let name = format!("panel-{version}.tar.gz");
        let digest = hex::encode(sha2::Sha256::digest(std::fs::read(d.join(&name)).unwrap()));
        let text = format!(
            "{}  panel-{version}-arm64.tar.gz\n{digest}  {name}\n",
            hex::encode([7u8; 32])
        );
        self.write_signed(version, text.as_bytes(), &workflow(version));
    }

    fn write_signed(&self, version: &str, checksums: &[u8], identity: &str) {
        let d = self.dir(version);
        std::fs::write(d.join("checksums.txt"), checksums).unwrap();
        let s = self.sg.sign(checksums, identity, GH);
        std::fs::write(d.join("checksums.txt.sigstore.json"), s.bundle).unwrap();
    }

    /// The usual release: the whole `panel-<v>/` directory, signed, and
    /// named by LATEST.
    fn publish(&self, version: &str, healthy: bool, config: &str) {
        let b = self.tree(version, healthy, config);
        self.pack(version, &b, &[&format!("panel-{version}")], &[]);
        self.sign(version);
        self.latest(version);
    }

    fn latest(&self, version: &str) {
        std::fs::write(self.h.repo.join("LATEST"), format!("v{version}\n")).unwrap();
    }

    #[track_caller]
    fn refused(&self, args: &[&str], needle: &str) {
        let before = self.h.snapshot();
        let cur = self.h.current();
        self.h.update(args).fails_with(needle);
        let after = self.h.snapshot();
        assert_eq!(
            before.0, after.0,
            "a refused apply changed the installed tree"
        );
        if !before.1.is_null() {
            assert_eq!(before.1, after.1, "a refused apply changed the host state");
        }
        assert_eq!(self.h.current(), cur);
    }
}

#[test]
fn plain_releases_install_update_keep_config_and_roll_back() {
    let p = Plain::new("");
    let h = &p.h;
    p.publish("1.0.0", true, "listen = 1\n");

    // `check` reads LATEST, verifies the bundle over checksums.txt and
    // finds the tarball's line; nothing is downloaded yet.
    let c = h.update(&["check", "--json"]).ok().json();
    assert_eq!(c["candidate"], "1.0.0", "{c}");
    assert_eq!(c["update_available"], true, "{c}");
    assert_eq!(c["cosign"]["identity"], workflow("1.0.0"), "{c}");
    assert_eq!(c["root_version"], serde_json::Value::Null, "{c}");
    assert_eq!(c["release_keys"], serde_json::json!([]), "{c}");

    h.update(&["apply"]).ok();
    assert_eq!(h.current().as_deref(), Some("1.0.0"));
    assert_eq!(
        h.installed("bin/panel").unwrap(),
        b"#!/bin/sh\necho panel 1.0.0\n"
    );
    let mode = std::fs::metadata(h.root.join("opt/current/bin/panel"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o755);
    assert_eq!(
        std::fs::read_link(h.root.join("opt/current/share/panel")).unwrap(),
        Path::new("../bin/panel")
    );
    // The record keeps the signed inputs; `verify` checks them and the tree.
    let rec: serde_json::Value = serde_json::from_slice(
        &std::fs::read(h.root.join("state/manifests/1.0.0.plain.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(rec["located"]["artifact"], "v1.0.0/panel-1.0.0.tar.gz");
    assert_eq!(rec["manifest"]["config"], serde_json::json!(["etc/*.toml"]));
    let v = h.update(&["verify", "--json"]).ok().json();
    assert_eq!(v["problems"], serde_json::json!([]), "{v}");
    let st = h.status();
    assert!(
        st["releases_from"]
            .as_str()
            .unwrap()
            .contains("plain artifacts"),
        "{st}"
    );
    let text = h.update(&["status"]).ok().stdout;
    assert!(text.contains("releases: plain artifacts"), "{text}");
    assert!(!h.root.join("opt/.staging/1.0.0.download").exists());

    // The operator edits the config; 1.1.0 is a tarball of files only
    // (no directory entries: they are implied) and keeps the edit.
    std::fs::write(h.root.join("opt/current/etc/panel.toml"), "listen = 9999\n").unwrap();
    let b = p.tree("1.1.0", true, "listen = 2\n");
    p.pack(
        "1.1.0",
        &b,
        &[
            "panel-1.1.0/bin/panel",
            "panel-1.1.0/bin/health",
            "panel-1.1.0/etc/panel.toml",
            "panel-1.1.0/etc/healthy",
            "panel-1.1.0/share/doc/README",
            "panel-1.1.0/share/panel",
        ],
        &["--no-recursion"],
    );
    let listing = Command::new("tar")
        .arg("-tzf")
        .arg(p.dir("1.1.0").join("panel-1.1.0.tar.gz"))
        .output()
        .unwrap();
    let listing = String::from_utf8(listing.stdout).unwrap();
    assert_eq!(listing.lines().count(), 6, "{listing}");
    assert!(!listing.lines().any(|l| l.ends_with('/')), "{listing}");
    p.sign("1.1.0");
    p.latest("1.1.0");
    h.update(&["apply"]).ok();
    assert_eq!(h.current().as_deref(), Some("1.1.0"));
    assert_eq!(
        h.installed("bin/panel").unwrap(),
        b"#!/bin/sh\necho panel 1.1.0\n"
    );
    assert_eq!(h.installed("etc/panel.toml").unwrap(), b"listen = 9999\n");
    let v = h.update(&["verify", "--json"]).ok().json();
    assert_eq!(v["problems"], serde_json::json!([]), "{v}");

    // `verify` notices a changed file.
    let data = h.root.join("opt/current/share/doc/README");
    std::fs::write(&data, "changed\n").unwrap();
    let v = h.update(&["verify", "--json"]).json();
    assert!(
        v["problems"].to_string().contains("share/doc/README"),
        "{v}"
    );
    std::fs::write(&data, "panel 1.1.0\n".repeat(5000)).unwrap();

    // An unhealthy 1.2.0 is rolled back by itself.
    p.publish("1.2.0", false, "listen = 3\n");
    let out = h.update(&["apply"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("rolled back to 1.1.0"), "{out:?}");
    assert_eq!(h.current().as_deref(), Some("1.1.0"));
    assert_eq!(h.installed("etc/panel.toml").unwrap(), b"listen = 9999\n");

    // LATEST naming an older, validly signed release: the ratchet refuses.
    p.latest("1.0.0");
    p.refused(&["apply"], "rollback attack");
    // `--version` without LATEST works the same way.
    p.refused(&["apply", "--version", "1.0.0"], "already ran 1.1.0");
}

#[test]
fn plain_release_refusals_change_nothing() {
    let p = Plain::new("");
    let h = &p.h;
    p.publish("1.0.0", true, "listen = 1\n");
    h.update(&["apply"]).ok();
    let b = p.tree("2.0.0", true, "listen = 2\n");
    p.pack("2.0.0", &b, &["panel-2.0.0"], &[]);
    p.latest("2.0.0");
    let d = p.dir("2.0.0");
    let tarball = std::fs::read(d.join("panel-2.0.0.tar.gz")).unwrap();
    let sum = hex::encode(sha2::Sha256::digest(&tarball));

    // No checksum file, then no bundle.
    p.refused(&["apply"], "v2.0.0/checksums.txt");
    std::fs::write(
        d.join("checksums.txt"),
        format!("{sum}  panel-2.0.0.tar.gz\n"),
    )
    .unwrap();
    p.refused(&["apply"], "has none at");
    // Signed by another repository's workflow; by a branch; over other
    // bytes; by another Sigstore deployment.
    for id in [
        "https://github.com/evil/panel/.github/workflows/release.yml@refs/tags/v2.0.0",
        "https://github.com/acme/panel/.github/workflows/release.yml@refs/heads/main",
    ] {
        p.write_signed(
            "2.0.0",
            format!("{sum}  panel-2.0.0.tar.gz\n").as_bytes(),
            id,
        );
        p.refused(&["apply"], "does not match");
    }
    p.write_signed(
        "2.0.0",
        format!("{sum}  panel-2.0.0.tar.gz\n").as_bytes(),
        &workflow("2.0.0"),
    );
    std::fs::write(
        d.join("checksums.txt"),
        format!("{sum}  panel-2.0.0.tar.gz\n\n"),
    )
    .unwrap();
    p.refused(&["apply"], "cosign bundle");
    let other = TestSigstore::new().sign(b"x", &workflow("2.0.0"), GH);
    std::fs::write(d.join("checksums.txt.sigstore.json"), other.bundle).unwrap();
    p.refused(&["apply"], "cosign bundle");

    // Signed, but no line names panel-2.0.0.tar.gz: 1.0.0's signed files
    // served as 2.0.0 (nothing signed says this tarball is 2.0.0).
    for f in [
        "panel-1.0.0.tar.gz",
        "checksums.txt",
        "checksums.txt.sigstore.json",
    ] {
        std::fs::copy(p.dir("1.0.0").join(f), d.join(f)).unwrap();
    }
    std::fs::copy(
        p.dir("1.0.0").join("panel-1.0.0.tar.gz"),
        d.join("panel-2.0.0.tar.gz"),
    )
    .unwrap();
    p.refused(&["apply"], "has no line for panel-2.0.0.tar.gz");
    std::fs::write(d.join("panel-2.0.0.tar.gz"), &tarball).unwrap();
    // A nameless sidecar binds no version.
    p.write_signed("2.0.0", format!("{sum}\n").as_bytes(), &workflow("2.0.0"));
    p.refused(&["apply"], "names no file");

    // The tarball changed after signing (one byte).
    p.sign("2.0.0");
    let mut bad = tarball.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 1;
    std::fs::write(d.join("panel-2.0.0.tar.gz"), &bad).unwrap();
    p.refused(&["apply"], "signed checksum in v2.0.0/checksums.txt");
    std::fs::write(d.join("panel-2.0.0.tar.gz"), &tarball).unwrap();

    // LATEST that is not a version.
    std::fs::write(h.repo.join("LATEST"), "newest\n").unwrap();
    p.refused(&["apply"], "is not a version");
    p.latest("2.0.0");

    // Everything right: installed.
    h.update(&["apply"]).ok();
    assert_eq!(h.current().as_deref(), Some("2.0.0"));
}

/// Tarballs that would be refused even as signed charter releases, and
/// what plain releases refuse on top (setuid bits, size).
/// What a case does to the release tree before it is packed.
type Change = dyn Fn(&Path);

#[test]
fn plain_tarballs_with_unsafe_entries_are_refused() {
    let p = Plain::new("max_size = 200000");
    let h = &p.h;
    p.publish("1.0.0", true, "listen = 1\n");
    h.update(&["apply"]).ok();
    let cases: &[(&str, &Change, &str)] = &[
        (
            "setuid",
            &|t: &Path| {
                std::fs::set_permissions(
                    t.join("bin/panel"),
                    std::fs::Permissions::from_mode(0o4755),
                )
                .unwrap();
            },
            "setuid",
        ),
        (
            "hard link",
            &|t: &Path| {
                std::fs::hard_link(t.join("bin/panel"), t.join("bin/again")).unwrap();
            },
            "hard link",
        ),
        (
            "symlink out of the tree",
            &|t: &Path| {
                std::os::unix::fs::symlink("../../../etc/passwd", t.join("share/passwd")).unwrap();
            },
            "passwd",
        ),
        (
            "fifo",
            &|t: &Path| {
                let st = Command::new("mkfifo")
                    .arg(t.join("share/pipe"))
                    .status()
                    .unwrap();
                assert!(st.success());
            },
            "FIFO",
        ),
        (
            "too large",
            &|t: &Path| {
                // Incompressible bytes past max_size.
                let mut x = 0x9E37_79B9_7F4A_7C15u64;
                let noise: Vec<u8> = (0..300_000)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect();
                std::fs::write(t.join("share/noise"), noise).unwrap();
            },
            "more than the 200000 bytes allowed",
        ),
    ];
    for (i, (what, change, needle)) in cases.iter().enumerate() {
        let v = format!("2.0.{i}");
        let b = p.tree(&v, true, "listen = 2\n");
        change(&b.join(format!("panel-{v}")));
        p.pack(&v, &b, &[&format!("panel-{v}")], &[]);
        p.sign(&v);
        p.latest(&v);
        let before = h.snapshot();
        let out = h.update(&["apply"]);
        assert_ne!(out.code, 0, "{what}: {out:?}");
        assert!(out.stderr.contains(needle), "{what}: {out:?}");
        assert_eq!(before.0, h.snapshot().0, "{what}: the tree changed");
        assert_eq!(h.current().as_deref(), Some("1.0.0"), "{what}");
    }
    // A `..` member (GNU tar keeps it with --absolute-names).
    let v = "2.1.0";
    let b = p.tree(v, true, "listen = 2\n");
    std::fs::write(b.join("evil"), "x").unwrap();
    let sub = b.join(format!("panel-{v}"));
    p.pack(v, &sub, &["bin", "../evil"], &["--absolute-names"]);
    p.sign(v);
    p.latest(v);
    p.refused(&["apply"], "`..` component");
    // Nothing was left in the staging area by any of them.
    let left: Vec<_> = std::fs::read_dir(h.root.join("opt/.staging"))
        .map(|r| r.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "staging left: {left:?}");
}

#[test]
fn plain_hosts_without_latest_need_a_version_and_survive_crashes() {
    let p = Plain::new("");
    let h = &p.h;
    // Without `latest`, `apply` says to pass --version.
    let cfg = std::fs::read_to_string(&h.config).unwrap();
    std::fs::write(&h.config, cfg.replace("latest = \"LATEST\"\n", "")).unwrap();
    p.publish("1.0.0", true, "listen = 1\n");
    p.refused(&["apply"], "pass --version");
    let t = h.update(&["config", "test"]).ok().stdout;
    assert!(t.contains("no `latest` file"), "{t}");
    h.update(&["apply", "--version", "1.0.0"]).ok();
    std::fs::write(h.root.join("opt/current/etc/panel.toml"), "mine\n").unwrap();
    p.publish("2.0.0", true, "listen = 2\n");
    // Crashes mid-extraction and after the swap: recovery leaves one whole
    // release, the config kept, no download or staging behind.
    for (fp, expect) in [
        ("apply:mid-extract", "1.0.0"),
        ("apply:after-swap", "1.0.0"),
    ] {
        let out = h.update_env(
            &["apply", "--version", "2.0.0"],
            &[("CHARTER_FAILPOINT", fp)],
        );
        assert!(
            out.stderr.contains(&format!("failpoint {fp}")),
            "{fp}: {out:?}"
        );
        let st = h.status();
        assert_eq!(st["pending"], serde_json::Value::Null, "{fp}: {st}");
        assert_eq!(h.current().as_deref(), Some(expect), "{fp}");
        let v = h.update(&["verify", "--json"]).json();
        assert_eq!(v["problems"], serde_json::json!([]), "{fp}: {v}");
        assert_eq!(h.installed("etc/panel.toml").unwrap(), b"mine\n", "{fp}");
        let left: Vec<_> = std::fs::read_dir(h.root.join("opt/.staging"))
            .map(|r| r.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{fp}: staging left: {left:?}");
    }
    h.update(&["apply", "--version", "2.0.0"]).ok();
    assert_eq!(h.current().as_deref(), Some("2.0.0"));
    assert_eq!(h.installed("etc/panel.toml").unwrap(), b"mine\n");
    // A manual rollback to the previous plain release and its record.
    h.update(&["rollback"]).ok();
    assert_eq!(h.current().as_deref(), Some("1.0.0"));
    let v = h.update(&["verify", "--json"]).ok().json();
    assert_eq!(v["problems"], serde_json::json!([]), "{v}");
}

#[test]
fn plain_config_mistakes_are_named() {
    let p = Plain::new("");
    let h = &p.h;
    let cfg = std::fs::read_to_string(&h.config).unwrap();
    for (from, to, needle) in [
        (
            "require = \"cosign\"",
            "require = \"all\"",
            "signatures.require = \"cosign\"",
        ),
        (
            "artifact = \"v{version}/panel-{version}.tar.gz\"",
            "artifact = \"v{version}/panel.tar.gz\"",
            "must hold {version}",
        ),
        (
            "strip_components = 1",
            "strip_components = 1\nbogus = 2",
            "bogus",
        ),
    ] {
        assert!(cfg.contains(from), "{from}");
        std::fs::write(&h.config, cfg.replace(from, to)).unwrap();
        h.update(&["status"]).fails_with(needle);
    }
    // Without [plain], the trust root is required again.
    let i = cfg.find("[plain]").unwrap();
    std::fs::write(&h.config, &cfg[..i]).unwrap();
    h.update(&["status"])
        .fails_with("paths.trust_root is required");
}

#[test]
fn plain_downloads_restart_after_drops_and_stop_endless_data() {
    use charter_tests::server::Fault;
    let p = Plain::new("max_size = 1000000");
    let h = &p.h;
    p.publish("1.0.0", true, "listen = 1\n");
    let path = "/v1.0.0/panel-1.0.0.tar.gz";
    // An endless body with no Content-Length stops one byte past the cap.
    h.server.set_fault(path, Fault::Endless, 10);
    p.refused(&["apply"], "more than the 1000000 bytes allowed");
    // A server error is retried (retries = 1), then reported.
    h.server.set_fault(path, Fault::Status(503), 10);
    p.refused(&["apply"], "503");
    // A connection dropped half-way: the download starts over.
    let size = std::fs::metadata(p.dir("1.0.0").join("panel-1.0.0.tar.gz"))
        .unwrap()
        .len();
    let half = size / 2;
    assert!(half > 100, "a tarball of {size} bytes is too small to cut");
    let before = h.server.requests().len();
    h.server.set_fault(path, Fault::DropAfter(half), 1);
    h.update(&["apply"]).ok();
    assert_eq!(h.current().as_deref(), Some("1.0.0"));
    // The retry resumed where the dropped connection stopped.
    let gets: Vec<_> = h.server.requests()[before..]
        .iter()
        .filter(|r| r.path == path && r.method == "GET")
        .cloned()
        .collect();
    assert_eq!(gets.len(), 2, "{gets:#?}");
    let last = &gets[1];
    let range = last
        .headers
        .iter()
        .find(|(n, _)| n == "range")
        .map(|(_, v)| v.as_str());
    assert_eq!(range, Some(format!("bytes={half}-").as_str()), "{gets:#?}");
    assert_eq!(last.status, 206, "{gets:#?}");

    // A server that ignores Range: the download starts over and still
    // installs the right bytes.
    p.publish("1.1.0", true, "listen = 2\n");
    let path = "/v1.1.0/panel-1.1.0.tar.gz";
    let before = h.server.requests().len();
    h.server
        .set_fault_sequence(path, vec![Fault::DropAfter(half), Fault::IgnoreRange]);
    h.update(&["apply"]).ok();
    let gets: Vec<_> = h.server.requests()[before..]
        .iter()
        .filter(|r| r.path == path && r.method == "GET")
        .cloned()
        .collect();
    assert_eq!(gets.len(), 2, "{gets:#?}");
    assert_eq!(gets[1].status, 200, "{gets:#?}");
    assert_eq!(h.current().as_deref(), Some("1.1.0"));
}

#[test]
fn plain_prereleases_are_opt_in_and_sibling_names_are_not_versions() {
    let p = Plain::new("");
    let h = &p.h;
    p.publish("1.0.0", true, "listen = 1\n");
    h.update(&["apply"]).ok();
    // A signed release candidate: a stable host does not take it, whether
    // `latest` names it or --version does.
    p.publish("2.0.0-rc.1", true, "listen = 2\n");
    p.refused(&["apply"], "plain.allow_prerelease");
    p.refused(&["apply", "--version", "2.0.0-rc.1"], "pre-release");

    // 1.1.0 ships an arm64 tarball beside the amd64 one, both in the signed
    // checksums.txt. A mirror copies 1.1.0's signed files to v1.1.0-arm64/
    // and names 1.1.0-arm64 in LATEST: the arm64 line would read as that
    // version's tarball.
    let b = p.tree("1.1.0", true, "listen = 3\n");
    p.pack("1.1.0", &b, &["panel-1.1.0"], &[]);
    let d = p.dir("1.1.0");
    std::fs::copy(
        d.join("panel-1.1.0.tar.gz"),
        d.join("panel-1.1.0-arm64.tar.gz"),
    )
    .unwrap();
    let sum = |f: &str| hex::encode(sha2::Sha256::digest(std::fs::read(d.join(f)).unwrap()));
    let text = format!(
        "{}  panel-1.1.0.tar.gz\n{}  panel-1.1.0-arm64.tar.gz\n",
        sum("panel-1.1.0.tar.gz"),
        sum("panel-1.1.0-arm64.tar.gz")
    );
    p.write_signed("1.1.0", text.as_bytes(), &workflow("1.1.0"));
    let fake = p.dir("1.1.0-arm64");
    for f in [
        "panel-1.1.0-arm64.tar.gz",
        "checksums.txt",
        "checksums.txt.sigstore.json",
    ] {
        std::fs::copy(d.join(f), fake.join(f)).unwrap();
    }
    p.latest("1.1.0-arm64");
    p.refused(&["apply"], "pre-release");
    // With pre-releases allowed, the checksum file is ambiguous about
    // which name is 1.1.0's and is refused as such.
    let cfg = std::fs::read_to_string(&h.config).unwrap();
    std::fs::write(
        &h.config,
        cfg.replace(
            "strip_components = 1\n",
            "strip_components = 1\nallow_prerelease = true\n",
        ),
    )
    .unwrap();
    p.refused(&["apply"], "is ambiguous");
    p.refused(&["apply", "--version", "1.1.0"], "is ambiguous");
    // A release candidate whose checksum file lists only its own tarball
    // installs once allowed.
    let rc = p.dir("2.0.0-rc.1");
    let line = format!(
        "{}  panel-2.0.0-rc.1.tar.gz\n",
        hex::encode(sha2::Sha256::digest(
            std::fs::read(rc.join("panel-2.0.0-rc.1.tar.gz")).unwrap()
        ))
    );
    p.write_signed("2.0.0-rc.1", line.as_bytes(), &workflow("2.0.0-rc.1"));
    p.latest("2.0.0-rc.1");
    h.update(&["apply"]).ok();
    assert_eq!(h.current().as_deref(), Some("2.0.0-rc.1"));
}
