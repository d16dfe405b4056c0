use std::process::Command;

use charter_tests::{charter, snapshot};

fn openssl(dir: &std::path::Path, args: &[&str]) -> Option<std::process::Output> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(out)
}

#[test]
fn sign_and_verify_blob_round_trip_and_tamper() {
    let d = tempfile::tempdir().unwrap();
    charter(d.path(), &["key", "generate", "--out", "k.key"]).ok();
    std::fs::write(d.path().join("f"), b"artifact").unwrap();
    let sig = charter(
        d.path(),
        &[
            "sign-blob",
            "--key",
            "k.key",
            "--output-signature",
            "f.sig",
            "f",
        ],
    )
    .ok();
    assert_eq!(
        sig.stdout.trim(),
        std::fs::read_to_string(d.path().join("f.sig"))
            .unwrap()
            .trim()
    );
    charter(
        d.path(),
        &[
            "verify-blob",
            "--key",
            "k.key.pub",
            "--signature",
            "f.sig",
            "f",
        ],
    )
    .ok();
    std::fs::write(d.path().join("f"), b"artifacT").unwrap();
    let out = charter(
        d.path(),
        &[
            "verify-blob",
            "--key",
            "k.key.pub",
            "--signature",
            "f.sig",
            "f",
        ],
    );
    assert!(
        out.stderr.starts_with(
            "charter: error: f is not verified: signature does not verify against key "
        ),
        "{out:?}"
    );
    assert_eq!(out.code, 1);
}

#[test]
fn large_file_points_at_prehash_which_streams() {
    let d = tempfile::tempdir().unwrap();
    charter(d.path(), &["key", "generate", "--out", "k.key"]).ok();
    // Sparse: 300 MiB of zeros, above the 256 MiB pure-Ed25519 cap.
    let f = std::fs::File::create(d.path().join("big")).unwrap();
    f.set_len(300 << 20).unwrap();
    charter(d.path(), &["sign-blob", "--key", "k.key", "big"])
        .fails_with("use --prehash for larger files");
    let sig = charter(
        d.path(),
        &["sign-blob", "--prehash", "--key", "k.key", "big"],
    )
    .ok();
    std::fs::write(d.path().join("big.sig"), sig.stdout).unwrap();
    charter(
        d.path(),
        &[
            "verify-blob",
            "--prehash",
            "--key",
            "k.key.pub",
            "--signature",
            "big.sig",
            "big",
        ],
    )
    .ok();
    // A prehash signature is not a pure one.
    charter(
        d.path(),
        &[
            "verify-blob",
            "--key",
            "k.key.pub",
            "--signature",
            "big.sig",
            "big",
        ],
    )
    .fails_with("use --prehash");
}

#[test]
fn malformed_signature_file_is_named() {
    let d = tempfile::tempdir().unwrap();
    charter(d.path(), &["key", "generate", "--out", "k.key"]).ok();
    std::fs::write(d.path().join("f"), b"x").unwrap();
    std::fs::write(d.path().join("bad.sig"), b"not base64 at all!").unwrap();
    let before = snapshot(d.path());
    charter(
        d.path(),
        &[
            "verify-blob",
            "--key",
            "k.key.pub",
            "--signature",
            "bad.sig",
            "f",
        ],
    )
    .fails_with("cannot read the signature in bad.sig");
    assert_eq!(before, snapshot(d.path()));
}

#[test]
fn openssl_interop_both_ways_through_the_cli() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("f"), b"interop bytes").unwrap();
    if openssl(
        d.path(),
        &["genpkey", "-algorithm", "ed25519", "-out", "o.key"],
    )
    .is_none()
    {
        eprintln!("openssl not installed: skipped");
        return;
    }
    std::fs::set_permissions(
        d.path().join("o.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    openssl(
        d.path(),
        &["pkey", "-in", "o.key", "-pubout", "-out", "o.pub"],
    );
    // openssl signs, charter verifies (raw 64-byte signature file).
    openssl(
        d.path(),
        &[
            "pkeyutl", "-sign", "-rawin", "-inkey", "o.key", "-in", "f", "-out", "o.sig",
        ],
    );
    charter(
        d.path(),
        &["verify-blob", "--key", "o.pub", "--signature", "o.sig", "f"],
    )
    .ok();
    // charter signs with openssl's key; openssl verifies.
    let b64 = charter(d.path(), &["sign-blob", "--key", "o.key", "f"])
        .ok()
        .stdout;
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .unwrap();
    std::fs::write(d.path().join("c.sig"), raw).unwrap();
    let out = openssl(
        d.path(),
        &[
            "pkeyutl", "-verify", "-rawin", "-pubin", "-inkey", "o.pub", "-in", "f", "-sigfile",
            "c.sig",
        ],
    )
    .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("Signature Verified Successfully"));
    // charter's own key file, encrypted, opened by openssl.
    charter(d.path(), &["key", "generate", "--out", "c.key"]).ok();
    openssl(
        d.path(),
        &[
            "pkey",
            "-in",
            "c.key",
            "-passin",
            &format!("pass:{}", charter_tests::PASS),
            "-noout",
        ],
    );
}

