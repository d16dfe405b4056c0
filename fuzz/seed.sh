#!/usr/bin/env bash
# Write seed corpora into fuzz/corpus/<target>/ from real documents made by the
# charter CLI (keys, roots, manifests), plus a few hand-written path and PEM
# seeds. Run from anywhere; corpus/ is git-ignored.
#
#   CHARTER=/path/to/charter fuzz/seed.sh     # default: ../target/debug/charter
#
# Build the CLI first if needed: `cargo build -p charter-cli` (workspace root).
# openssl, if present, adds PBES2 key seeds with KDF costs under the fuzz caps.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
charter="${CHARTER:-$here/../target/debug/charter}"
[ -x "$charter" ] || { echo "seed.sh: no charter binary at $charter (cargo build -p charter-cli, or set CHARTER)" >&2; exit 1; }
corpus="$here/corpus"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export CHARTER_PASSPHRASE=x

mkdir -p "$corpus"/{envelope,root,manifest,key_pem,archive_path,sigstore_bundle,plain_checksums,plain_tarball}
c() { "$charter" "$@" >/dev/null; }
# payload of a DSSE envelope, base64-decoded
payload() { sed -n 's/^ *"payload": *"\([^"]*\)".*/\1/p' "$1" | base64 -d; }

cd "$work"

# Keys: three root keys, one each for the other roles.
for k in r1 r2 r3 rel chan lic; do c key generate --out "$k.key"; done
c key generate --out plain.key --unencrypted

# Trust roots.
c root init --out root1.json --root-key r1.key.pub --release-key rel.key.pub \
  --channel-key chan.key.pub --license-key lic.key.pub --key r1.key
c root init --out root-multi.json --root-key r1.key.pub --root-key r2.key.pub --root-key r3.key.pub \
  --root-threshold 2 --release-key rel.key.pub --release-key r1.key.pub --release-threshold 2 \
  --channel-key chan.key.pub --license-key lic.key.pub --expires 2099-01-01T00:00:00Z \
  --key r1.key --key r2.key
c root init --out root-unsigned.json --root-key r1.key.pub --release-key rel.key.pub \
  --channel-key chan.key.pub --license-key lic.key.pub
# Rotation to version 2 (new root key r2), signed by old and new: best effort,
# the flags of `root rotate` may change.
if "$charter" root rotate --help >/dev/null 2>&1; then
  "$charter" root rotate --from root1.json --out root-v2.json --root-key r2.key.pub \
    --key r1.key --key r2.key >/dev/null 2>&1 || true
fi

# Release trees and manifests.
mkdir -p tree/bin tree/etc/app tree/share/doc
printf '#!/bin/sh\necho hi\n' > tree/bin/app; chmod 755 tree/bin/app
printf 'k = 1\n' > tree/etc/app/app.conf
printf 'doc\n' > tree/share/doc/README
printf '#!/bin/sh\nexit 0\n' > tree/bin/migrate; chmod 755 tree/bin/migrate
ln -s ../bin/app tree/share/app-link
ln -s app tree/bin/app-alias
: > tree/empty
mkdir -p tree/var/empty-dir
mkdir -p small && echo x > small/only

c manifest create --product p --version 1.0.0 --from small --out m-small
c manifest create --product my-app --version 2.3.4-rc.1+build.7 --from tree --out m-full \
  --format tar.gz --level 1 --preserve 'var/**' --config 'etc/app/*.conf' \
  --health-url http://127.0.0.1:8080/healthz --health-status 204 --health-timeout 5s \
  --health-retries 2 --health-interval 1s --expires 30d --released-at 2025-01-02T03:04:05Z \
  --security-fix --pre-swap-script bin/migrate --post-swap-script bin/migrate --rollback-script bin/migrate
c manifest create --product app.x_y --version 0.0.1 --from tree --out m-cmd \
  --health-cmd 'bin/app --check' --expires 2099-12-31T23:59:59Z
cp -r m-small m-signed
c manifest sign --key rel.key m-signed/manifest.json 2>/dev/null || true

# envelope: every DSSE document.
for f in root1.json root-multi.json root-unsigned.json root-v2.json \
         m-small/manifest.json m-full/manifest.json m-cmd/manifest.json m-signed/manifest.json; do
  [ -f "$f" ] && cp "$f" "$corpus/envelope/$(echo "$f" | tr / _)"
done
# root: the roots (self-signed ones reach the signature check).
for f in root1.json root-multi.json root-unsigned.json root-v2.json; do
  [ -f "$f" ] && cp "$f" "$corpus/root/$f"
done
# manifest: the decoded payloads.
for d in m-small m-full m-cmd; do payload "$d/manifest.json" > "$corpus/manifest/$d.json"; done

