//! The updater end to end on a real local HTTP server: install, update with
//! a preserved config, a failing release rolled back and never retried,
//! verify finding a hand-changed file.

use std::process::Command;

use charter_tests::host::Host;

#[test]
fn install_update_preserve_config_rollback_and_verify() {
    let h = Host::new();
    h.publish("1.0.0", true, "listen = 8080\n", &[]);
    let check = h.update(&["check", "--json"]).ok().json();
    assert_eq!(check["update_available"], true);
    assert_eq!(check["candidate"], "1.0.0");

    // First install.
    let out = h.update(&["apply", "--json"]).ok().json();
    assert_eq!(out["result"], "installed");
    assert_eq!(h.current().as_deref(), Some("1.0.0"));
    assert_eq!(
        h.installed("bin/panel").unwrap(),
        b"#!/bin/sh\necho panel 1.0.0\n"
    );
    h.update(&["verify"]).ok();

    // The operator edits the config and adds data under a preserved path.
    let cfg = h.root.join("opt/current/etc/panel.toml");
    std::fs::write(&cfg, b"listen = 9090 # mine\n").unwrap();
    std::fs::create_dir_all(h.root.join("opt/current/var")).unwrap();
    std::fs::write(h.root.join("opt/current/var/db"), b"customer data").unwrap();

    // v2 changes the default config: the operator's stays, the new default
    // lands beside it.
    h.publish("2.0.0", true, "listen = 8081\n", &[]);
    let out = h.update(&["apply"]).ok();
    assert!(out.stderr.contains("kept your etc/panel.toml"), "{out:?}");
    assert_eq!(h.current().as_deref(), Some("2.0.0"));
    assert_eq!(
        h.installed("etc/panel.toml").unwrap(),
        b"listen = 9090 # mine\n"
    );
    assert_eq!(
        h.installed("etc/panel.toml.charter-new").unwrap(),
        b"listen = 8081\n"
    );
    assert_eq!(h.installed("var/db").unwrap(), b"customer data");
    assert_eq!(
        h.installed("bin/panel").unwrap(),
        b"#!/bin/sh\necho panel 2.0.0\n"
    );
    let v = h.update(&["verify", "--json"]).ok().json();
    assert_eq!(v["config_changed"][0], "etc/panel.toml");

    // v3 fails its health check: rolled back to v2, marked bad.
    h.publish("3.0.0", false, "listen = 8081\n", &[]);
    let out = h.update(&["apply"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stderr.contains("3.0.0 was rolled back to 2.0.0"),
        "{out:?}"
    );
    assert_eq!(h.current().as_deref(), Some("2.0.0"));
    assert_eq!(
        h.installed("etc/panel.toml").unwrap(),
        b"listen = 9090 # mine\n"
    );
    assert_eq!(h.installed("var/db").unwrap(), b"customer data");
    let st = h.status();
    assert_eq!(st["current"], "2.0.0");
    assert_eq!(st["ratchet"], "2.0.0");
    assert_eq!(st["bad"][0], "3.0.0");

    // Never retried automatically.
    h.update(&["apply"])
        .fails_with("3.0.0 failed its health check on this host before");
    let check = h.update(&["check", "--json"]).ok().json();
    assert_eq!(check["update_available"], false);
    assert_eq!(h.current().as_deref(), Some("2.0.0"));

    // verify finds a file changed by hand.
    h.update(&["verify"]).ok();
    std::fs::write(h.root.join("opt/current/share/data"), b"tampered").unwrap();
    let out = h.update(&["verify"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("content  share/data"), "{out:?}");

    // History tells the story.
    let hist = h.update(&["history", "--json"]).ok().json();
    let results: Vec<&str> = hist
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["result"].as_str().unwrap())
        .collect();
    assert_eq!(results, ["committed", "committed", "rolled-back"]);
}

#[test]
fn manual_rollback_and_nothing_to_roll_back() {
    let h = Host::new();
    h.update(&["rollback"])
        .fails_with("cannot roll back: nothing is installed");
    // verify says what is missing, not "cannot roll back" (SPEC §12.6).
    h.update(&["verify"])
        .fails_with("nothing is installed under");
    h.publish("1.0.0", true, "a = 1\n", &[]);
    h.update(&["apply"]).ok();
    h.update(&["rollback"])
        .fails_with("no release before 1.0.0 is kept");
    h.publish("1.1.0", true, "a = 1\n", &[]);
    h.update(&["apply"]).ok();
    h.update(&["rollback"]).ok();
    assert_eq!(h.current().as_deref(), Some("1.0.0"));
    let st = h.status();
    assert_eq!(st["bad"][0], "1.1.0");
    assert_eq!(st["ratchet"], "1.1.0");
    // The channel still offers 1.1.0, which is now bad.
    h.update(&["apply"]).fails_with("marked bad");
    // An operator may insist.
    h.update(&["apply", "--retry-bad"]).ok();
    assert_eq!(h.current().as_deref(), Some("1.1.0"));
}

#[test]
fn apply_specific_version_and_up_to_date() {
    let h = Host::new();
    h.publish("1.0.0", true, "a = 1\n", &[]);
    h.publish("1.5.0", true, "a = 1\n", &[]);
    h.update(&["apply", "--version", "1.0.0"]).ok();
    assert_eq!(h.current().as_deref(), Some("1.0.0"));
    h.update(&["apply"]).ok();
    assert_eq!(h.current().as_deref(), Some("1.5.0"));
    let out = h.update(&["apply", "--json"]).ok().json();
    assert_eq!(out["result"], "up-to-date");
}

#[test]
fn file_url_repository_for_air_gapped_sites() {
    let h = Host::new();
    h.publish("1.0.0", true, "a = 1\n", &[]);
    h.write_config(&format!("file://{}/", h.repo.display()), "");
    h.update(&["apply"]).ok();
    assert_eq!(h.current().as_deref(), Some("1.0.0"));
    h.update(&["verify"]).ok();
}

#[test]
fn python_http_server_as_the_repository() {
    // A real, unrelated static server: python3 -m http.server.
    let h = Host::new();
    h.publish("1.0.0", true, "a = 1\n", &[]);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let Ok(mut child) = std::process::Command::new("python3")
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--directory",
        ])
        .arg(&h.repo)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    else {
        eprintln!("python3 not installed: skipped");
        return;
    };
    let url = format!("http://127.0.0.1:{port}/");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    h.write_config(&url, "");
    let out = h.update(&["apply"]);
    let _ = child.kill();
    let _ = child.wait();
    out.ok();
    assert_eq!(h.current().as_deref(), Some("1.0.0"));
}

