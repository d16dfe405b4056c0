//! Sigstore bundle verification against the sigstore-conformance cases in
//! shared/fixtures/sigstore (read in place; skipped with a message when
//! ../shared is absent): every must-pass case passes with its identity and
//! issuer, every `_fail` case fails, each with the artifact as bytes and as
//! a sha256 digest; plus wrong identities, issuers, prefix-only regular
//! expressions and changed artifacts.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use charter_keys::sigstore::{self, Identity, Policy, Subject};
use sha2::Digest;

const DEFAULT_IDENTITY: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const DEFAULT_ISSUER: &str = "https://token.actions.githubusercontent.com";

fn fixtures() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/sigstore");
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!(
            "{} is absent: Sigstore conformance cases skipped",
            p.display()
        );
        None
    }
}

fn read_trim(p: &Path) -> Option<String> {
    std::fs::read_to_string(p).ok().map(|s| s.trim().to_owned())
}

struct Case {
    name: String,
    bundle: Vec<u8>,
    artifact: Vec<u8>,
    policy: Policy,
    root: Vec<u8>,
}

fn cases(base: &Path) -> Vec<Case> {
    let production = std::fs::read(base.join("trusted_root.production.json")).unwrap();
    let default_artifact = std::fs::read(base.join("bundle-verify/a.txt")).unwrap();
    let mut out = Vec::new();
    let mut dirs: Vec<_> = std::fs::read_dir(base.join("bundle-verify"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .collect();
    dirs.sort_by_key(|e| e.file_name());
    for d in dirs {
        let p = d.path();
        let policy = match std::fs::read(p.join("key.pub")) {
            Ok(pem) => Policy::Key(pem),
            Err(_) => Policy::Keyless {
                identity: Identity::Exact(
                    read_trim(&p.join("identity")).unwrap_or_else(|| DEFAULT_IDENTITY.into()),
                ),
                issuer: read_trim(&p.join("issuer")).unwrap_or_else(|| DEFAULT_ISSUER.into()),
            },
        };
        out.push(Case {
            name: d.file_name().to_string_lossy().into_owned(),
            bundle: std::fs::read(p.join("bundle.sigstore.json")).unwrap(),
            artifact: std::fs::read(p.join("artifact"))
                .unwrap_or_else(|_| default_artifact.clone()),
            policy,
            root: std::fs::read(p.join("trusted_root.json")).unwrap_or_else(|_| production.clone()),
        });
    }
    out
}

#[test]
fn conformance_cases_pass_and_fail_as_labelled() {
    let Some(base) = fixtures() else { return };
    let mut checked = 0;
    let mut wrong = Vec::new();
    for c in cases(&base) {
        let root = sigstore::trusted_root(&c.root).unwrap();
        let must_pass = !c.name.ends_with("_fail");
        let digest: [u8; 32] = sha2::Sha256::digest(&c.artifact).into();
        for (mode, subject) in [
            ("bytes", Subject::Bytes(&c.artifact)),
            ("digest", Subject::Sha256(digest)),
        ] {
            let r = sigstore::verify(&c.bundle, subject, &c.policy, &root);
            checked += 1;
            if r.is_ok() != must_pass {
                wrong.push(format!(
                    "{} ({mode}): {}",
                    c.name,
                    match r {
                        Ok(_) => "verified but must fail".to_string(),
                        Err(e) => format!("must pass: {e}"),
                    }
                ));
            }
        }
    }
    assert!(checked >= 60, "only {checked} checks ran");
    assert!(
        wrong.is_empty(),
        "{} case(s) wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

fn happy(base: &Path) -> (Vec<u8>, Vec<u8>, sigstore_verify::trust_root::TrustedRoot) {
    let c = base.join("bundle-verify/happy-path-v0.3-new-mediaType");
    let bundle = std::fs::read(c.join("bundle.sigstore.json")).unwrap();
    let artifact = std::fs::read(c.join("artifact"))
        .unwrap_or_else(|_| std::fs::read(base.join("bundle-verify/a.txt")).unwrap());
    let root =
        sigstore::trusted_root(&std::fs::read(base.join("trusted_root.production.json")).unwrap())
            .unwrap();
    (bundle, artifact, root)
}

fn keyless(identity: Identity, issuer: &str) -> Policy {
    Policy::Keyless {
        identity,
        issuer: issuer.into(),
    }
}

#[test]
fn wrong_identity_issuer_prefix_regex_and_changed_artifact_fail() {
    let Some(base) = fixtures() else { return };
    let (bundle, artifact, root) = happy(&base);
    let ok = |p: &Policy, a: &[u8]| sigstore::verify(&bundle, Subject::Bytes(a), p, &root);
    // The happy path passes, with the exact identity and with a full regex.
    ok(
        &keyless(Identity::Exact(DEFAULT_IDENTITY.into()), DEFAULT_ISSUER),
        &artifact,
    )
    .unwrap();
    let full =
        Identity::regex(r"https://github\.com/sigstore-conformance/.*@refs/heads/main").unwrap();
    let v = ok(&keyless(full, DEFAULT_ISSUER), &artifact).unwrap();
    assert_eq!(v.identity.as_deref(), Some(DEFAULT_IDENTITY));
    // Wrong identity.
    let e = ok(
        &keyless(
            Identity::Exact("https://github.com/evil/repo".into()),
            DEFAULT_ISSUER,
        ),
        &artifact,
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("Sigstore bundle not verified"),
        "{e}"
    );
    // Wrong issuer.
    assert!(
        ok(
            &keyless(
                Identity::Exact(DEFAULT_IDENTITY.into()),
                "https://accounts.google.com"
            ),
            &artifact
        )
        .is_err()
    );
    // A regex that only matches a prefix is refused: it is anchored.
    let prefix = Identity::regex(r"https://github\.com/sigstore-conformance").unwrap();
    let e = ok(&keyless(prefix, DEFAULT_ISSUER), &artifact).unwrap_err();
    assert!(e.to_string().contains("does not match"), "{e}");
    // A changed artifact byte.
    let mut changed = artifact.clone();
    changed[0] ^= 1;
    assert!(
        ok(
            &keyless(Identity::Exact(DEFAULT_IDENTITY.into()), DEFAULT_ISSUER),
            &changed
        )
        .is_err()
    );
}

#[test]
fn oversized_and_malformed_bundles_are_refused() {
    let root = sigstore::trusted_root(sigstore::PRODUCTION_TRUSTED_ROOT.as_bytes()).unwrap();
    let p = keyless(Identity::Exact(DEFAULT_IDENTITY.into()), DEFAULT_ISSUER);
    let big = vec![b' '; (sigstore::MAX_BUNDLE_BYTES + 1) as usize];
    assert!(matches!(
        sigstore::verify(&big, Subject::Bytes(b"x"), &p, &root),
        Err(charter_keys::Error::TooLarge { .. })
    ));
    assert!(matches!(
        sigstore::verify(b"{not json", Subject::Bytes(b"x"), &p, &root),
        Err(charter_keys::Error::Malformed { .. })
    ));
}
