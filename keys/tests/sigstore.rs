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
    assert_eq!(v.identity(), Some(DEFAULT_IDENTITY));
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

// ---------------------------------------------------------------------------
// The bundles shipped in sigstore-verify's own test_data/ (found through
// `cargo metadata`, so the pinned version's copy is used wherever cargo put
// it).

fn crate_test_data() -> Option<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let manifest = meta["packages"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == "sigstore-verify")?["manifest_path"]
        .as_str()?
        .to_owned();
    let dir = Path::new(&manifest).parent()?.join("test_data");
    dir.is_dir().then_some(dir)
}

/// The message digest a message-signature bundle claims (for cases whose
/// artifact the crate does not ship).
fn claimed_digest(bundle: &[u8]) -> [u8; 32] {
    use base64::Engine as _;
    let v: serde_json::Value = serde_json::from_slice(bundle).unwrap();
    let b64 = v["messageSignature"]["messageDigest"]["digest"]
        .as_str()
        .unwrap();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
        .try_into()
        .unwrap()
}

#[test]
fn crate_test_data_bundles_pass_and_fail() {
    let Some(td) = crate_test_data() else {
        panic!("sigstore-verify's test_data/ not found through cargo metadata");
    };
    let read = |p: &str| std::fs::read(td.join(p)).unwrap();
    let production = sigstore::trusted_root(sigstore::PRODUCTION_TRUSTED_ROOT.as_bytes()).unwrap();
    let gh = "https://token.actions.githubusercontent.com";
    let oauth = "https://github.com/login/oauth";

    // cosign 3 blob bundle (v0.3, message signature), as bytes and digest.
    let bundle = read("bundles/cosign-v3-blob.sigstore.json");
    let artifact = read("bundles/cosign-v3-blob.txt");
    let who = keyless(Identity::Exact("w.vollprecht@gmail.com".into()), oauth);
    let v = sigstore::verify(&bundle, Subject::Bytes(&artifact), &who, &production).unwrap();
    assert_eq!(v.identity(), Some("w.vollprecht@gmail.com"));
    assert_eq!(v.issuer(), Some(oauth));
    assert!(v.integrated_time().is_some());
    let digest: [u8; 32] = sha2::Sha256::digest(&artifact).into();
    sigstore::verify(&bundle, Subject::Sha256(digest), &who, &production).unwrap();
    let mut changed = artifact.clone();
    changed[0] ^= 1;
    assert!(sigstore::verify(&bundle, Subject::Bytes(&changed), &who, &production).is_err());
    let email_prefix = keyless(Identity::regex("w\\.vollprecht").unwrap(), oauth);
    assert!(
        sigstore::verify(
            &bundle,
            Subject::Bytes(&artifact),
            &email_prefix,
            &production
        )
        .is_err()
    );

    // A DSSE attestation (v0.3) for a conda package, from GitHub Actions.
    let bundle = read("bundles/conda-attestation.sigstore.json");
    let artifact = read("bundles/signed-package-2.1.0-hb0f4dca_0.conda");
    let wf = "https://github.com/prefix-dev/sigstore-example/.github/workflows/action.yaml@refs/heads/main";
    let ok = |p: &Policy| sigstore::verify(&bundle, Subject::Bytes(&artifact), p, &production);
    ok(&keyless(Identity::Exact(wf.into()), gh)).unwrap();
    ok(&keyless(
        Identity::regex(r"https://github\.com/prefix-dev/.*").unwrap(),
        gh,
    ))
    .unwrap();
    // Prefix-only regexp, other repository, other issuer: refused.
    assert!(
        ok(&keyless(
            Identity::regex(r"https://github\.com/prefix-dev/sigstore-example").unwrap(),
            gh
        ))
        .is_err()
    );
    assert!(
        ok(&keyless(
            Identity::Exact(wf.replace("prefix-dev", "prefix-dew")),
            gh
        ))
        .is_err()
    );
    assert!(ok(&keyless(Identity::Exact(wf.into()), oauth)).is_err());
    let mut changed = artifact.clone();
    *changed.last_mut().unwrap() ^= 1;
    assert!(
        sigstore::verify(
            &bundle,
            Subject::Bytes(&changed),
            &keyless(Identity::Exact(wf.into()), gh),
            &production
        )
        .is_err()
    );

    // v0.2 bundle from a release workflow (digest only: the wheel is not shipped).
    let bundle = read("bundles/bundle_v3_github.whl.sigstore");
    let rel =
        "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2";
    sigstore::verify(
        &bundle,
        Subject::Sha256(claimed_digest(&bundle)),
        &keyless(Identity::Exact(rel.into()), gh),
        &production,
    )
    .unwrap();

    // Managed key bundle: the right key passes, a changed byte fails.
    let bundle = read("managed-key/bundle.sigstore.json");
    let artifact = read("managed-key/artifact.txt");
    let key = Policy::Key(read("managed-key/key.pub"));
    sigstore::verify(&bundle, Subject::Bytes(&artifact), &key, &production).unwrap();
    let mut changed = artifact.clone();
    changed[0] ^= 1;
    assert!(sigstore::verify(&bundle, Subject::Bytes(&changed), &key, &production).is_err());
    // ... and a keyless policy refuses a bundle with no certificate.
    assert!(sigstore::verify(&bundle, Subject::Bytes(&artifact), &who, &production).is_err());

    // Staging: passes against the staging root, fails against production.
    let bundle = read("sct-multi-intermediate/staging_bundle.sigstore.json");
    let staging =
        sigstore::trusted_root(&read("sct-multi-intermediate/staging_trusted_root.json")).unwrap();
    let staging_wf = keyless(
        Identity::Exact("https://github.com/sigstore/root-signing-staging/.github/workflows/custom-test.yml@refs/heads/main".into()),
        gh,
    );
    let d = Subject::Sha256(claimed_digest(&bundle));
    sigstore::verify(&bundle, d, &staging_wf, &staging).unwrap();
    let err = sigstore::verify(&bundle, d, &staging_wf, &production).unwrap_err();
    eprintln!("staging bundle against production: {err}");
    // A staging Rekor v2 bundle from sigstore-python, against production.
    let bundle = read("upstream/sigstore-python/staging-rekor-v2.txt.sigstore.json");
    let artifact = read("upstream/sigstore-python/staging-rekor-v2.txt");
    assert!(
        sigstore::verify(
            &bundle,
            Subject::Bytes(&artifact),
            &keyless(Identity::Exact("jku@goto.fi".into()), oauth),
            &production
        )
        .is_err()
    );

    // Must-fail bundles: CVE-2022-36056 (entry for another signature), no
    // certificate, no log entry, a trusted root whose CT key is wrong.
    for (name, identity, issuer, root) in [
        (
            "bundles/bundle_cve_2022_36056.txt.sigstore",
            "william@yossarian.net",
            oauth,
            None,
        ),
        ("bundles/bundle_no_cert_v1.txt.sigstore", "", oauth, None),
        ("bundles/bundle_no_log_entry.txt.sigstore", "", oauth, None),
        (
            "invalid-ct-key_fail/bundle.sigstore.json",
            DEFAULT_IDENTITY,
            gh,
            Some("invalid-ct-key_fail/trusted_root.json"),
        ),
    ] {
        let bundle = read(name);
        let root = match root {
            Some(r) => sigstore::trusted_root(&read(r)).unwrap(),
            None => sigstore::trusted_root(sigstore::PRODUCTION_TRUSTED_ROOT.as_bytes()).unwrap(),
        };
        let identity = if identity.is_empty() {
            Identity::regex(".*").unwrap()
        } else {
            Identity::Exact(identity.into())
        };
        let digest = std::panic::catch_unwind(|| claimed_digest(&bundle)).unwrap_or([0; 32]);
        let r = sigstore::verify(
            &bundle,
            Subject::Sha256(digest),
            &keyless(identity, issuer),
            &root,
        );
        assert!(r.is_err(), "{name} must fail");
    }
}

