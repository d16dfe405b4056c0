//! Integration tests for the keys crate: test vectors, key files, DSSE
//! thresholds, trust-root rotation and openssl interop. One binary with
//! modules, as the house style asks.
#![cfg(feature = "sign")]
#![allow(clippy::unwrap_used)]

mod support {
    use charter_keys::dsse::{Envelope, PAYLOAD_ROOT};
    use charter_keys::root::RootDocument;
    use charter_keys::secret::{SecretKey, Signer};
    use charter_keys::{Limits, PublicKey, Role};
    use jiff::Timestamp;

    pub fn key() -> SecretKey {
        SecretKey::generate().unwrap()
    }

    pub fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// A root where each role has its own keys and threshold.
    pub fn root_doc(
        version: u64,
        expires: &str,
        root: (&[&SecretKey], u32),
        others: (&[&SecretKey], u32),
    ) -> RootDocument {
        let pubs = |ks: &[&SecretKey]| {
            ks.iter()
                .map(|k| k.public().clone())
                .collect::<Vec<PublicKey>>()
        };
        let r = pubs(root.0);
        let o = pubs(others.0);
        RootDocument::build(
            version,
            ts(expires),
            &[
                (Role::Root, &r, root.1),
                (Role::Release, &o, others.1),
                (Role::Channel, &o, others.1),
                (Role::License, &o, others.1),
            ],
            &Limits::default(),
        )
        .unwrap()
    }

    pub fn sign_root(doc: &RootDocument, signers: &[&SecretKey]) -> Vec<u8> {
        let mut env = Envelope::new_unsigned(PAYLOAD_ROOT, doc.to_payload());
        for s in signers {
            env.sign(*s as &dyn Signer).unwrap();
        }
        env.to_json()
    }
}

mod vectors {
    use charter_keys::secret::{SecretKey, Signer};
    use charter_keys::{PublicKey, Signature};
    use sha2::Digest;

    fn unhex<const N: usize>(s: &str) -> [u8; N] {
        let mut out = [0u8; N];
        hex::decode_to_slice(s, &mut out).unwrap();
        out
    }

    /// RFC 8032 §7.1, TESTs 1 to 3: seed -> public key, deterministic
    /// signature, and strict verification.
    #[test]
    fn rfc8032_ed25519_vectors() {
        let cases: [(&str, &str, &str, &str); 3] = [
            (
                "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
                "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
                "",
                "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
            ),
            (
                "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
                "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
                "72",
                "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
            ),
            (
                "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
                "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
                "af82",
                "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
            ),
        ];
        for (seed, public, msg, sig) in cases {
            let key = SecretKey::from_seed(&unhex::<32>(seed)).unwrap();
            assert_eq!(
                key.public().as_raw(),
                &unhex::<32>(public),
                "public key of seed {seed}"
            );
            let msg = hex::decode(msg).unwrap();
            let expected = Signature(unhex::<64>(sig));
            assert_eq!(
                key.sign(&msg).unwrap(),
                expected,
                "signature for seed {seed}"
            );
            let pk = PublicKey::from_raw(&unhex::<32>(public)).unwrap();
            pk.verify_strict(&msg, &expected).unwrap();
            let mut tampered = msg.clone();
            tampered.push(0);
            assert!(pk.verify_strict(&tampered, &expected).is_err());
        }
    }

    /// RFC 8032 §7.3, TEST abc: Ed25519ph.
    #[test]
    fn rfc8032_ed25519ph_vector() {
        let key = SecretKey::from_seed(&unhex::<32>(
            "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
        ))
        .unwrap();
        assert_eq!(
            key.public().as_raw(),
            &unhex::<32>("ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf")
        );
        let expected = Signature(unhex::<64>(
            "98a70222f0b8121aa9d30f813d683f809e462b469c7ff87639499bb94e6dae4131f85042463c2a355a2003d062adf5aaa10b8c61e636062aaad11c2a26083406",
        ));
        let h = sha2::Sha512::new_with_prefix(b"abc");
        assert_eq!(key.sign_prehashed(h.clone(), None).unwrap(), expected);
        key.public()
            .verify_prehashed_strict(h, None, &expected)
            .unwrap();
    }

