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

/// Regression (SPEC §12 Q12): a release key alone cannot plant a setuid
/// root binary. Signed setuid/setgid bits are stripped unless the host
/// names the file in `update.allow_setuid`; `verify` expects the stripped
/// mode, and catches the bits put back by hand.
#[test]
fn setuid_bit_stripped_unless_allowed() {
    use std::os::unix::fs::PermissionsExt;
    let h = Host::new();
    let mode = |rel: &str| {
        std::fs::metadata(h.root.join("opt/current").join(rel))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    let publish = |v: &str| {
        let t = h.tree(v, true, "a = 1\n");
        let helper = t.join("bin/helper");
        std::fs::write(&helper, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o6755)).unwrap();
        h.publish_tree(v, &["--config", "etc/*.toml", "--health-cmd", "bin/health"]);
        let signed = h
            .manifest(v)
            .files
            .iter()
            .find_map(|e| match e {
                charter_release::manifest::Entry::File { path, mode, .. }
                    if path.as_str() == "bin/helper" =>
                {
                    Some(*mode)
                }
                _ => None,
            })
            .unwrap();
        assert_eq!(signed, 0o6755, "the manifest signs the bits");
    };
    publish("1.0.0");
    let out = h.update(&["apply"]).ok();
    assert!(
        out.stderr
            .contains("bin/helper: setuid/setgid bits not installed"),
        "{out:?}"
    );
    assert_eq!(mode("bin/helper"), 0o755);
    h.update(&["verify"]).ok();
    // The bits put back by hand are what verify reports.
    let helper = h.root.join("opt/current/bin/helper");
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o6755)).unwrap();
    let v = h.update(&["verify"]);
    assert_eq!(v.code, 1, "{v:?}");
    assert!(
        v.stdout.contains("bin/helper") && v.stdout.contains("expected 755"),
        "{v:?}"
    );
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    // A host that names the file keeps the signed bits.
    h.write_config(
        &h.server.url(),
        "[update]\nallow_setuid = [\"bin/helper\"]\n",
    );
    publish("1.1.0");
    let out = h.update(&["apply"]).ok();
    assert!(
        !out.stderr.contains("setuid/setgid bits not installed"),
        "{out:?}"
    );
    assert_eq!(mode("bin/helper"), 0o6755);
    h.update(&["verify"]).ok();
    // Only paths inside a release can be named.
    h.write_config(
        &h.server.url(),
        "[update]\nallow_setuid = [\"/usr/bin/sudo\"]\n",
    );
    h.update(&["apply"]).fails_with("update.allow_setuid");
}

/// Regression (SPEC §12 Q12): the sticky bit on a file means nothing and
/// is refused when the manifest is made, before anything is signed.
#[test]
fn sticky_bit_on_a_file_refused() {
    use std::os::unix::fs::PermissionsExt;
    let h = Host::new();
    let t = h.tree("1.0.0", true, "a = 1\n");
    std::fs::set_permissions(
        t.join("share/data"),
        std::fs::Permissions::from_mode(0o1644),
    )
    .unwrap();
    h.f.charter(&[
        "manifest",
        "create",
        "--product",
        "panel",
        "--version",
        "1.0.0",
        "--from",
        "trees/1.0.0",
        "--out",
        "out/1.0.0",
    ])
    .fails_with("`share/data` has the sticky bit");
    assert!(!h.path().join("out/1.0.0").exists());
}

/// Regression (SPEC §12 Q37): a health probe named by a bare `argv[0]`
/// (`true`) would run whatever PATH finds first, as root. It is refused
/// when the manifest is made and, in a manifest signed by other means,
/// when the host verifies it, with nothing changed.
#[test]
fn probe_bare_name_not_from_path() {
    let h = host();
    h.tree("3.0.0", true, "a = 3\n");
    h.f.charter(&[
        "manifest",
        "create",
        "--product",
        "panel",
        "--version",
        "3.0.0",
        "--from",
        "trees/3.0.0",
        "--out",
        "out/3.0.0",
        "--health-cmd",
        "true",
    ])
    .fails_with("health check command `true` must be a path inside the release");
    assert!(!h.path().join("out/3.0.0").exists());
    // Signed by the release keys all the same (bypassing the CLI).
    let mut m = h.manifest("2.0.0");
    if let Some(hc) = &mut m.health_check {
        hc.probe = charter_release::manifest::Probe::Command {
            argv: vec!["true".into()],
        };
    }
    h.install_raw(m, None, &["rel1.key", "rel2.key"]);
    refused(
        &h,
        "health check command `true` must be a path inside the release",
    );
}

