use std::os::unix::fs::PermissionsExt;

use charter_tests::{PASS, charter, run_env, snapshot};

#[test]
fn generate_writes_encrypted_0600_key_and_public_key() {
    let d = tempfile::tempdir().unwrap();
    let out = charter(d.path(), &["key", "generate", "--out", "k.key", "--json"]).ok();
    let j = out.json();
    assert_eq!(j["encrypted"], true);
    let key_id = j["key_id"].as_str().unwrap().to_owned();
    assert_eq!(key_id.len(), 64);
    let md = std::fs::metadata(d.path().join("k.key")).unwrap();
    assert_eq!(md.permissions().mode() & 0o777, 0o600);
    let pem = std::fs::read_to_string(d.path().join("k.key")).unwrap();
    assert!(pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
    assert!(!out.stdout.contains(&pem) && !out.stderr.contains("PRIVATE"));
    // The public key and key id agree, from either file.
    let from_pub = charter(d.path(), &["key", "public", "k.key.pub", "--json"])
        .ok()
        .json();
    let from_priv = charter(d.path(), &["key", "public", "k.key", "--json"])
        .ok()
        .json();
    assert_eq!(from_pub["key_id"], key_id.as_str());
    assert_eq!(from_priv["key_id"], key_id.as_str());
}

#[test]
fn generate_never_overwrites() {
    let d = tempfile::tempdir().unwrap();
    charter(d.path(), &["key", "generate", "--out", "k.key"]).ok();
    let before = snapshot(d.path());
    charter(d.path(), &["key", "generate", "--out", "k.key"]).fails_with("already exists");
    assert_eq!(before, snapshot(d.path()));
}

#[test]
fn generate_without_passphrase_source_writes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let out = run_env(
        "charter",
        d.path(),
        &["key", "generate", "--out", "k.key"],
        &[],
    );
    let out = out.fails_with("CHARTER_PASSPHRASE");
    assert!(out.stderr.contains("--unencrypted"), "{out:?}");
    assert!(snapshot(d.path()).is_empty());
}

#[test]
fn unencrypted_key_only_when_asked_and_warned_on_use() {
    let d = tempfile::tempdir().unwrap();
    let out = charter(
        d.path(),
        &["key", "generate", "--out", "k.key", "--unencrypted"],
    )
    .ok();
    assert!(out.stderr.contains("unencrypted"), "{out:?}");
    let pem = std::fs::read_to_string(d.path().join("k.key")).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    std::fs::write(d.path().join("f"), b"x").unwrap();
    let out = charter(d.path(), &["sign-blob", "--key", "k.key", "f"]).ok();
    assert!(out.stderr.contains("not encrypted at rest"), "{out:?}");
}

#[test]
fn readable_private_key_refused_with_mode_and_fix() {
    let d = tempfile::tempdir().unwrap();
    charter(d.path(), &["key", "generate", "--out", "k.key"]).ok();
    std::fs::set_permissions(
        d.path().join("k.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    std::fs::write(d.path().join("f"), b"x").unwrap();
    let out = charter(d.path(), &["sign-blob", "--key", "k.key", "f"]);
    assert_eq!(
        out.stderr.trim_end(),
        "charter: error: k.key has mode 0644: a file holding a secret must not be accessible by group or others; run `chmod 600 k.key`"
    );
    assert_eq!(out.code, 1);
}

#[test]
fn wrong_passphrase_is_a_clear_error_without_secrets() {
    let d = tempfile::tempdir().unwrap();
    charter(d.path(), &["key", "generate", "--out", "k.key"]).ok();
    std::fs::write(d.path().join("f"), b"x").unwrap();
    let out = run_env(
        "charter",
        d.path(),
        &["sign-blob", "--key", "k.key", "f"],
        &[("CHARTER_PASSPHRASE", "not the passphrase")],
    );
    assert_eq!(
        out.stderr.trim_end(),
        "charter: error: cannot decrypt k.key: wrong passphrase or corrupted key file"
    );
    assert!(!out.stderr.contains("not the passphrase") && !out.stderr.contains(PASS));
}

#[test]
fn passphrase_file_must_be_private() {
    let d = tempfile::tempdir().unwrap();
    let pf = d.path().join("pass.txt");
    std::fs::write(&pf, format!("{PASS}\n")).unwrap();
    std::fs::set_permissions(&pf, std::fs::Permissions::from_mode(0o600)).unwrap();
    run_env(
        "charter",
        d.path(),
        &[
            "--passphrase-file",
            "pass.txt",
            "key",
            "generate",
            "--out",
            "k.key",
        ],
        &[],
    )
    .ok();
    // The same passphrase through the environment opens it.
    std::fs::write(d.path().join("f"), b"x").unwrap();
    charter(d.path(), &["sign-blob", "--key", "k.key", "f"]).ok();
    std::fs::set_permissions(&pf, std::fs::Permissions::from_mode(0o644)).unwrap();
    run_env(
        "charter",
        d.path(),
        &[
            "--passphrase-file",
            "pass.txt",
            "sign-blob",
            "--key",
            "k.key",
            "f",
        ],
        &[],
    )
    .fails_with("pass.txt has mode 0644");
}