    /// A signature whose S is not reduced (S + L) verifies under lax
    /// checking in some libraries; strict verification must refuse it.
    #[test]
    fn non_canonical_signature_refused() {
        let key = SecretKey::from_seed(&[7u8; 32]).unwrap();
        let sig = key.sign(b"msg").unwrap();
        // L, the group order, little-endian.
        let l: [u8; 32] = unhex("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010");
        let mut s = [0u8; 32];
        s.copy_from_slice(&sig.0[32..]);
        let mut carry = 0u16;
        for i in 0..32 {
            let v = u16::from(s[i]) + u16::from(l[i]) + carry;
            s[i] = v as u8;
            carry = v >> 8;
        }
        let mut malleated = sig;
        malleated.0[32..].copy_from_slice(&s);
        assert!(key.public().verify_strict(b"msg", &malleated).is_err());
    }

    /// Small-order public keys are refused at parse time.
    #[test]
    fn small_order_key_refused() {
        // The identity point (y = 1) has order 1.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(PublicKey::from_raw(&identity).is_err());
    }

    /// The key id is sha256 of the SPKI DER, which openssl can recompute.
    #[test]
    fn key_id_is_sha256_of_spki_der() {
        let key = SecretKey::from_seed(&[1u8; 32]).unwrap();
        let der = key.public().to_spki_der();
        let id = hex::encode(sha2::Sha256::digest(der));
        assert_eq!(key.public().key_id().to_string(), id);
        let again = PublicKey::from_pem(&key.public().to_pem()).unwrap();
        assert_eq!(again.key_id(), key.public().key_id());
    }
}

mod keyfile {
    use std::os::unix::fs::PermissionsExt;

    use charter_keys::secret::{Protection, SecretKey};
    use charter_keys::{Error, Limits};
    use zeroize::Zeroizing;