/// Regression (SPEC §12 Q37): command probes run as `service.scripts_user`
/// like the scripts, not as root. As root, the probe passes only when it
/// runs as `nobody`; otherwise (no root) as this test's own user, which
/// still takes the switch-user path.
#[test]
fn probe_runs_as_scripts_user() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let my_uid = std::fs::metadata("/proc/self").unwrap().uid();
    let root = my_uid == 0;
    let (user, uid) = if root {
        ("nobody".to_owned(), 65534)
    } else {
        let uid = my_uid;
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
        let name = passwd
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 3 && f[2] == uid.to_string()).then(|| f[0].to_owned())
            })
            .expect("this test's user is in /etc/passwd");
        (name, uid)
    };
    let h = Host::with_config(&format!("[service]\nscripts_user = \"{user}\"\n"));
    // `nobody` must reach the release through the test's directory.
    std::fs::set_permissions(h.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let t = h.tree("1.0.0", true, "a = 1\n");
    std::fs::write(
        t.join("bin/health"),
        format!("#!/bin/sh\n[ \"$(id -u)\" = {uid} ]\n"),
    )
    .unwrap();
    h.publish_tree(
        "1.0.0",
        &[
            "--config",
            "etc/*.toml",
            "--health-cmd",
            "bin/health",
            "--health-retries",
            "0",
        ],
    );
    let out = h.update(&["apply"]);
    assert_eq!(out.code, 0, "the probe did not run as {user}: {out:?}");
    assert_eq!(h.current().as_deref(), Some("1.0.0"));
}

/// Regression (SPEC §12 Q38): the config's `[health]` is held to the
/// manifest's rules at load, so `config test` catches what would
/// otherwise roll back every update.
#[test]
fn config_health_check_validated() {
    let h = host();
    for (health, needle) in [
        (
            "[health]\ntimeout_secs = 5\nretries = 0\ninterval_secs = 0\n[health.command]\nargv = []\n",
            "health check command is empty",
        ),
        (
            "[health]\ntimeout_secs = 5\nretries = 0\ninterval_secs = 0\n[health.http]\nurl = \"ftp://127.0.0.1/\"\nexpect_status = 200\n",
            "is not http(s)",
        ),
        (
            "[health]\ntimeout_secs = 0\nretries = 0\ninterval_secs = 0\n[health.command]\nargv = [\"bin/health\"]\n",
            "timeout 0s",
        ),
        (
            "[health]\ntimeout_secs = 5\nretries = 0\ninterval_secs = 0\n[health.command]\nargv = [\"true\"]\n",
            "must be a path inside the release",
        ),
    ] {
        h.write_config(&h.server.url(), health);
        let t = h.update(&["config", "test"]);
        assert_ne!(t.code, 0, "{health}: {t:?}");
        assert!(
            t.stdout.contains(needle) || t.stderr.contains(needle),
            "{health}: {t:?}"
        );
        let before = h.snapshot();
        h.update(&["apply"]).fails_with(needle);
        assert_eq!(before, h.snapshot(), "{health}");
        assert_eq!(h.current().as_deref(), Some("1.0.0"));
    }
}

/// Regression (review of issue 12): setuid/setgid bits reach the host only
/// through the signed manifest and `update.allow_setuid`. Bits set on a
/// config or preserved file are reported by `verify`, and carry-over never
/// copies them into the next release (it says so).
#[test]
fn setuid_bits_never_carried_over_nor_unreported() {
    use std::os::unix::fs::PermissionsExt;
    let h = Host::new();
    h.publish("1.0.0", true, "a = 1\n", &[]);
    h.update(&["apply"]).ok();
    let cur = h.root.join("opt/current");
    std::fs::create_dir_all(cur.join("var")).unwrap();
    std::fs::write(cur.join("var/tool"), "#!/bin/sh\n").unwrap();
    for (p, m) in [("var/tool", 0o4755), ("etc/panel.toml", 0o2644)] {
        std::fs::set_permissions(cur.join(p), std::fs::Permissions::from_mode(m)).unwrap();
    }
    let v = h.update(&["verify"]);
    assert_eq!(v.code, 1, "{v:?}");
    for p in ["var/tool", "etc/panel.toml"] {
        assert!(
            v.stdout.lines().any(
                |l| l.contains(p) && l.contains("neither the manifest nor update.allow_setuid")
            ),
            "{p}: {v:?}"
        );
    }
    std::fs::set_permissions(
        cur.join("etc/panel.toml"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    h.publish("1.1.0", true, "a = 1\n", &[]);
    let out = h.update(&["apply"]).ok();
    assert!(
        out.stderr
            .contains("var/tool: setuid/setgid bits not carried over"),
        "{out:?}"
    );
    let mode = std::fs::metadata(cur.join("var/tool"))
        .unwrap()
        .permissions()
        .mode()
        & 0o7777;
    assert_eq!(mode, 0o755);
    assert_eq!(h.installed("var/tool").unwrap(), b"#!/bin/sh\n");
    h.update(&["verify"]).ok();
}
