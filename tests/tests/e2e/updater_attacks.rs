//! Every attack the updater must refuse, each with its own error, and each
//! leaving the installed tree and the host state as they were.

use std::io::Write;
use std::process::Command;

use charter_tests::host::Host;
use charter_tests::server::Fault;
use jiff::{SignedDuration, Timestamp};

/// A host running 1.0.0 with 2.0.0 staged in the repository.
fn host() -> Host {
    let h = Host::new();
    h.publish("1.0.0", true, "a = 1\n", &[]);
    h.update(&["apply"]).ok();
    h.publish("2.0.0", true, "a = 2\n", &[]);
    h
}

/// Runs `apply`, expects `needle` in its error, and checks nothing changed.
#[track_caller]
fn refused(h: &Host, needle: &str) {
    let before = h.snapshot();
    h.update(&["apply"]).fails_with(needle);
    assert_eq!(
        before,
        h.snapshot(),
        "refused apply changed the host ({needle})"
    );
    assert_eq!(h.current().as_deref(), Some("1.0.0"));
    let releases: Vec<_> = std::fs::read_dir(h.root.join("opt/releases"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(releases, ["1.0.0"], "staging left behind ({needle})");
    h.update(&["verify"]).ok();
}

#[test]
fn tampered_artifact_byte() {
    let h = host();
    let art = h.repo.join("releases/panel/2.0.0/panel-2.0.0.tar.zst");
    let mut bytes = std::fs::read(&art).unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 0x40;
    std::fs::write(&art, bytes).unwrap();
    // Either the zstd frame checksum, a file digest or the artifact digest
    // catches it, depending on where the byte lands; all are refusals.
    let before = h.snapshot();
    let out = h.update(&["apply"]);
    assert_ne!(out.code, 0);
    assert!(
        ["sha256", "corrupt artifact"]
            .iter()
            .any(|n| out.stderr.contains(n)),
        "{out:?}"
    );
    assert_eq!(before, h.snapshot());
}

#[test]
fn artifact_swapped_for_another_valid_one() {
    let h = host();
    // A well-formed artifact (1.0.0's) under 2.0.0's name: refused on its
    // size when it differs, else on the first file digest.
    let a1 = std::fs::read(h.repo.join("releases/panel/1.0.0/panel-1.0.0.tar.zst")).unwrap();
    let a2 = h.repo.join("releases/panel/2.0.0/panel-2.0.0.tar.zst");
    let same_size = a1.len() as u64 == std::fs::metadata(&a2).unwrap().len();
    std::fs::write(&a2, a1).unwrap();
    refused(
        &h,
        if same_size {
            "sha256"
        } else {
            "panel-2.0.0.tar.zst"
        },
    );
}

#[test]
fn tampered_manifest() {
    let h = host();
    let p = h.repo.join("releases/panel/2.0.0/manifest.json");
    let text = std::fs::read_to_string(&p).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let payload = String::from_utf8(b64.decode(v["payload"].as_str().unwrap()).unwrap()).unwrap();
    v["payload"] = b64
        .encode(payload.replace("\"security_fix\": false", "\"security_fix\": true"))
        .into();
    let bytes = serde_json::to_vec(&v).unwrap();
    std::fs::write(&p, &bytes).unwrap();
    // With the pointer re-signed over the tampered bytes, the manifest's
    // own signatures are what fails.
    h.point_raw(
        "2.0.0",
        &bytes,
        Timestamp::now() + SignedDuration::from_hours(1),
        false,
    );
    refused(&h, "threshold not met for role `release`: 0 valid");
}

#[test]
fn manifest_signed_by_the_wrong_roles() {
    let h = host();
    let m = h.manifest("2.0.0");
    h.install_raw(m, None, &["chan.key", "lic.key", "root.key"]);
    refused(&h, "threshold not met for role `release`: 0 valid");
}

#[test]
fn threshold_not_met() {
    let h = host();
    let m = h.manifest("2.0.0");
    h.install_raw(m, None, &["rel1.key"]);
    refused(
        &h,
        "threshold not met for role `release`: 1 valid signature(s) from distinct `release` keys, 2 required",
    );
}

#[test]
fn channel_pointer_signed_by_a_release_key() {
    let h = host();
    let p = h.repo.join("channels/panel/stable.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    v["signatures"] = serde_json::json!([]);
    std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
    h.f.charter(&[
        "channel",
        "sign",
        "--key",
        "rel1.key",
        "repo/channels/panel/stable.json",
    ])
    .ok();
    refused(&h, "threshold not met for role `channel`: 0 valid");
}

#[test]
fn older_version_is_a_rollback_attack() {
    let h = host();
    h.update(&["apply"]).ok();
    h.publish("1.5.0", true, "a = 1\n", &[]);
    let before = h.snapshot();
    h.update(&["apply"])
        .fails_with("refusing 1.5.0: this host already ran 2.0.0");
    assert_eq!(before, h.snapshot());
    assert_eq!(h.current().as_deref(), Some("2.0.0"));
    // A signed instruction to downgrade is honoured.
    let bytes = std::fs::read(h.repo.join("releases/panel/1.5.0/manifest.json")).unwrap();
    h.point_raw(
        "1.5.0",
        &bytes,
        Timestamp::now() + SignedDuration::from_hours(1),
        true,
    );
    h.update(&["apply"]).ok();
    assert_eq!(h.current().as_deref(), Some("1.5.0"));
}

#[test]
fn expired_channel_pointer() {
    let h = host();
    let bytes = std::fs::read(h.repo.join("releases/panel/2.0.0/manifest.json")).unwrap();
    h.point_raw(
        "2.0.0",
        &bytes,
        Timestamp::now() - SignedDuration::from_hours(1),
        false,
    );
    refused(&h, "channel pointer panel/stable (2.0.0) expired at");
}

#[test]
fn expired_manifest() {
    let h = host();
    let mut m = h.manifest("2.0.0");
    m.released_at = "2020-01-01T00:00:00Z".parse().unwrap();
    m.expires = "2020-02-01T00:00:00Z".parse().unwrap();
    h.install_raw(m, None, &["rel1.key", "rel2.key"]);
    refused(
        &h,
        "manifest for panel 2.0.0 expired at 2020-02-01T00:00:00Z",
    );
}

#[test]
fn pointer_and_manifest_mismatch() {
    let h = host();
    // The pointer pins 2.0.0's manifest bytes; the repository then serves a
    // different (validly signed) 2.0.0 manifest: mix-and-match.
    let original = std::fs::read(h.repo.join("releases/panel/2.0.0/manifest.json")).unwrap();
    let mut m = h.manifest("2.0.0");
    m.security_fix = true;
    h.install_raw(m, None, &["rel1.key", "rel2.key"]);
    h.point_raw(
        "2.0.0",
        &original,
        Timestamp::now() + SignedDuration::from_hours(1),
        false,
    );
    refused(&h, "(channel pointer)");
}

#[test]
fn pointer_version_and_manifest_version_disagree() {
    let h = host();
    let m1 = std::fs::read(h.repo.join("releases/panel/1.0.0/manifest.json")).unwrap();
    // Pointer says 2.0.0 but pins (and so serves) 1.0.0's manifest.
    h.point_raw(
        "2.0.0",
        &m1,
        Timestamp::now() + SignedDuration::from_hours(1),
        false,
    );
    std::fs::write(h.repo.join("releases/panel/2.0.0/manifest.json"), &m1).unwrap();
    refused(&h, "manifest version names 1.0.0, expected 2.0.0");
}

#[test]
fn endless_artifact() {
    let h = host();
    // Endless bytes that are not zstd: the decoder or the size cap stops
    // them, whichever comes first; either way within the signed size.
    h.server
        .set_fault(&h.artifact_url_path("2.0.0"), Fault::Endless, u32::MAX);
    let before = h.snapshot();
    let out = h.update(&["apply"]);
    assert!(
        out.stderr.contains("more than the") || out.stderr.contains("corrupt artifact"),
        "{out:?}"
    );
    assert_eq!(before, h.snapshot());
    let reqs = h.server.requests();
    assert!(
        reqs.iter()
            .filter(|r| r.path.ends_with(".tar.zst"))
            .all(|r| r.body_bytes_sent < 64 << 20)
    );
}

#[test]
fn artifact_larger_than_stated() {
    let h = host();
    let art = h.repo.join("releases/panel/2.0.0/panel-2.0.0.tar.zst");
    let mut bytes = std::fs::read(&art).unwrap();
    bytes.extend_from_slice(&[0u8; 4096]);
    std::fs::write(&art, bytes).unwrap();
    refused(&h, "server announced");
}

/// Builds a tar.zst holding 2.0.0's real tree plus one evil entry made by
/// python's tarfile (which, unlike ours, writes anything), signs a manifest
/// for it, and expects `needle`.
fn evil_tar(add: &str, needle: &str) {
    let h = host();
    let tree = h.path().join("trees/2.0.0");
    let tar_path = h.path().join("evil.tar");
    let script = format!(
        r#"
import tarfile, io, os
t = tarfile.open({tar:?}, "w", format=tarfile.GNU_FORMAT)
os.chdir({tree:?})
for root, dirs, files in os.walk("."):
    dirs.sort()
    for name in sorted(dirs) + sorted(files):
        p = os.path.join(root, name)[2:]
        t.add(p, arcname=p, recursive=False)
def info(name, **kw):
    ti = tarfile.TarInfo(name)
    for k, v in kw.items(): setattr(ti, k, v)
    return ti
{add}
t.close()
"#,
        tar = tar_path.to_str().unwrap(),
        tree = tree.to_str().unwrap(),
    );
    let st = Command::new("python3").arg("-c").arg(&script).status();
    if !st.map(|s| s.success()).unwrap_or(false) {
        eprintln!("python3 not available or failed: skipped");
        return;
    }
    let tar = std::fs::read(&tar_path).unwrap();
    let mut enc = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
    enc.write_all(&tar).unwrap();
    let artifact = enc.finish().unwrap();
    let m = h.manifest("2.0.0");
    h.install_raw(m, Some(&artifact), &["rel1.key", "rel2.key"]);
    refused(&h, needle);
}

#[test]
fn tar_with_dot_dot() {
    evil_tar(
        r#"data = b"pwned\n"; t.addfile(info("../evil", size=len(data), mode=0o644), io.BytesIO(data))"#,
        "unsafe path `../evil`: `..` component",
    );
}

#[test]
fn tar_with_absolute_path() {
    evil_tar(
        r#"data = b"pwned\n"; t.addfile(info("/tmp/charter-evil", size=len(data), mode=0o644), io.BytesIO(data))"#,
        "unsafe path `/tmp/charter-evil`: absolute path",
    );
}

#[test]
fn tar_with_symlink_escape() {
    evil_tar(
        r#"t.addfile(info("share/esc", type=tarfile.SYMTYPE, linkname="../../../../etc", mode=0o777))"#,
        "archive entry `share/esc` is not in the signed manifest",
    );
}

#[test]
fn tar_with_hardlink_escape() {
    evil_tar(
        r#"t.addfile(info("share/hl", type=tarfile.LNKTYPE, linkname="/etc/passwd", mode=0o644))"#,
        "archive entry `share/hl` is a hard link",
    );
}

#[test]
fn tar_with_device_file() {
    evil_tar(
        r#"t.addfile(info("share/dev", type=tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666))"#,
        "archive entry `share/dev` is a character device",
    );
}

#[test]
fn tar_with_extra_file() {
    evil_tar(
        r#"data = b"extra\n"; t.addfile(info("bin/extra", size=len(data), mode=0o755), io.BytesIO(data))"#,
        "archive entry `bin/extra` is not in the signed manifest",
    );
}

#[test]
fn tar_with_a_file_replaced_by_a_symlink() {
    // Same path as a listed file, but a symlink out of the tree: the type
    // check refuses it (the entry comes after the real file: a duplicate).
    evil_tar(
        r#"t.addfile(info("etc/panel.toml", type=tarfile.SYMTYPE, linkname="/etc/shadow", mode=0o777))"#,
        "archive entry `etc/panel.toml` appears twice",
    );
}

#[test]
fn tar_with_setuid_bit_not_in_manifest() {
    evil_tar(
        r#"data = b"x"; t.addfile(info("bin/suid", size=1, mode=0o4755), io.BytesIO(data))"#,
        "archive entry `bin/suid` is not in the signed manifest",
    );
}

/// Regression (review Q30): an older channel pointer, still unexpired and
/// even allowing a downgrade, is refused once a newer one was seen.
#[test]
fn replayed_older_channel_pointer() {
    let h = host();
    let old_pointer = std::fs::read(h.repo.join("channels/panel/stable.json")).unwrap();
    // Publish 2.0.0 a little later and let the host see it.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    h.point("stable", "2.0.0");
    h.update(&["check"]).ok();
    // The attacker serves the older (1.0.0 -> 2.0.0 era) pointer again.
    std::fs::write(h.repo.join("channels/panel/stable.json"), &old_pointer).unwrap();
    refused(&h, "is older than one already accepted here");
}