    fn pass(p: &str) -> impl FnOnce() -> charter_keys::Result<Zeroizing<Vec<u8>>> + '_ {
        move || Ok(Zeroizing::new(p.as_bytes().to_vec()))
    }

    #[test]
    fn encrypted_round_trip_and_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        let key = SecretKey::generate().unwrap();
        key.write_file(&path, Protection::Passphrase(b"hunter2"))
            .unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"),
            "{text}"
        );
        let loaded = SecretKey::read_file(&path, &Limits::default(), pass("hunter2")).unwrap();
        assert!(loaded.was_encrypted);
        assert_eq!(loaded.key.public(), key.public());
        let wrong = SecretKey::read_file(&path, &Limits::default(), pass("nope"));
        assert!(matches!(wrong, Err(Error::WrongPassphrase { .. })));
    }

    #[test]
    fn existing_file_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        std::fs::write(&path, b"precious").unwrap();
        let key = SecretKey::generate().unwrap();
        assert!(
            key.write_file(&path, Protection::InsecureUnencrypted)
                .is_err()
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"precious");
    }

    #[test]
    fn group_readable_key_refused_with_mode_and_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        SecretKey::generate()
            .unwrap()
            .write_file(&path, Protection::InsecureUnencrypted)
            .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = SecretKey::read_file(&path, &Limits::default(), pass("x"))
            .err()
            .unwrap();
        let msg = err.to_string();
        assert!(matches!(
            err,
            Error::InsecurePermissions { mode: 0o640, .. }
        ));
        assert!(
            msg.contains("0640") && msg.contains("chmod 600") && msg.contains("k.pem"),
            "{msg}"
        );
    }

    #[test]
    fn unencrypted_key_loads_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        let key = SecretKey::generate().unwrap();
        key.write_file(&path, Protection::InsecureUnencrypted)
            .unwrap();
        let loaded = SecretKey::read_file(&path, &Limits::default(), || {
            panic!("no passphrase needed for a plain key")
        })
        .unwrap();
        assert!(!loaded.was_encrypted);
        assert_eq!(loaded.key.public(), key.public());
    }

    #[test]
    fn empty_passphrase_refused() {
        let key = SecretKey::generate().unwrap();
        assert!(key.to_pem(Protection::Passphrase(b"")).is_err());
    }

    #[test]
    fn public_key_given_where_private_expected() {
        let key = SecretKey::generate().unwrap();
        let err = SecretKey::from_pem(
            &key.public().to_pem(),
            std::path::Path::new("pub.pem"),
            &Limits::default(),
            pass("x"),
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("public key"), "{err}");
    }

    #[test]
    fn expensive_kdf_refused_before_work() {
        let key = SecretKey::generate().unwrap();
        let pem = key.to_pem(Protection::Passphrase(b"pw")).unwrap();
        // The default file uses scrypt N = 2^14, r = 8 (16 MiB); a limit of
        // 1 MiB must refuse it without asking for the passphrase.
        let limits = Limits {
            max_scrypt_memory: 1 << 20,
            ..Limits::default()
        };
        let err = SecretKey::from_pem(&pem, std::path::Path::new("k.pem"), &limits, || {
            panic!("passphrase must not be asked for")
        })
        .err()
        .unwrap();
        assert!(matches!(err, Error::KdfTooExpensive { .. }), "{err}");
    }

    /// Regression (fuzz/regressions/key_pem-scrypt-n-zero): scrypt N = 0
    /// made the KDF library panic; it is refused as invalid.
    #[test]
    fn scrypt_cost_zero_refused_not_panicking() {
        let pem = "-----BEGIN ENCRYPTED PRIVATE KEY-----\n\
MGIwTgYJKoZIhvcNAQUNMEEwIAYJKwYBBAHaRwQLMBMECAAAAAAAAAAAAgEAAgEI\n\
AgEBMB0GCWCGSAFlAwQBKgQQAAAAAAAAAAAAAAAAAAAAAAQQAAAAAAAAAAAAAAAA\n\
AAAAAA==\n\
-----END ENCRYPTED PRIVATE KEY-----\n";
        let err = SecretKey::from_pem(
            pem,
            std::path::Path::new("k.pem"),
            &Limits::default(),
            pass("x"),
        )
        .err()
        .unwrap();
        assert!(
            err.to_string().contains("invalid scrypt parameters N=0"),
            "{err}"
        );
    }

    #[test]
    fn oversized_key_file_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.pem");
        std::fs::write(&path, vec![b'A'; 70_000]).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = SecretKey::read_file(&path, &Limits::default(), pass("x"))
            .err()
            .unwrap();
        assert!(matches!(err, Error::FileTooLarge { .. }), "{err}");
    }
}

mod threshold {
    use super::support::*;
    use charter_keys::dsse::{Envelope, PAYLOAD_LICENSE, PAYLOAD_MANIFEST};
    use charter_keys::root::VerifiedRoot;
    use charter_keys::secret::Signer;
    use charter_keys::{Error, Limits, Role};

    fn setup() -> (
        VerifiedRoot,
        [charter_keys::secret::SecretKey; 3],
        charter_keys::secret::SecretKey,
    ) {
        let root_key = key();
        let (a, b, c) = (key(), key(), key());
        let lic = key();
        let r = root_key.public().clone();
        let rel = [a.public().clone(), b.public().clone(), c.public().clone()];
        let l = [lic.public().clone()];
        let doc = charter_keys::root::RootDocument::build(
            1,
            ts("2100-01-01T00:00:00Z"),
            &[
                (Role::Root, std::slice::from_ref(&r), 1),
                (Role::Release, &rel, 2),
                (Role::Channel, &rel, 1),
                (Role::License, &l, 1),
            ],
            &Limits::default(),
        )
        .unwrap();
        let bytes = sign_root(&doc, &[&root_key]);
        let root = VerifiedRoot::from_trusted(&bytes, &Limits::default()).unwrap();
        (root, [a, b, c], lic)
    }

