//! A private Sigstore deployment for tests: a Fulcio-like CA, a CT log and
//! a Rekor-like transparency log, each with its own P-256 key, described by
//! a `trusted_root.json` of their own. It issues what a real deployment
//! would for `cosign sign-blob --bundle` in CI: a short-lived certificate
//! for a workflow identity with an embedded SCT, a signature over the
//! artifact, and a `hashedrekord` entry with its SET, Merkle inclusion
//! proof and signed checkpoint. Every piece is checked by the same
//! `sigstore-verify` code that checks public-good bundles; nothing here is
//! a mock of the verifier.
//!
//! The wire formats: RFC 6962 (SCT over the precertificate TBS), the
//! transparency-log signed note (checkpoint), Rekor v1's SET (ECDSA over the
//! canonical JSON of body, integratedTime, logID, logIndex), and the
//! Sigstore bundle v0.3 and cosign 2.x `--bundle` JSON.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType,
    SerialNumber,
};
use sha2::{Digest, Sha256};
use sigstore_verify::crypto::KeyPair as SigningKey;

/// One private Sigstore deployment.
pub struct TestSigstore {
    ca_key: KeyPair,
    ca_params: CertificateParams,
    ca_der: Vec<u8>,
    ct: SigningKey,
    ct_spki: Vec<u8>,
    rekor: SigningKey,
    rekor_spki: Vec<u8>,
}

/// What [`TestSigstore::sign`] produced.
pub struct Signed {
    /// Sigstore bundle v0.3 (what `cosign sign-blob --bundle` writes since
    /// cosign 3, or with `--new-bundle-format`).
    pub bundle: String,
    /// The same evidence in cosign 2.x's `--bundle` format.
    pub legacy: String,
}

fn signing_key(k: &KeyPair) -> SigningKey {
    SigningKey::from_pkcs8_der(&k.serialize_der()).expect("P-256 PKCS#8")
}

/// The first TLV of a DER SEQUENCE's contents (a certificate's TBS).
fn first_element(der: &[u8]) -> &[u8] {
    fn header(b: &[u8]) -> (usize, usize) {
        // (header length, content length)
        let l = b[1] as usize;
        if l < 0x80 {
            (2, l)
        } else {
            let n = l & 0x7f;
            let mut len = 0usize;
            for &x in &b[2..2 + n] {
                len = (len << 8) | x as usize;
            }
            (2 + n, len)
        }
    }
    let (h, _) = header(der);
    let inner = &der[h..];
    let (h2, l2) = header(inner);
    &inner[..h2 + l2]
}

fn der_octet_string(bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![0x04];
    let n = bytes.len();
    if n < 0x80 {
        out.push(n as u8);
    } else if n < 0x100 {
        out.extend([0x81, n as u8]);
    } else {
        out.extend([0x82, (n >> 8) as u8, n as u8]);
    }
    out.extend_from_slice(bytes);
    out
}

fn der_utf8_string(s: &str) -> Vec<u8> {
    let mut out = der_octet_string(s.as_bytes());
    out[0] = 0x0c;
    out
}

fn key_details() -> &'static str {
    "PKIX_ECDSA_P256_SHA_256"
}

impl Default for TestSigstore {
    fn default() -> Self {
        Self::new()
    }
}

