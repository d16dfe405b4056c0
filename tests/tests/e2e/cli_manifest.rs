use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use charter_tests::{Fixture, snapshot};

#[test]
fn create_sign_verify_with_threshold_two() {
    let f = Fixture::new();
    f.tree("t");
    let created = f
        .charter(&[
            "manifest",
            "create",
            "--product",
            "panel",
            "--version",
            "1.2.3",
            "--from",
            "t",
            "--out",
            "out",
            "--config",
            "etc/*.toml",
            "--preserve",
            "data/**",
            "--health-url",
            "http://127.0.0.1:8080/health",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(created["files"], 3);
    assert_eq!(created["signatures"], 0);
    // Unsigned: refused.
    f.charter(&[
        "manifest",
        "verify",
        "--root",
        "root.json",
        "out/manifest.json",
    ])
    .fails_with("threshold not met for role `release`: 0 valid");
    // One of two: refused.
    f.charter(&["manifest", "sign", "--key", "rel1.key", "out/manifest.json"])
        .ok();
    f.charter(&["manifest", "verify", "--root", "root.json", "out/manifest.json"])
        .fails_with("threshold not met for role `release`: 1 valid signature(s) from distinct `release` keys, 2 required");
    // The same key again: refused, file unchanged.
    let before = snapshot(f.path());
    f.charter(&["manifest", "sign", "--key", "rel1.key", "out/manifest.json"])
        .fails_with("has already signed");
    assert_eq!(before, snapshot(f.path()));
    // Two of two, with the artifact.
    f.charter(&["manifest", "sign", "--key", "rel2.key", "out/manifest.json"])
        .ok();
    let j = f
        .charter(&[
            "manifest",
            "verify",
            "--root",
            "root.json",
            "--artifact",
            "out/panel-1.2.3.tar.zst",
            "out/manifest.json",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(j["verified"], true);
    assert_eq!(j["signers"].as_array().unwrap().len(), 2);
}

#[test]
fn manifest_lists_every_file_with_digest_mode_and_kind() {
    let f = Fixture::new();
    f.tree("t");
    let m = f.release("t", "1.0.0", "out");
    let env: serde_json::Value = serde_json::from_slice(&std::fs::read(m).unwrap()).unwrap();
    use base64::Engine as _;
    let payload = base64::engine::general_purpose::STANDARD
        .decode(env["payload"].as_str().unwrap())
        .unwrap();
    let man: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    let files = man["files"].as_array().unwrap();
    let by = |p: &str| files.iter().find(|e| e["path"] == p).unwrap().clone();
    assert_eq!(by("bin/panel")["kind"], "program");
    assert_eq!(by("bin/panel")["mode"], 0o755);
    assert_eq!(by("etc/panel.toml")["kind"], "config");
    assert_eq!(by("data/blob")["kind"], "data");
    assert_eq!(by("data/blob")["size"], 70_000);
    assert_eq!(by("data/link")["type"], "symlink");
    assert_eq!(by("data/link")["target"], "../bin/panel");
    assert_eq!(by("bin")["type"], "dir");
    // Digests agree with sha256sum.
    let out = Command::new("sha256sum")
        .arg(f.path().join("t/data/blob"))
        .output()
        .unwrap();
    let want = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(by("data/blob")["sha256"], want.as_str());
    assert_eq!(man["preserve"][0], "data/**");
    // The archive unpacks with the system's tar and zstd to the same tree.
    let x = f.path().join("x");
    std::fs::create_dir(&x).unwrap();
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "zstd -dc {} | tar -xf - -C {}",
            f.path().join("out/panel-1.0.0.tar.zst").display(),
            x.display()
        ))
        .status();
    if let Ok(s) = status
        && s.success()
    {
        assert_eq!(
            std::fs::read(x.join("data/blob")).unwrap(),
            vec![7u8; 70_000]
        );
        assert_eq!(
            std::fs::read_link(x.join("data/link")).unwrap().to_str(),
            Some("../bin/panel")
        );
    }
}

#[test]
fn tampered_artifact_and_manifest_refused() {
    let f = Fixture::new();
    f.tree("t");
    f.release("t", "1.0.0", "out");
    let art = f.path().join("out/panel-1.0.0.tar.zst");
    let mut bytes = std::fs::read(&art).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&art, &bytes).unwrap();
    f.charter(&[
        "manifest",
        "verify",
        "--root",
        "root.json",
        "--artifact",
        "out/panel-1.0.0.tar.zst",
        "out/manifest.json",
    ])
    .fails_with("out/panel-1.0.0.tar.zst is not verified: sha256 ");
    bytes.push(0);
    std::fs::write(&art, &bytes).unwrap();
    f.charter(&[
        "manifest",
        "verify",
        "--root",
        "root.json",
        "--artifact",
        "out/panel-1.0.0.tar.zst",
        "out/manifest.json",
    ])
    .fails_with("bytes, the manifest says");
    // Change one character of the payload: no signature holds.
    let m = f.path().join("out/manifest.json");
    let mut env: serde_json::Value = serde_json::from_slice(&std::fs::read(&m).unwrap()).unwrap();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let payload = String::from_utf8(b64.decode(env["payload"].as_str().unwrap()).unwrap()).unwrap();
    let evil = payload.replacen("\"security_fix\": false", "\"security_fix\": true", 1);
    assert_ne!(evil, payload);
    env["payload"] = b64.encode(evil).into();
    std::fs::write(&m, serde_json::to_vec(&env).unwrap()).unwrap();
    f.charter(&[
        "manifest",
        "verify",
        "--root",
        "root.json",
        "out/manifest.json",
    ])
    .fails_with("threshold not met for role `release`: 0 valid");
}

#[test]
fn license_key_cannot_sign_a_release() {
    let f = Fixture::new();
    f.tree("t");
    f.charter(&[
        "manifest",
        "create",
        "--product",
        "panel",
        "--version",
        "1.0.0",
        "--from",
        "t",
        "--out",
        "out",
    ])
    .ok();
    f.charter(&["manifest", "sign", "--key", "lic.key", "out/manifest.json"])
        .ok();
    f.charter(&["manifest", "sign", "--key", "chan.key", "out/manifest.json"])
        .ok();
    f.charter(&[
        "manifest",
        "verify",
        "--root",
        "root.json",
        "out/manifest.json",
    ])
    .fails_with("threshold not met for role `release`: 0 valid");
}

#[test]
fn expired_manifest_refused() {
    let f = Fixture::new();
    f.tree("t");
    f.charter(&[
        "manifest",
        "create",
        "--product",
        "panel",
        "--version",
        "1.0.0",
        "--from",
        "t",
        "--out",
        "out",
        "--released-at",
        "2020-01-01T00:00:00Z",
        "--expires",
        "30d",
    ])
    .ok();
    f.charter(&["manifest", "sign", "--key", "rel1.key", "out/manifest.json"])
        .ok();
    f.charter(&["manifest", "sign", "--key", "rel2.key", "out/manifest.json"])
        .ok();
    f.charter(&[
        "manifest",
        "verify",
        "--root",
        "root.json",
        "out/manifest.json",
    ])
    .fails_with("manifest for panel 1.0.0 expired at 2020-01-31T00:00:00Z");
}

fn refused_create(f: &Fixture, extra: &[&str], needle: &str) {
    let before = snapshot(f.path());
    let mut args = vec!["manifest", "create"];
    for (flag, default) in [
        ("--product", "panel"),
        ("--version", "1.0.0"),
        ("--from", "t"),
        ("--out", "out"),
    ] {
        if !extra.contains(&flag) {
            args.extend([flag, default]);
        }
    }
    args.extend_from_slice(extra);
    f.charter(&args).fails_with(needle);
    assert_eq!(
        before,
        snapshot(f.path()),
        "refused create changed the disk ({needle})"
    );
}

#[test]
fn refused_creates_leave_no_file() {
    let f = Fixture::new();
    f.tree("t");
    refused_create(&f, &["--product", "Panel!"], "invalid product name");
    refused_create(&f, &["--version", "1.0"], "is not a semantic version");
    refused_create(&f, &["--config", "etc/[x"], "invalid glob `etc/[x`");
    refused_create(&f, &["--format", "zip"], "expected tar.zst or tar.gz");
    refused_create(
        &f,
        &["--health-url", "ftp://x/"],
        "health check URL `ftp://x/` is not http(s)",
    );
    refused_create(
        &f,
        &[
            "--released-at",
            "2020-01-01T00:00:00Z",
            "--expires",
            "2019-01-01T00:00:00Z",
        ],
        "already be expired",
    );
    // An escaping symlink.
    std::os::unix::fs::symlink("../../etc/passwd", f.path().join("t/data/evil")).unwrap();
    refused_create(
        &f,
        &[],
        "points to `../../etc/passwd`, outside the release tree",
    );
    std::fs::remove_file(f.path().join("t/data/evil")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", f.path().join("t/data/abs")).unwrap();
    refused_create(&f, &[], "outside the release tree");
    std::fs::remove_file(f.path().join("t/data/abs")).unwrap();
    // A FIFO.
    let st = Command::new("mkfifo")
        .arg(f.path().join("t/data/pipe"))
        .status()
        .unwrap();
    assert!(st.success());
    refused_create(&f, &[], "t/data/pipe is a FIFO");
    std::fs::remove_file(f.path().join("t/data/pipe")).unwrap();
    // An unreadable file (not as root: root reads anything).
    if !is_root() {
        std::fs::set_permissions(
            f.path().join("t/data/blob"),
            std::fs::Permissions::from_mode(0o000),
        )
        .unwrap();
        refused_create(&f, &[], "cannot read");
        std::fs::set_permissions(
            f.path().join("t/data/blob"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
    }
    // Existing outputs are never replaced.
    f.charter(&[
        "manifest",
        "create",
        "--product",
        "panel",
        "--version",
        "1.0.0",
        "--from",
        "t",
        "--out",
        "out",
    ])
    .ok();
    refused_create(&f, &[], "already exists");
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

#[test]
fn signing_a_non_manifest_is_refused() {
    let f = Fixture::new();
    let before = snapshot(f.path());
    f.charter(&["manifest", "sign", "--key", "rel1.key", "root.json"])
        .fails_with("root.json is not a manifest (payloadType `application/vnd.charter.root+json; version=1`)");
    std::fs::write(f.path().join("junk.json"), b"{not json").unwrap();
    let before2 = snapshot(f.path());
    f.charter(&["manifest", "sign", "--key", "rel1.key", "junk.json"])
        .fails_with("junk.json is not a manifest envelope");
    assert_eq!(before2, snapshot(f.path()));
    drop(before);
}

#[test]
fn gzip_format_and_hash_tree_agree_with_sha256sum() {
    let f = Fixture::new();
    f.tree("t");
    let j = f
        .charter(&[
            "manifest",
            "create",
            "--product",
            "panel",
            "--version",
            "2.0.0",
            "--from",
            "t",
            "--out",
            "gz",
            "--format",
            "tar.gz",
            "--json",
        ])
        .ok()
        .json();
    assert!(
        j["artifact"]
            .as_str()
            .unwrap()
            .ends_with("panel-2.0.0.tar.gz")
    );
    let st = Command::new("tar")
        .args(["-tzf", "gz/panel-2.0.0.tar.gz"])
        .current_dir(f.path())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&st.stdout).contains("data/blob"));
    // hash-tree's output is sha256sum -c input.
    let sums = f.charter(&["hash-tree", "t"]).ok().stdout;
    assert_eq!(sums.lines().count(), 3);
    std::fs::write(f.path().join("t/SUMS"), sums.replace("  ", "  ./")).unwrap();
    let check = Command::new("sha256sum")
        .args(["-c", "SUMS"])
        .current_dir(f.path().join("t"))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
}