// ---------------------------------------------------------------------------
// The cosign 2.x `--bundle` format, {base64Signature, cert, rekorBundle}.

/// Rewrites a v0.1 bundle with a certificate and an inclusion promise (the
/// evidence cosign 2.x puts in its own format) into cosign 2.x's format.
fn to_legacy(bundle: &[u8]) -> serde_json::Value {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let v: serde_json::Value = serde_json::from_slice(bundle).unwrap();
    let vm = &v["verificationMaterial"];
    let der = vm["x509CertificateChain"]["certificates"][0]["rawBytes"]
        .as_str()
        .or(vm["certificate"]["rawBytes"].as_str())
        .unwrap();
    let pem = format!("-----BEGIN CERTIFICATE-----\n{der}\n-----END CERTIFICATE-----\n");
    let e = &vm["tlogEntries"][0];
    serde_json::json!({
        "base64Signature": v["messageSignature"]["signature"],
        "cert": b64.encode(pem),
        "rekorBundle": {
            "SignedEntryTimestamp": e["inclusionPromise"]["signedEntryTimestamp"],
            "Payload": {
                "body": e["canonicalizedBody"],
                "integratedTime": e["integratedTime"].as_str().unwrap().parse::<i64>().unwrap(),
                "logIndex": e["logIndex"].as_str().unwrap().parse::<i64>().unwrap(),
                "logID": hex::encode(b64.decode(e["logId"]["keyId"].as_str().unwrap()).unwrap()),
            }
        }
    })
}