impl TestSigstore {
    /// A new deployment with fresh keys.
    pub fn new() -> Self {
        let alg = &rcgen::PKCS_ECDSA_P256_SHA256;
        let ca_key = KeyPair::generate_for(alg).expect("CA key");
        let mut ca_params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "charter-test");
        dn.push(DnType::CommonName, "charter-test-fulcio");
        ca_params.distinguished_name = dn;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca_params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
        ca_params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(365);
        ca_params.serial_number = Some(SerialNumber::from(1u64));
        let ca_der = ca_params
            .self_signed(&ca_key)
            .expect("CA cert")
            .der()
            .to_vec();
        let ct_key = KeyPair::generate_for(alg).expect("CT key");
        let rekor_key = KeyPair::generate_for(alg).expect("Rekor key");
        TestSigstore {
            ct: signing_key(&ct_key),
            ct_spki: ct_key.subject_public_key_info(),
            rekor: signing_key(&rekor_key),
            rekor_spki: rekor_key.subject_public_key_info(),
            ca_key,
            ca_params,
            ca_der,
        }
    }

    fn log_id(spki: &[u8]) -> [u8; 32] {
        Sha256::digest(spki).into()
    }

    /// This deployment's `trusted_root.json`.
    pub fn trusted_root(&self) -> String {
        let key = |spki: &[u8]| {
            serde_json::json!({
                "rawBytes": B64.encode(spki),
                "keyDetails": key_details(),
                "validFor": {"start": "2020-01-01T00:00:00Z"},
            })
        };
        serde_json::json!({
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [{
                "baseUrl": "https://rekor.charter-test.invalid",
                "hashAlgorithm": "SHA2_256",
                "publicKey": key(&self.rekor_spki),
                "logId": {"keyId": B64.encode(Self::log_id(&self.rekor_spki))},
            }],
            "certificateAuthorities": [{
                "subject": {"organization": "charter-test", "commonName": "charter-test-fulcio"},
                "uri": "https://fulcio.charter-test.invalid",
                "certChain": {"certificates": [{"rawBytes": B64.encode(&self.ca_der)}]},
                "validFor": {"start": "2020-01-01T00:00:00Z"},
            }],
            "ctlogs": [{
                "baseUrl": "https://ctfe.charter-test.invalid",
                "hashAlgorithm": "SHA2_256",
                "publicKey": key(&self.ct_spki),
                "logId": {"keyId": B64.encode(Self::log_id(&self.ct_spki))},
            }],
            "timestampAuthorities": [],
        })
        .to_string()
    }

    /// A Fulcio-style leaf for `identity` (a URI, or an email when it has
    /// an `@` and no `:`) from `issuer`, valid ten minutes from a minute
    /// ago, with an SCT from this deployment's CT log embedded.
    fn certificate(&self, leaf: &KeyPair, identity: &str, issuer: &str) -> Vec<u8> {
        let now = time::OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        let san = if identity.contains('@') && !identity.contains(':') {
            SanType::Rfc822Name(identity.try_into().expect("IA5 identity"))
        } else {
            SanType::URI(identity.try_into().expect("IA5 identity"))
        };
        params.subject_alt_names = vec![san];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        params.use_authority_key_identifier_extension = true;
        params.not_before = now - time::Duration::minutes(1);
        params.not_after = now + time::Duration::minutes(9);
        let serial: [u8; 16] = Sha256::digest(identity.as_bytes())[..16]
            .try_into()
            .expect("16 bytes");
        let mut serial = serial.to_vec();
        serial[0] &= 0x7f;
        params.serial_number = Some(SerialNumber::from(serial));
        // Fulcio's issuer extensions: v1 (raw string) and v2 (UTF8String).
        params
            .custom_extensions
            .push(CustomExtension::from_oid_content(
                &[1, 3, 6, 1, 4, 1, 57264, 1, 1],
                issuer.as_bytes().to_vec(),
            ));
        params
            .custom_extensions
            .push(CustomExtension::from_oid_content(
                &[1, 3, 6, 1, 4, 1, 57264, 1, 8],
                der_utf8_string(issuer),
            ));
        let ca = Issuer::from_params(&self.ca_params, &self.ca_key);
        // The precertificate: the same TBS without the SCT list.
        let pre = params.signed_by(leaf, &ca).expect("precertificate");
        let tbs = first_element(pre.der()).to_vec();
        let timestamp = u64::try_from(now.unix_timestamp() * 1000).expect("after 1970");
        let issuer_key_hash: [u8; 32] =
            Sha256::digest(self.ca_key.subject_public_key_info()).into();
        // RFC 6962 §3.2 digitally-signed struct, precert entry.
        let mut signed = vec![0u8, 0u8];
        signed.extend(timestamp.to_be_bytes());
        signed.extend(1u16.to_be_bytes());
        signed.extend(issuer_key_hash);
        signed.extend(&(tbs.len() as u32).to_be_bytes()[1..]);
        signed.extend(&tbs);
        signed.extend(0u16.to_be_bytes());
        let sig = self.ct.sign(&signed).expect("SCT signature");
        let sig = sig.as_bytes();
        let mut sct = vec![0u8];
        sct.extend(Self::log_id(&self.ct_spki));
        sct.extend(timestamp.to_be_bytes());
        sct.extend(0u16.to_be_bytes());
        sct.extend([4u8, 3u8]); // sha256, ecdsa
        sct.extend((sig.len() as u16).to_be_bytes());
        sct.extend(sig);
        let mut list = Vec::new();
        list.extend(((sct.len() + 2) as u16).to_be_bytes());
        list.extend((sct.len() as u16).to_be_bytes());
        list.extend(&sct);
        params
            .custom_extensions
            .push(CustomExtension::from_oid_content(
                &[1, 3, 6, 1, 4, 1, 11129, 2, 4, 2],
                der_octet_string(&list),
            ));
        params
            .signed_by(leaf, &ca)
            .expect("certificate")
            .der()
            .to_vec()
    }

    /// Signs `artifact` as `identity` from OIDC `issuer`, logs it, and
    /// returns the bundle in both formats.
    pub fn sign(&self, artifact: &[u8], identity: &str, issuer: &str) -> Signed {
        let leaf = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("leaf key");
        let cert = self.certificate(&leaf, identity, issuer);
        self.log(artifact, &leaf, Some(&cert))
    }

    /// A managed key (`cosign generate-key-pair`): its public key PEM and
    /// the key to pass to [`TestSigstore::sign_with_key`].
    pub fn managed_key() -> (KeyPair, String) {
        let k = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let pem = k.public_key_pem();
        (k, pem)
    }

    /// Signs `artifact` with a managed key (`cosign sign-blob --key`), logs
    /// it, and returns the bundle in both formats.
    pub fn sign_with_key(&self, artifact: &[u8], key: &KeyPair) -> Signed {
        self.log(artifact, key, None)
    }

    fn log(&self, artifact: &[u8], leaf: &KeyPair, cert: Option<&[u8]>) -> Signed {
        let signature = signing_key(leaf).sign(artifact).expect("signature");
        let signature = B64.encode(signature.as_bytes());
        let digest: [u8; 32] = Sha256::digest(artifact).into();
        let pem = match cert {
            Some(cert) => format!(
                "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
                B64.encode(cert)
            ),
            None => leaf.public_key_pem(),
        };
        // The hashedrekord entry, keys in canonical (sorted) order.
        let body = format!(
            r#"{{"apiVersion":"0.0.1","kind":"hashedrekord","spec":{{"data":{{"hash":{{"algorithm":"sha256","value":"{}"}}}},"signature":{{"content":"{}","publicKey":{{"content":"{}"}}}}}}}}"#,
            hex::encode(digest),
            signature,
            B64.encode(pem.as_bytes()),
        );
        let body_b64 = B64.encode(body.as_bytes());
        let log_id = Self::log_id(&self.rekor_spki);
        let integrated = time::OffsetDateTime::now_utc().unix_timestamp() - 5;
        // A log of two entries: somebody else's at 0, ours at 1.
        let leaf_hash = |data: &[u8]| -> [u8; 32] {
            let mut h = Sha256::new();
            h.update([0u8]);
            h.update(data);
            h.finalize().into()
        };
        let other = leaf_hash(b"an earlier entry");
        let ours = leaf_hash(body.as_bytes());
        let mut h = Sha256::new();
        h.update([1u8]);
        h.update(other);
        h.update(ours);
        let root: [u8; 32] = h.finalize().into();
        let origin = "rekor.charter-test.invalid - 7";
        let note = format!("{origin}\n2\n{}\n", B64.encode(root));
        let note_sig = self.rekor.sign(note.as_bytes()).expect("checkpoint");
        let mut hinted = log_id[..4].to_vec();
        hinted.extend(note_sig.as_bytes());
        let checkpoint = format!(
            "{note}\n\u{2014} rekor.charter-test.invalid {}\n",
            B64.encode(hinted)
        );
        let set_payload = format!(
            r#"{{"body":"{body_b64}","integratedTime":{integrated},"logID":"{}","logIndex":1}}"#,
            hex::encode(log_id)
        );
        let set = self.rekor.sign(set_payload.as_bytes()).expect("SET");
        let set = B64.encode(set.as_bytes());
        let mut bundle = serde_json::json!({
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {
                "tlogEntries": [{
                    "logIndex": "1",
                    "logId": {"keyId": B64.encode(log_id)},
                    "kindVersion": {"kind": "hashedrekord", "version": "0.0.1"},
                    "integratedTime": integrated.to_string(),
                    "inclusionPromise": {"signedEntryTimestamp": set},
                    "inclusionProof": {
                        "logIndex": "1",
                        "rootHash": B64.encode(root),
                        "treeSize": "2",
                        "hashes": [B64.encode(other)],
                        "checkpoint": {"envelope": checkpoint},
                    },
                    "canonicalizedBody": body_b64,
                }],
                "timestampVerificationData": {},
            },
            "messageSignature": {
                "messageDigest": {"algorithm": "SHA2_256", "digest": B64.encode(digest)},
                "signature": signature,
            },
        });
        // A certificate, or a managed key's hint.
        bundle["verificationMaterial"][if cert.is_some() {
            "certificate"
        } else {
            "publicKey"
        }] = match cert {
            Some(c) => serde_json::json!({"rawBytes": B64.encode(c)}),
            None => serde_json::json!({"hint": ""}),
        };
        let mut legacy = serde_json::json!({
            "base64Signature": signature,
            "rekorBundle": {
                "SignedEntryTimestamp": set,
                "Payload": {
                    "body": body_b64,
                    "integratedTime": integrated,
                    "logIndex": 1,
                    "logID": hex::encode(log_id),
                },
            },
        });
        if cert.is_some() {
            legacy["cert"] = B64.encode(pem.as_bytes()).into();
        }
        Signed {
            bundle: bundle.to_string(),
            legacy: legacy.to_string(),
        }
    }
}