#[test]
fn update_scripts_run_and_a_failing_pre_swap_script_stops_the_update() {
    let h = Host::new();
    h.publish("1.0.0", true, "a = 1\n", &[]);
    h.update(&["apply"]).ok();
    // v2 ships a pre-swap script that records its environment and fails.
    let t = h.tree("2.0.0", true, "a = 1\n");
    let marker = h.path().join("script-ran");
    std::fs::write(
        t.join("bin/migrate"),
        format!("#!/bin/sh\nenv | sort > {}\nexit 7\n", marker.display()),
    )
    .unwrap();
    std::fs::set_permissions(
        t.join("bin/migrate"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    h.publish_tree(
        "2.0.0",
        &["--config", "etc/*.toml", "--pre-swap-script", "bin/migrate"],
    );
    h.update(&["apply"])
        .fails_with("pre_swap script bin/migrate failed: exit status: 7");
    assert_eq!(h.current().as_deref(), Some("1.0.0"));
    let env = std::fs::read_to_string(&marker).unwrap();
    assert!(env.contains("CHARTER_VERSION=2.0.0"), "{env}");
    assert!(env.contains("CHARTER_PREVIOUS_VERSION=1.0.0"), "{env}");
    assert!(env.contains("CHARTER_STAGE=pre_swap"), "{env}");
    // The environment is fixed: nothing inherited from the caller.
    assert!(!env.contains("CHARTER_CONFIG"), "{env}");
}

#[test]
fn two_runs_at_once_the_second_is_told() {
    let h = Host::new();
    h.publish("1.0.0", true, "a = 1\n", &[]);
    // The first run stalls mid-download while holding the lock.
    h.server.set_fault(
        &h.artifact_url_path("1.0.0"),
        charter_tests::server::Fault::StallAfter(100),
        1,
    );
    let cfg = h.config.to_str().unwrap().to_owned();
    let mut first = std::process::Command::new(charter_tests::bin("charter-update"))
        .arg("apply")
        .env("CHARTER_CONFIG", &cfg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the stalled request to start.
    for _ in 0..200 {
        if h.server
            .requests()
            .iter()
            .any(|r| r.path.ends_with(".tar.zst"))
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = h.update(&["status"]);
    let _ = first.kill();
    let _ = first.wait();
    out.fails_with("another charter-update is running (pid ");
}

#[test]
fn self_update_replaces_the_running_updater() {
    let h = Host::with_config("[self_update]\nbinary = \"bin/charter-update\"\n");
    // The running updater is a copy, so the test can watch it be replaced.
    let running = h.path().join("charter-update");
    std::fs::copy(charter_tests::bin("charter-update"), &running).unwrap();
    // The release ships "a new charter-update": the same program with a
    // marker appended (an ELF file still runs with trailing bytes).
    let t = h.tree("1.0.0", true, "a = 1\n");
    let mut new = std::fs::read(&running).unwrap();
    new.extend_from_slice(b"\ncharter-update 1.0.0 marker\n");
    std::fs::write(t.join("bin/charter-update"), &new).unwrap();
    std::fs::set_permissions(
        t.join("bin/charter-update"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    h.publish_tree("1.0.0", &[]);
    let out = std::process::Command::new(&running)
        .arg("apply")
        .env("CHARTER_CONFIG", &h.config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("charter-update replaced by"));
    assert_eq!(std::fs::read(&running).unwrap(), new);
    let v = std::process::Command::new(&running)
        .arg("--version")
        .output()
        .unwrap();
    assert!(v.status.success());
}

/// Regression (review Q31, Q32): preserved data keeps its owner, and a
/// socket or an absolute symlink in it does not block updates.
#[test]
fn preserved_data_keeps_owner_and_odd_entries_do_not_block() {
    let h = Host::new();
    h.publish("1.0.0", true, "a = 1\n", &[]);
    h.update(&["apply"]).ok();
    let var = h.root.join("opt/current/var");
    std::fs::create_dir_all(&var).unwrap();
    std::fs::write(var.join("db"), b"data").unwrap();
    std::os::unix::fs::symlink("/etc/hostname", var.join("abs-link")).unwrap();
    let _sock = std::os::unix::net::UnixListener::bind(var.join("app.sock")).unwrap();
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false);
    if root {
        std::os::unix::fs::chown(var.join("db"), Some(1000), Some(1000)).unwrap();
    }
    h.publish("1.1.0", true, "a = 1\n", &[]);
    let out = h.update(&["apply"]).ok();
    assert!(
        out.stderr.contains("not carried over: var/app.sock"),
        "{out:?}"
    );
    assert_eq!(h.installed("var/db").unwrap(), b"data");
    assert_eq!(
        std::fs::read_link(h.root.join("opt/current/var/abs-link"))
            .unwrap()
            .to_str(),
        Some("/etc/hostname")
    );
    if root {
        use std::os::unix::fs::MetadataExt;
        let md = std::fs::metadata(h.root.join("opt/current/var/db")).unwrap();
        assert_eq!((md.uid(), md.gid()), (1000, 1000));
    } else {
        eprintln!("not root: ownership part skipped (chown needs root)");
    }
}

/// `charter-update config test`: every check ok on a working host; each
/// broken piece fails its own check, with the reason, and exit status 1.
#[test]
fn config_test_reports_each_check() {
    let h = Host::new();
    h.publish("1.0.0", true, "a = 1\n", &[]);
    let out = h.update(&["config", "test", "--json"]).ok();
    let r = out.json();
    let names: Vec<&str> = r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "config",
            "secrets",
            "signature policy",
            "state",
            "paths",
            "hold",
            "rollout position",
            "trust root",
            "repository",
            "auto"
        ]
    );
    assert!(
        r["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["ok"] == true),
        "{r}"
    );
    let repo = r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "repository")
        .unwrap();
    assert!(
        repo["detail"]
            .as_str()
            .unwrap()
            .contains("offers panel 1.0.0"),
        "{r}"
    );
    let text = h.update(&["config", "test"]).ok();
    assert!(
        text.stdout
            .contains("ok     trust root       version 1 in force"),
        "{text:?}"
    );

    // The repository unreachable: only that check fails.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/", l.local_addr().unwrap())
    };
    h.write_config(&dead, "");
    let out = h.update(&["--json", "config", "test"]);
    assert_eq!(out.code, 1, "{out:?}");
    let r = out.json();
    let failed: Vec<&str> = r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["repository"], "{r}");
    // A trust root that is not one.
    h.write_config(&h.server.url(), "");
    std::fs::write(h.root.join("etc/root.json"), "{}").unwrap();
    let out = h.update(&["config", "test"]);
    assert_eq!(out.code, 1);
    assert!(out.stdout.contains("FAILED trust root"), "{out:?}");
    // A config that does not parse: the first check says where.
    std::fs::write(&h.config, "product = \"panel\"\nbogus = 1\n").unwrap();
    let out = h.update(&["config", "test"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stdout.contains("FAILED config") && out.stdout.contains("bogus"),
        "{out:?}"
    );
}

/// `version --json` on the three binaries: the same build facts (the
/// commit this checkout is at, when git is here), and for the updater the
/// trust root in force and the installed release.
#[test]
fn version_json_inventory() {
    let h = Host::new();
    h.publish("1.0.0", true, "a = 1\n", &[]);
    h.update(&["apply"]).ok();
    let u = h.update(&["version", "--json"]).ok().json();
    assert_eq!(u["build"]["name"], "charter-update");
    assert_eq!(u["build"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(u["trust_root"]["version"], 1, "{u}");
    assert_eq!(u["installed"]["current"], "1.0.0", "{u}");
    assert_eq!(u["installed"]["product"], "panel");
    let c = h.f.charter(&["--json", "version"]).ok().json();
    assert_eq!(c["build"]["name"], "charter");
    let target = u["build"]["target"].as_str().unwrap();
    assert!(target.contains("linux"), "{u}");
    for key in ["commit", "build_date", "target"] {
        assert_eq!(c["build"][key], u["build"][key], "{key}");
    }
    let head = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    match head {
        Some(head) => assert_eq!(u["build"]["commit"], head.as_str()),
        None => eprintln!("no git checkout: commit not compared"),
    }
    let date = u["build"]["build_date"].as_str().unwrap();
    assert!(
        date == "unknown" || date.parse::<jiff::Timestamp>().is_ok(),
        "{date}"
    );
    // No config: the build alone, and the reason.
    let out = h
        .update_env(
            &["version", "--json"],
            &[("CHARTER_CONFIG", "/nonexistent")],
        )
        .ok();
    let v = out.json();
    assert!(
        v["config_error"].as_str().unwrap().contains("/nonexistent"),
        "{v}"
    );
    assert!(v.get("installed").is_none());
}

/// A release with a CycloneDX SBOM: `manifest create --sbom` ships it with
/// its digest in the signed manifest, the host keeps it and
/// `charter-update sbom` prints it byte for byte; a changed SBOM in the
/// repository stops the update; a file that is not CycloneDX is refused at
/// packing, with nothing written.
#[test]
fn sbom_travels_with_the_release() {
    let h = Host::new();
    let sbom = h.path().join("panel.cdx.json");
    let doc = serde_json::json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "components": [{"type": "library", "name": "openssl", "version": "3.0.15",
                        "purl": "pkg:deb/debian/openssl@3.0.15"}],
    });
    let bytes = serde_json::to_vec_pretty(&doc).unwrap();
    std::fs::write(&sbom, &bytes).unwrap();
    h.publish(
        "1.0.0",
        true,
        "a = 1\n",
        &["--sbom", sbom.to_str().unwrap()],
    );
    let m = h.manifest("1.0.0");
    let s = m.sbom.as_ref().expect("the manifest names the SBOM");
    assert_eq!(s.name, "panel-1.0.0.cdx.json");
    assert_eq!(s.size, bytes.len() as u64);
    assert!(
        h.repo
            .join("releases/panel/1.0.0/panel-1.0.0.cdx.json")
            .is_file()
    );
    h.f.charter(&["repo", "verify", "repo"]).ok();
    h.update(&["apply"]).ok();
    let out = h.update(&["sbom"]).ok();
    assert_eq!(out.stdout.as_bytes(), bytes.as_slice());

    // 1.1.0's SBOM is changed in the repository after signing.
    std::fs::write(&sbom, &bytes).unwrap();
    h.publish(
        "1.1.0",
        true,
        "a = 1\n",
        &["--sbom", sbom.to_str().unwrap()],
    );
    let served = h.repo.join("releases/panel/1.1.0/panel-1.1.0.cdx.json");
    // Same size, one version changed: the digest catches it.
    let evil = std::fs::read_to_string(&served)
        .unwrap()
        .replace("3.0.15", "3.0.16");
    std::fs::write(&served, &evil).unwrap();
    let before = h.snapshot();
    h.update(&["apply"]).fails_with("sbom panel-1.1.0.cdx.json");
    assert_eq!(before.0, h.snapshot().0);
    assert_eq!(h.current().as_deref(), Some("1.0.0"));
    h.f.charter(&["repo", "verify", "repo"]).fails_with("");

    // Not CycloneDX: refused, nothing written.
    std::fs::write(&sbom, br#"{"spdxVersion": "SPDX-2.3"}"#).unwrap();
    h.tree("1.2.0", true, "a = 1\n");
    h.f.charter(&[
        "manifest",
        "create",
        "--product",
        "panel",
        "--version",
        "1.2.0",
        "--from",
        "trees/1.2.0",
        "--out",
        "out/1.2.0",
        "--sbom",
        sbom.to_str().unwrap(),
    ])
    .fails_with("not a CycloneDX document");
    assert!(!h.path().join("out/1.2.0").exists());
    // A release without one: said plainly.
    h.publish("1.3.0", true, "a = 1\n", &[]);
    h.update(&["sbom", "--version", "1.3.0"])
        .fails_with("has no SBOM");
}

/// Backups and SBOMs go with the releases they belong to when old
/// releases are pruned.
#[test]
fn backups_and_sboms_are_pruned_with_their_releases() {
    let h = Host::with_config("[update]\nkeep_releases = 2\n");
    let sbom = h.path().join("s.cdx.json");
    std::fs::write(&sbom, br#"{"bomFormat":"CycloneDX","specVersion":"1.5"}"#).unwrap();
    for v in ["1.0.0", "1.1.0", "1.2.0", "1.3.0"] {
        h.publish(v, true, "a = 1\n", &["--sbom", sbom.to_str().unwrap()]);
        h.update(&["apply"]).ok();
    }
    let kept = |dir: &str| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(h.root.join("state").join(dir))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let releases = installed_releases(&h);
    assert_eq!(releases, ["1.2.0", "1.3.0"]);
    assert_eq!(kept("sboms"), ["1.2.0.cdx.json", "1.3.0.cdx.json"]);
    // 1.3.0 has not been left yet: only 1.2.0's backup remains.
    assert_eq!(kept("backups"), ["1.2.0"]);
    h.update(&["sbom", "--version", "1.0.0"])
        .fails_with("has no SBOM");
}

/// Output into a pipe whose reader is gone (`... | head` that has exited)
/// ends the command quietly with status 0, never a panic.
#[test]
fn closed_stdout_is_not_a_panic() {
    use std::process::{Command, Stdio};
    let h = Host::new();
    h.publish("1.0.0", true, "a = 1\n", &[]);
    h.update(&["apply"]).ok();
    let closed = |bin: &str, args: &[&str]| {
        let mut child = Command::new(charter_tests::bin(bin))
            .args(args)
            .current_dir(h.path())
            .env("CHARTER_CONFIG", &h.config)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes away before the command writes anything.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!stderr.contains("panicked"), "{bin} {args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(0), "{bin} {args:?}: {stderr}");
    };
    closed("charter-update", &["status"]);
    closed("charter-update", &["history"]);
    closed("charter-update", &["version"]);
    closed("charter-update", &["backups"]);
    closed("charter", &["version"]);
    closed("charter-agent", &["version"]);
    closed("charter", &["key", "public", "rel1.key.pub"]);
}

/// Where root installs and keeps state must be root's alone (like sshd's
/// StrictModes): a world-writable parent stops apply and rollback with
/// nothing changed, while status still answers and config test says why.
#[test]
fn install_root_writable_by_others_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let h = Host::with_config("[service]\nrestart = [\"/bin/true\"]\n");
    h.publish("1.0.0", true, "a = 1\n", &[]);
    h.update(&["apply"]).ok();
    h.publish("2.0.0", true, "a = 2\n", &[]);
    let host_dir = h.root.clone();
    std::fs::set_permissions(&host_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let before = h.snapshot();
    h.update(&["apply"]).fails_with("writable by everyone");
    h.update(&["rollback"]).fails_with("paths.install_root");
    assert_eq!(before.0, h.snapshot().0);
    assert_eq!(h.current().as_deref(), Some("1.0.0"));
    h.update(&["status"]).ok();
    let t = h.update(&["config", "test"]);
    assert_eq!(t.code, 1, "{t:?}");
    assert!(t.stdout.contains("writable by everyone"), "{t:?}");
    std::fs::set_permissions(&host_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    h.update(&["apply"]).ok();
    assert_eq!(h.current().as_deref(), Some("2.0.0"));
}

/// Regression (SPEC §12 Q45): with keep_releases = 3, a good 1.0.0 was
/// pruned while the bad 1.2.0 was kept. Bad versions take no place and
/// go first; and the refusal says what marked a version bad.
#[test]
fn bad_release_never_takes_a_good_ones_place() {
    let h = Host::with_config("[update]\nkeep_releases = 3\n");
    let releases = || installed_releases(&h);
    for v in ["1.0.0", "1.1.0"] {
        h.publish(v, true, "a = 1\n", &[]);
        h.update(&["apply"]).ok();
    }
    h.publish("1.2.0", false, "a = 1\n", &[]);
    assert_eq!(h.update(&["apply"]).code, 3);
    assert_eq!(h.status()["bad_causes"]["1.2.0"], "health-check");
    h.update(&["apply", "--version", "1.2.0"])
        .fails_with("1.2.0 failed its health check on this host before and is marked bad");
    h.publish("1.3.0", true, "a = 1\n", &[]);
    h.update(&["apply"]).ok();
    assert_eq!(releases(), ["1.0.0", "1.1.0", "1.3.0"]);
    // A rollback asked for marks the version bad too, and says so.
    h.update(&["rollback"]).ok();
    assert_eq!(h.current().as_deref(), Some("1.1.0"));
    h.update(&["apply"])
        .fails_with("1.3.0 was rolled back on request on this host and is marked bad");
    assert_eq!(h.status()["bad_causes"]["1.3.0"], "requested");
    h.update(&["apply", "--retry-bad"]).ok();
    assert!(h.status()["bad_causes"].get("1.3.0").is_none());
}

/// The versions under `releases/`, sorted.
fn installed_releases(h: &Host) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(h.root.join("opt/releases"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}