# key_pem: public keys, private keys (the CLI's use scrypt N=2^14 r=8, 16 MiB,
# over the target's 1 MiB cap: they seed the structure), and low-cost PBES2
# ones via openssl that the target really decrypts.
cp r1.key.pub "$corpus/key_pem/public.pem"
cp r1.key "$corpus/key_pem/private-scrypt14.pem"
cp plain.key "$corpus/key_pem/private-plain.pem"
if command -v openssl >/dev/null; then
  openssl pkcs8 -topk8 -in plain.key -v2 aes-256-cbc -scrypt -scrypt_N 256 -scrypt_r 8 -scrypt_p 1 \
    -passout pass:fuzz -out "$corpus/key_pem/private-scrypt8.pem" 2>/dev/null || true
  openssl pkcs8 -topk8 -in plain.key -v2 aes-256-cbc -iter 1000 -v2prf hmacWithSHA256 \
    -passout pass:fuzz -out "$corpus/key_pem/private-pbkdf2.pem" 2>/dev/null || true
fi

# archive_path: "path\nlink-target".
i=0
while IFS= read -r line; do
  printf '%b' "$line" > "$corpus/archive_path/seed-$i"; i=$((i + 1))
done <<'EOF'
bin/app
share/app-link\n../bin/app
bin/app-alias\napp
a/b/c/d\n../../x
a\n/etc/passwd
a/b\n../../..
./a//b/\n.
dir/\nsub/./file
a/b\nc/../../d
EOF

# Sigstore bundles: the conformance cases in ../shared (when present), and
# each rewritten into cosign 2.x's format where it has a SET.
mkdir -p "$corpus/sigstore_bundle"
fixtures="$here/../../shared/fixtures/sigstore/bundle-verify"
if [ -d "$fixtures" ]; then
  for d in "$fixtures"/*/; do
    n=$(basename "$d")
    cp "$d/bundle.sigstore.json" "$corpus/sigstore_bundle/$n.json"
    python3 - "$d/bundle.sigstore.json" > "$corpus/sigstore_bundle/$n.legacy.json" 2>/dev/null <<'PY' || rm -f "$corpus/sigstore_bundle/$n.legacy.json"
import base64, json, sys
b = json.load(open(sys.argv[1]))
vm = b["verificationMaterial"]
e = vm["tlogEntries"][0]
der = (vm.get("certificate") or vm["x509CertificateChain"]["certificates"][0])["rawBytes"]
pem = "-----BEGIN CERTIFICATE-----\n" + der + "\n-----END CERTIFICATE-----\n"
print(json.dumps({"base64Signature": b["messageSignature"]["signature"],
  "cert": base64.b64encode(pem.encode()).decode(),
  "rekorBundle": {"SignedEntryTimestamp": e["inclusionPromise"]["signedEntryTimestamp"],
    "Payload": {"body": e["canonicalizedBody"], "integratedTime": int(e["integratedTime"]),
      "logIndex": int(e["logIndex"]), "logID": base64.b64decode(e["logId"]["keyId"]).hex()}}}))
PY
  done
fi

# Plain artifacts: checksum files in each shape, and tar streams made by
# GNU tar (the target gzips them; its first byte picks strip_components).
h=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
printf '%s  panel-1.0.0.tar.gz\n' "$h" > "$corpus/plain_checksums/sha256sum"
printf '%s *panel-1.0.0.tar.gz\r\n' "$h" > "$corpus/plain_checksums/binary-crlf"
printf '# goreleaser\n%s  panel-1.0.0-arm64.tar.gz\n%s  ./dist/panel-1.0.0.tar.gz\n' "$h" "$h" > "$corpus/plain_checksums/checksums.txt"
printf 'SHA256 (panel-1.0.0.tar.gz) = %s\n' "$h" > "$corpus/plain_checksums/bsd"
printf '%s\n' "$h" > "$corpus/plain_checksums/nameless"
printf 'v1.0.0\n' > "$corpus/plain_checksums/latest"
mkdir -p t/panel-1.0.0/bin t/panel-1.0.0/etc
printf '#!/bin/sh\n' > t/panel-1.0.0/bin/panel; chmod 755 t/panel-1.0.0/bin/panel
printf 'a = 1\n' > t/panel-1.0.0/etc/panel.toml
ln -s ../bin/panel t/panel-1.0.0/etc/link
{ printf '\001'; tar -cf - -C t panel-1.0.0; } > "$corpus/plain_tarball/top-dir"
{ printf '\001'; tar -cf - -C t --no-recursion panel-1.0.0/bin/panel panel-1.0.0/etc/panel.toml; } > "$corpus/plain_tarball/files-only"
{ printf '\000'; tar -cf - -C t/panel-1.0.0 .; } > "$corpus/plain_tarball/dot-slash"
{ printf '\001'; tar --format=pax -cf - -C t panel-1.0.0; } > "$corpus/plain_tarball/pax"

for t in envelope root manifest key_pem archive_path sigstore_bundle plain_checksums plain_tarball; do
  echo "$t: $(ls "$corpus/$t" | wc -l) seeds"
done