fn conformance() -> Option<std::path::PathBuf> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/sigstore");
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!("../shared absent: cosign CLI tests skipped");
        None
    }
}

const ID: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const ISSUER: &str = "https://token.actions.githubusercontent.com";

#[test]
fn verify_blob_with_a_cosign_bundle_like_cosign() {
    let Some(base) = conformance() else { return };
    let d = tempfile::tempdir().unwrap();
    let case = base.join("bundle-verify/happy-path-v0.3-new-mediaType");
    let bundle = case.join("bundle.sigstore.json");
    let artifact = if case.join("artifact").exists() {
        case.join("artifact")
    } else {
        base.join("bundle-verify/a.txt")
    };
    let (b, a) = (bundle.to_str().unwrap(), artifact.to_str().unwrap());
    let root = base.join("trusted_root.production.json");
    let r = root.to_str().unwrap();
    let out = charter(
        d.path(),
        &[
            "verify-blob",
            "--bundle",
            b,
            "--certificate-identity",
            ID,
            "--certificate-oidc-issuer",
            ISSUER,
            "--trusted-root",
            r,
            a,
        ],
    )
    .ok();
    assert!(out.stdout.contains("Verified OK: signed by"), "{out:?}");
    // The built-in public-good root works too, and sha256:<hex> in place of the file.
    let digest =
        String::from_utf8(Command::new("sha256sum").arg(a).output().unwrap().stdout).unwrap();
    let digest = format!("sha256:{}", digest.split_whitespace().next().unwrap());
    charter(
        d.path(),
        &[
            "verify-blob",
            "--bundle",
            b,
            "--certificate-identity-regexp",
            r"https://github\.com/sigstore-conformance/.*",
            "--certificate-oidc-issuer",
            ISSUER,
            &digest,
        ],
    )
    .ok();
    // A regexp matching only a prefix, a wrong issuer, a changed file: refused.
    charter(
        d.path(),
        &[
            "verify-blob",
            "--bundle",
            b,
            "--certificate-identity-regexp",
            "https://github.com/sigstore-conformance",
            "--certificate-oidc-issuer",
            ISSUER,
            a,
        ],
    )
    .fails_with("does not match");
    charter(
        d.path(),
        &[
            "verify-blob",
            "--bundle",
            b,
            "--certificate-identity",
            ID,
            "--certificate-oidc-issuer",
            "https://accounts.google.com",
            a,
        ],
    )
    .fails_with("is not verified: Sigstore bundle not verified");
    std::fs::write(d.path().join("changed"), b"changed\n").unwrap();
    charter(
        d.path(),
        &[
            "verify-blob",
            "--bundle",
            b,
            "--certificate-identity",
            ID,
            "--certificate-oidc-issuer",
            ISSUER,
            "changed",
        ],
    )
    .fails_with("changed is not verified");
    charter(
        d.path(),
        &[
            "verify-blob",
            "--bundle",
            b,
            "--certificate-oidc-issuer",
            ISSUER,
            a,
        ],
    )
    .fails_with("pass --certificate-identity");
}

#[test]
fn verify_blob_with_a_managed_key_bundle() {
    let Some(base) = conformance() else { return };
    let d = tempfile::tempdir().unwrap();
    let case = base.join("bundle-verify/managed-key-and-trusted-root");
    let artifact = if case.join("artifact").exists() {
        case.join("artifact")
    } else {
        base.join("bundle-verify/a.txt")
    };
    let p = |x: &std::path::Path| x.to_str().unwrap().to_owned();
    charter(
        d.path(),
        &[
            "verify-blob",
            "--bundle",
            &p(&case.join("bundle.sigstore.json")),
            "--key",
            &p(&case.join("key.pub")),
            "--trusted-root",
            &p(&case.join("trusted_root.json")),
            &p(&artifact),
        ],
    )
    .ok();
}