#[test]
fn cosign_2_bundle_format_verifies_and_fails_like_a_bundle() {
    let Some(td) = crate_test_data() else {
        panic!("sigstore-verify's test_data/ not found through cargo metadata");
    };
    let production = sigstore::trusted_root(sigstore::PRODUCTION_TRUSTED_ROOT.as_bytes()).unwrap();
    let oauth = "https://github.com/login/oauth";
    // A real production entry with a SET, rewritten into cosign 2.x's format.
    let bundle = std::fs::read(td.join("bundles/cosign-v3-blob.sigstore.json")).unwrap();
    let artifact = std::fs::read(td.join("bundles/cosign-v3-blob.txt")).unwrap();
    let who = keyless(Identity::Exact("w.vollprecht@gmail.com".into()), oauth);
    let legacy = to_legacy(&bundle);
    let bytes = serde_json::to_vec(&legacy).unwrap();
    let v = sigstore::verify(&bytes, Subject::Bytes(&artifact), &who, &production).unwrap();
    assert_eq!(v.identity(), Some("w.vollprecht@gmail.com"));
    assert!(
        v.integrated_time().is_some(),
        "the SET authenticated the integrated time"
    );

    // Each field is checked: artifact, identity, SET, integrated time, log
    // index, signature, certificate.
    let mut changed = artifact.clone();
    changed[0] ^= 1;
    assert!(sigstore::verify(&bytes, Subject::Bytes(&changed), &who, &production).is_err());
    assert!(
        sigstore::verify(
            &bytes,
            Subject::Bytes(&artifact),
            &keyless(Identity::Exact("w.vollprecht@gmail.co".into()), oauth),
            &production
        )
        .is_err()
    );
    let tamper = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut t = legacy.clone();
        f(&mut t);
        sigstore::verify(
            &serde_json::to_vec(&t).unwrap(),
            Subject::Bytes(&artifact),
            &who,
            &production,
        )
    };
    let flip = |s: &str| {
        let mut c: Vec<char> = s.chars().collect();
        c[12] = if c[12] == 'A' { 'B' } else { 'A' };
        c.into_iter().collect::<String>()
    };
    let set = legacy["rekorBundle"]["SignedEntryTimestamp"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(tamper(&|t| t["rekorBundle"]["SignedEntryTimestamp"] = flip(&set).into()).is_err());
    assert!(
        tamper(&|t| {
            let n = t["rekorBundle"]["Payload"]["integratedTime"]
                .as_i64()
                .unwrap();
            t["rekorBundle"]["Payload"]["integratedTime"] = (n - 1).into();
        })
        .is_err()
    );
    assert!(
        tamper(&|t| {
            let n = t["rekorBundle"]["Payload"]["logIndex"].as_i64().unwrap();
            t["rekorBundle"]["Payload"]["logIndex"] = (n + 1).into();
        })
        .is_err()
    );
    let sig = legacy["base64Signature"].as_str().unwrap().to_owned();
    assert!(tamper(&|t| t["base64Signature"] = flip(&sig).into()).is_err());
    // Without the Rekor bundle (signed with --tlog-upload=false): refused
    // with a message saying so.
    let err = tamper(&|t| {
        t.as_object_mut().unwrap().remove("rekorBundle");
    })
    .unwrap_err();
    assert!(err.to_string().contains("rekorBundle"), "{err}");
    // Malformed pieces name the field.
    let err = tamper(&|t| t["cert"] = "***".into()).unwrap_err();
    assert!(err.to_string().contains("`cert`"), "{err}");
    let err = tamper(&|t| t["rekorBundle"]["Payload"]["logID"] = "abcd".into()).unwrap_err();
    assert!(err.to_string().contains("logID"), "{err}");
}