    fn envelope(signers: &[&dyn Signer]) -> Envelope {
        let mut env = Envelope::new_unsigned(PAYLOAD_MANIFEST, b"{\"x\":1}".to_vec());
        for s in signers {
            env.sign(*s).unwrap();
        }
        // Round-trip through bytes, as a host would see it.
        Envelope::from_slice(&env.to_json(), &Limits::default()).unwrap()
    }

    #[test]
    fn two_of_two_passes() {
        let (root, [a, b, _], _) = setup();
        let env = envelope(&[&a, &b]);
        let v = root
            .verify_envelope(&env, PAYLOAD_MANIFEST, Role::Release)
            .unwrap();
        assert_eq!(v.payload(), b"{\"x\":1}");
        assert_eq!(v.signers().len(), 2);
    }

    #[test]
    fn one_of_two_fails() {
        let (root, [a, ..], _) = setup();
        let err = root
            .verify_envelope(&envelope(&[&a]), PAYLOAD_MANIFEST, Role::Release)
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::ThresholdNotMet {
                    valid: 1,
                    threshold: 2,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn same_key_twice_counts_once() {
        let (root, [a, ..], _) = setup();
        let mut env = envelope(&[&a]);
        // Duplicate the signature entry by hand: sign() itself refuses.
        let json = String::from_utf8(env.to_json()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let sig = v["signatures"][0].clone();
        let mut v2 = v.clone();
        v2["signatures"].as_array_mut().unwrap().push(sig);
        env = Envelope::from_slice(&serde_json::to_vec(&v2).unwrap(), &Limits::default()).unwrap();
        assert_eq!(env.signatures().len(), 2);
        let err = root
            .verify_envelope(&env, PAYLOAD_MANIFEST, Role::Release)
            .unwrap_err();
        assert!(
            matches!(err, Error::ThresholdNotMet { valid: 1, .. }),
            "{err}"
        );
    }

    #[test]
    fn unknown_key_ignored() {
        let (root, [a, b, _], _) = setup();
        let stranger = key();
        // Stranger alone: not enough. Stranger + a: still one valid.
        let err = root
            .verify_envelope(&envelope(&[&stranger, &a]), PAYLOAD_MANIFEST, Role::Release)
            .unwrap_err();
        assert!(matches!(err, Error::ThresholdNotMet { valid: 1, .. }));
        // Stranger + a + b: passes, stranger not among signers.
        let env = envelope(&[&stranger, &a, &b]);
        let v = root
            .verify_envelope(&env, PAYLOAD_MANIFEST, Role::Release)
            .unwrap();
        assert!(!v.signers().contains(&stranger.public().key_id()));
    }

    #[test]
    fn license_key_cannot_sign_manifest() {
        let (root, _, lic) = setup();
        let err = root
            .verify_envelope(&envelope(&[&lic]), PAYLOAD_MANIFEST, Role::Release)
            .unwrap_err();
        assert!(
            matches!(err, Error::ThresholdNotMet { valid: 0, .. }),
            "{err}"
        );
    }

    #[test]
    fn payload_type_is_checked() {
        let (root, [a, b, _], _) = setup();
        let env = envelope(&[&a, &b]);
        let err = root
            .verify_envelope(&env, PAYLOAD_LICENSE, Role::License)
            .unwrap_err();
        assert!(matches!(err, Error::WrongPayloadType { .. }), "{err}");
    }

    #[test]
    fn tampered_payload_fails() {
        let (root, [a, b, _], _) = setup();
        let env = envelope(&[&a, &b]);
        let mut v: serde_json::Value = serde_json::from_slice(&env.to_json()).unwrap();
        v["payload"] = serde_json::Value::String("eyJ4IjoyfQ==".into()); // {"x":2}
        let env =
            Envelope::from_slice(&serde_json::to_vec(&v).unwrap(), &Limits::default()).unwrap();
        let err = root
            .verify_envelope(&env, PAYLOAD_MANIFEST, Role::Release)
            .unwrap_err();
        assert!(
            matches!(err, Error::ThresholdNotMet { valid: 0, .. }),
            "{err}"
        );
    }
}

mod rotation {
    use super::support::*;
    use charter_keys::root::{RootDocument, VerifiedRoot};
    use charter_keys::secret::SecretKey;
    use charter_keys::{Error, FixedClock, Limits, PublicKey, Role};

    const FAR: &str = "2100-01-01T00:00:00Z";

    fn now() -> FixedClock {
        FixedClock(ts("2026-11-22T00:00:00Z"))
    }

    #[test]
    fn good_chain_accepted() {
        let (k1, k2, k3, rel) = (key(), key(), key(), key());
        let v1 = sign_root(&root_doc(1, FAR, (&[&k1], 1), (&[&rel], 1)), &[&k1]);
        // v2 moves root to k2: signed by k1 (old) and k2 (new).
        let v2 = sign_root(&root_doc(2, FAR, (&[&k2], 1), (&[&rel], 1)), &[&k1, &k2]);
        // v3 moves root to k3, signed by k2 and k3.
        let v3 = sign_root(&root_doc(3, FAR, (&[&k3], 1), (&[&rel], 1)), &[&k2, &k3]);
        let chain = [v2, v3];
        let trusted = VerifiedRoot::from_trusted(&v1, &Limits::default()).unwrap();
        let (last, n) = trusted
            .update_chain(
                |v| Ok(chain.get((v - 2) as usize).cloned()),
                &Limits::default(),
                &now(),
            )
            .unwrap();
        assert_eq!((last.version(), n), (3, 2));
    }

    #[test]
    fn skipped_version_refused() {
        let (k1, rel) = (key(), key());
        let v1 = sign_root(&root_doc(1, FAR, (&[&k1], 1), (&[&rel], 1)), &[&k1]);
        let v3 = sign_root(&root_doc(3, FAR, (&[&k1], 1), (&[&rel], 1)), &[&k1]);
        let trusted = VerifiedRoot::from_trusted(&v1, &Limits::default()).unwrap();
        let err = trusted.rotate(&v3, &Limits::default()).unwrap_err();
        assert!(
            matches!(
                err,
                Error::RootVersion {
                    trusted: 1,
                    found: 3
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn new_root_not_signed_by_old_keys_refused() {
        let (k1, k2, rel) = (key(), key(), key());
        let v1 = sign_root(&root_doc(1, FAR, (&[&k1], 1), (&[&rel], 1)), &[&k1]);
        let v2 = sign_root(&root_doc(2, FAR, (&[&k2], 1), (&[&rel], 1)), &[&k2]);
        let trusted = VerifiedRoot::from_trusted(&v1, &Limits::default()).unwrap();
        let err = trusted.rotate(&v2, &Limits::default()).unwrap_err();
        assert!(
            matches!(err, Error::ThresholdNotMet { valid: 0, .. }),
            "{err}"
        );
    }

    #[test]
    fn new_root_not_signed_by_its_own_keys_refused() {
        let (k1, k2, rel) = (key(), key(), key());
        let v1 = sign_root(&root_doc(1, FAR, (&[&k1], 1), (&[&rel], 1)), &[&k1]);
        let v2 = sign_root(&root_doc(2, FAR, (&[&k2], 1), (&[&rel], 1)), &[&k1]);
        let trusted = VerifiedRoot::from_trusted(&v1, &Limits::default()).unwrap();
        let err = trusted.rotate(&v2, &Limits::default()).unwrap_err();
        assert!(
            matches!(err, Error::ThresholdNotMet { valid: 0, .. }),
            "{err}"
        );
    }

    #[test]
    fn expired_final_root_refused_but_expired_intermediate_allowed() {
        let (k1, rel) = (key(), key());
        let past = "2020-01-01T00:00:00Z";
        let v1 = sign_root(&root_doc(1, past, (&[&k1], 1), (&[&rel], 1)), &[&k1]);
        let trusted = VerifiedRoot::from_trusted(&v1, &Limits::default()).unwrap();
        let err = trusted
            .clone()
            .update_chain(|_| Ok(None), &Limits::default(), &now())
            .unwrap_err();
        assert!(matches!(err, Error::Expired { .. }), "{err}");
        let v2 = sign_root(&root_doc(2, FAR, (&[&k1], 1), (&[&rel], 1)), &[&k1]);
        let (last, _) = trusted
            .update_chain(
                |v| Ok((v == 2).then(|| v2.clone())),
                &Limits::default(),
                &now(),
            )
            .unwrap();
        assert_eq!(last.version(), 2);
    }

    #[test]
    fn chain_longer_than_bound_refused() {
        let (k1, rel) = (key(), key());
        let limits = Limits {
            max_root_rotations: 3,
            ..Limits::default()
        };
        let roots: Vec<Vec<u8>> = (1..=6)
            .map(|v| sign_root(&root_doc(v, FAR, (&[&k1], 1), (&[&rel], 1)), &[&k1]))
            .collect();
        let trusted = VerifiedRoot::from_trusted(&roots[0], &limits).unwrap();
        let err = trusted
            .update_chain(
                |v| Ok(roots.get((v - 1) as usize).cloned()),
                &limits,
                &now(),
            )
            .unwrap_err();
        assert!(matches!(err, Error::TooManyRotations { max: 3 }), "{err}");
    }

    #[test]
    fn threshold_two_rotation_needs_two_old_keys() {
        let (a, b, c, rel) = (key(), key(), key(), key());
        let v1 = sign_root(
            &root_doc(1, FAR, (&[&a, &b, &c], 2), (&[&rel], 1)),
            &[&a, &b],
        );
        let trusted = VerifiedRoot::from_trusted(&v1, &Limits::default()).unwrap();
        let doc2 = root_doc(2, FAR, (&[&a, &b, &c], 2), (&[&rel], 1));
        let only_one = sign_root(&doc2, &[&a]);
        assert!(matches!(
            trusted.rotate(&only_one, &Limits::default()),
            Err(Error::ThresholdNotMet {
                valid: 1,
                threshold: 2,
                ..
            })
        ));
        let two = sign_root(&doc2, &[&a, &c]);
        assert_eq!(
            trusted.rotate(&two, &Limits::default()).unwrap().version(),
            2
        );
    }

    /// §12.5 Q4: an envelope carries at most `max_signatures` (32)
    /// signatures, so a role threshold of 33 can never be met. Such a root
    /// is refused when built, and a host refuses one that was written by
    /// hand, before any signature is checked.
    #[test]
    fn threshold_above_signature_limit_refused() {
        let limits = Limits::default();
        let many: Vec<SecretKey> = (0..=limits.max_signatures).map(|_| key()).collect();
        let refs: Vec<&SecretKey> = many.iter().collect();
        let rel = key();
        let pubs: Vec<PublicKey> = many.iter().map(|k| k.public().clone()).collect();
        let other = [rel.public().clone()];
        let build = |threshold: u32| {
            RootDocument::build(
                1,
                ts(FAR),
                &[
                    (Role::Root, &pubs, threshold),
                    (Role::Release, &other, 1),
                    (Role::Channel, &other, 1),
                    (Role::License, &other, 1),
                ],
                &limits,
            )
        };
        let err = build(33).unwrap_err();
        assert!(matches!(err, Error::InvalidRoot(_)), "{err}");
        assert_eq!(
            err.to_string(),
            "invalid trust root: role `root` has threshold 33, but an envelope carries at most 32 signatures, so it could never be met"
        );
        // 32 of 33 is the most that can be met, and is accepted.
        let mut doc = build(32).unwrap();
        // The same limit holds for the other roles, and on the host.
        doc.roles.release = doc.roles.root.clone();
        doc.roles.release.threshold = 33;
        let env = sign_root(&doc, &refs[..32]);
        let err = VerifiedRoot::from_trusted(&env, &limits).unwrap_err();
        assert!(
            err.to_string().contains("role `release` has threshold 33"),
            "{err}"
        );
    }

    /// §12.5 Q4: a rotation envelope must meet the old root threshold and
    /// the new one at once. With disjoint key sets, 17 + 16 = 33 signatures
    /// cannot fit in an envelope of at most 32, so that rotation could never
    /// reach a host; one shared key brings it to 32, which fits.
    #[test]
    fn rotation_thresholds_that_cannot_fit_refused() {
        let limits = Limits::default();
        let old: Vec<SecretKey> = (0..17).map(|_| key()).collect();
        let new: Vec<SecretKey> = (0..16).map(|_| key()).collect();
        let rel = key();
        let old_refs: Vec<&SecretKey> = old.iter().collect();
        let new_refs: Vec<&SecretKey> = new.iter().collect();
        let v1 = root_doc(1, FAR, (&old_refs, 17), (&[&rel], 1));
        let disjoint = root_doc(2, FAR, (&new_refs, 16), (&[&rel], 1));
        let err = disjoint.check_rotation_from(&v1, &limits).unwrap_err();
        assert!(
            matches!(
                err,
                Error::RotationCannotFit {
                    from: 1,
                    to: 2,
                    needed: 33,
                    old_threshold: 17,
                    new_threshold: 16,
                    shared: 0,
                    max: 32,
                }
            ),
            "{err}"
        );
        assert!(err.to_string().starts_with(
            "rotation from root version 1 to 2 needs at least 33 signatures in one envelope"
        ));
        let mut shared_refs = new_refs.clone();
        shared_refs[0] = old_refs[0];
        let shared = root_doc(2, FAR, (&shared_refs, 16), (&[&rel], 1));
        shared.check_rotation_from(&v1, &limits).unwrap();
        assert_eq!(
            charter_keys::root::rotation_signatures_needed(&v1.roles.root, &shared.roles.root),
            32
        );
        // The rotation that fits is one a host accepts: 32 signatures, the
        // shared key's counting for both roles.
        let mut signers = old_refs.clone();
        signers.extend(&shared_refs[1..]);
        let env = sign_root(&shared, &signers);
        let trusted = VerifiedRoot::from_trusted(&sign_root(&v1, &old_refs), &limits).unwrap();
        assert_eq!(trusted.rotate(&env, &limits).unwrap().version(), 2);
    }

    #[test]
    fn self_signed_root_must_meet_own_threshold() {
        let (k1, rel) = (key(), key());
        let unsigned = sign_root(&root_doc(1, FAR, (&[&k1], 1), (&[&rel], 1)), &[]);
        assert!(matches!(
            VerifiedRoot::from_trusted(&unsigned, &Limits::default()),
            Err(Error::ThresholdNotMet { .. })
        ));
    }
}

mod openssl {
    //! Interop with the openssl command line, when it is installed.
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;
    use std::process::Command;

    use charter_keys::blob::{self, BlobMode};
    use charter_keys::secret::{Protection, SecretKey, Signer};
    use charter_keys::{Limits, PublicKey, Signature};
    use zeroize::Zeroizing;

    fn openssl(args: &[&str]) -> Option<std::process::Output> {
        match Command::new("openssl").args(args).output() {
            Ok(out) => {
                assert!(
                    out.status.success(),
                    "openssl {args:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                Some(out)
            }
            Err(_) => {
                eprintln!("openssl not installed: interop test skipped");
                None
            }
        }
    }

    fn p(path: &Path) -> &str {
        path.to_str().unwrap()
    }

    #[test]
    fn openssl_key_and_signature_work_with_charter() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("o.pem");
        let data = dir.path().join("data");
        let sig = dir.path().join("sig");
        std::fs::write(&data, b"release bytes").unwrap();
        if openssl(&["genpkey", "-algorithm", "ed25519", "-out", p(&key)]).is_none() {
            return;
        }
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        openssl(&[
            "pkeyutl",
            "-sign",
            "-rawin",
            "-inkey",
            p(&key),
            "-in",
            p(&data),
            "-out",
            p(&sig),
        ]);
        let pub_pem = openssl(&["pkey", "-in", p(&key), "-pubout"])
            .unwrap()
            .stdout;
        let public = PublicKey::from_pem(std::str::from_utf8(&pub_pem).unwrap()).unwrap();
        let signature = Signature::from_slice(&std::fs::read(&sig).unwrap()).unwrap();
        blob::verify_file(
            &public,
            &data,
            &signature,
            BlobMode::Pure,
            &Limits::default(),
        )
        .unwrap();
        // charter reads openssl's private key and signs identically
        // (Ed25519 is deterministic).
        let loaded = SecretKey::read_file(&key, &Limits::default(), || unreachable!()).unwrap();
        assert!(!loaded.was_encrypted);
        assert_eq!(loaded.key.sign(b"release bytes").unwrap(), signature);
        // Key id: sha256 of openssl's DER public key.
        let der = openssl(&["pkey", "-in", p(&key), "-pubout", "-outform", "DER"])
            .unwrap()
            .stdout;
        use sha2::Digest;
        assert_eq!(
            public.key_id().to_string(),
            hex::encode(sha2::Sha256::digest(der))
        );
    }

    #[test]
    fn charter_keys_and_signatures_work_with_openssl() {
        let dir = tempfile::tempdir().unwrap();
        let key_path = dir.path().join("c.pem");
        let pub_path = dir.path().join("c.pub");
        let data = dir.path().join("data");
        let sig = dir.path().join("sig");
        std::fs::write(&data, b"another release").unwrap();
        let key = SecretKey::generate().unwrap();
        key.write_file(&key_path, Protection::Passphrase(b"s3cret pass"))
            .unwrap();
        std::fs::write(&pub_path, key.public().to_pem()).unwrap();
        std::fs::write(&sig, key.sign(b"another release").unwrap().0).unwrap();
        let Some(out) = openssl(&[
            "pkeyutl",
            "-verify",
            "-rawin",
            "-pubin",
            "-inkey",
            p(&pub_path),
            "-in",
            p(&data),
            "-sigfile",
            p(&sig),
        ]) else {
            return;
        };
        assert!(String::from_utf8_lossy(&out.stdout).contains("Signature Verified Successfully"));
        // openssl decrypts charter's encrypted PKCS#8 (scrypt + AES-256-CBC).
        let plain = openssl(&["pkey", "-in", p(&key_path), "-passin", "pass:s3cret pass"])
            .unwrap()
            .stdout;
        let reread = SecretKey::from_pem(
            std::str::from_utf8(&plain).unwrap(),
            &key_path,
            &Limits::default(),
            || unreachable!(),
        )
        .unwrap();
        assert_eq!(reread.key.public(), key.public());
        // And charter decrypts a key openssl encrypted (PBKDF2 + AES-256-CBC).
        let enc = dir.path().join("enc.pem");
        openssl(&[
            "pkcs8",
            "-topk8",
            "-v2",
            "aes-256-cbc",
            "-in",
            p(&key_path),
            "-passin",
            "pass:s3cret pass",
            "-passout",
            "pass:other",
            "-out",
            p(&enc),
        ]);
        std::fs::set_permissions(&enc, std::fs::Permissions::from_mode(0o600)).unwrap();
        let loaded = SecretKey::read_file(&enc, &Limits::default(), || {
            Ok(Zeroizing::new(b"other".to_vec()))
        })
        .unwrap();
        assert!(loaded.was_encrypted);
        assert_eq!(loaded.key.public(), key.public());
    }
}