/// `cosign sign-blob --key` with an ECDSA P-256 key prints base64 of a DER
/// signature over SHA-256 of the file; openssl makes exactly that.
#[test]
fn verify_blob_with_an_ecdsa_key_signature_like_cosign() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("f"), b"release tarball bytes").unwrap();
    if openssl(
        d.path(),
        &[
            "ecparam",
            "-genkey",
            "-name",
            "prime256v1",
            "-noout",
            "-out",
            "ec.key",
        ],
    )
    .is_none()
    {
        eprintln!("openssl not installed: skipped");
        return;
    }
    openssl(
        d.path(),
        &["ec", "-in", "ec.key", "-pubout", "-out", "ec.pub"],
    );
    openssl(
        d.path(),
        &["dgst", "-sha256", "-sign", "ec.key", "-out", "sig.der", "f"],
    );
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD
        .encode(std::fs::read(d.path().join("sig.der")).unwrap());
    std::fs::write(d.path().join("f.sig"), format!("{b64}\n")).unwrap();
    charter(
        d.path(),
        &[
            "verify-blob",
            "--key",
            "ec.pub",
            "--signature",
            "f.sig",
            "f",
        ],
    )
    .ok();
    std::fs::write(d.path().join("f"), b"release tarball bytez").unwrap();
    charter(
        d.path(),
        &[
            "verify-blob",
            "--key",
            "ec.pub",
            "--signature",
            "f.sig",
            "f",
        ],
    )
    .fails_with("f is not verified");
}

/// Plain artifacts published the way many projects do: the tarball, its
/// `.sha256` sidecar (or a `checksums.txt`) and a cosign bundle over the
/// sidecar. `verify-blob --sha256-file` checks the bundle over the sidecar,
/// then the file against it.
#[test]
fn plain_artifact_with_a_signed_checksum_sidecar() {
    use charter_tests::sigstore::TestSigstore;
    use sha2::Digest as _;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sg = TestSigstore::new();
    std::fs::write(d.join("trusted_root.json"), sg.trusted_root()).unwrap();
    let wf = "https://github.com/acme/panel/.github/workflows/release.yml@refs/tags/v2.0.0";
    let gh = "https://token.actions.githubusercontent.com";
    std::fs::write(d.join("panel-2.0.0.tar.gz"), b"the tarball bytes").unwrap();
    std::fs::write(d.join("tools-2.0.0.tar.gz"), b"another artifact").unwrap();
    let sum = |b: &[u8]| hex::encode(sha2::Sha256::digest(b));
    let one = format!("{}  panel-2.0.0.tar.gz\n", sum(b"the tarball bytes"));
    std::fs::write(d.join("panel-2.0.0.tar.gz.sha256"), &one).unwrap();
    let all = format!("{one}{}  tools-2.0.0.tar.gz\n", sum(b"another artifact"));
    std::fs::write(d.join("checksums.txt"), &all).unwrap();
    std::fs::write(
        d.join("one.sigstore.json"),
        sg.sign(one.as_bytes(), wf, gh).bundle,
    )
    .unwrap();
    std::fs::write(
        d.join("all.sigstore.json"),
        sg.sign(all.as_bytes(), wf, gh).legacy,
    )
    .unwrap();
    let verify = |bundle: &str, sidecar: &str, file: &str| {
        charter(
            d,
            &[
                "verify-blob",
                "--bundle",
                bundle,
                "--sha256-file",
                sidecar,
                "--certificate-identity-regexp",
                r"https://github\.com/acme/panel/.*",
                "--certificate-oidc-issuer",
                gh,
                "--trusted-root",
                "trusted_root.json",
                file,
            ],
        )
    };
    let out = verify(
        "one.sigstore.json",
        "panel-2.0.0.tar.gz.sha256",
        "panel-2.0.0.tar.gz",
    )
    .ok();
    assert!(out.stdout.contains(&format!("signed by {wf}")), "{out:?}");
    verify("all.sigstore.json", "checksums.txt", "tools-2.0.0.tar.gz").ok();
    verify("all.sigstore.json", "checksums.txt", "panel-2.0.0.tar.gz").ok();
    // The artifact changed: its digest is not the listed one.
    std::fs::write(d.join("panel-2.0.0.tar.gz"), b"the tarball bytez").unwrap();
    verify(
        "one.sigstore.json",
        "panel-2.0.0.tar.gz.sha256",
        "panel-2.0.0.tar.gz",
    )
    .fails_with("lists");
    // The sidecar changed to match: the bundle no longer verifies.
    std::fs::write(
        d.join("panel-2.0.0.tar.gz.sha256"),
        format!("{}  panel-2.0.0.tar.gz\n", sum(b"the tarball bytez")),
    )
    .unwrap();
    verify(
        "one.sigstore.json",
        "panel-2.0.0.tar.gz.sha256",
        "panel-2.0.0.tar.gz",
    )
    .fails_with("panel-2.0.0.tar.gz.sha256 is not verified");
    // A file the checksums do not list.
    std::fs::write(d.join("extra.tar.gz"), b"x").unwrap();
    verify("all.sigstore.json", "checksums.txt", "extra.tar.gz")
        .fails_with("no line for extra.tar.gz");
}
