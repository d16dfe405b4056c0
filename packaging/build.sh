#!/usr/bin/env bash
# Builds the host package `charter` (charter-agent, charter-update, systemd
# units, the sudo door, example configs, the Sigstore trusted root) and the
# release engineer's package `charter-cli` (charter), each as a .deb (with
# dpkg-deb) and an .rpm (with rpmbuild), from release builds made one
# package at a time (build-bins.sh). Man pages and shell completions are
# generated from the clap definitions by the binaries themselves (hidden
# `--generate`).
#
#   packaging/build.sh [--root root.json] [--product NAME] [--version V]
#                      [--release N] [--out DIR] [--no-cargo] [--no-rpm]
#
#   --root FILE     the vendor's first trust root, shipped as
#                   /etc/charter/trust/root.json (conffile). Without it no
#                   root is shipped and the operator puts one there.
#   --product NAME  the product named in the example configs (default panel)
#   --version V     package version (default: the workspace's)
#   --release N     package revision (default 1)
#   --out DIR       where the packages go (default target/packaging)
#   --no-cargo      use the binaries already in target/release (still
#                   checked for signing code)
#   --no-rpm        only the .debs (when rpmbuild is missing)
#
# Layout, users, modes and upgrade/purge rules: docs/PACKAGING.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
cd "$top"

root_json="" product="panel" version="" release=1 out="$top/target/packaging"
cargo_build=1 want_rpm=1
while (($#)); do
  case "$1" in
    --root) root_json=$(realpath "$2"); shift 2 ;;
    --product) product=$2; shift 2 ;;
    --version) version=$2; shift 2 ;;
    --release) release=$2; shift 2 ;;
    --out) mkdir -p "$2"; out=$(realpath "$2"); shift 2 ;;
    --no-cargo) cargo_build=0; shift ;;
    --no-rpm) want_rpm=0; shift ;;
    -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "build.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ $product =~ ^[a-z0-9][a-z0-9._-]{0,63}$ ]] || { echo "build.sh: bad --product $product" >&2; exit 2; }
[[ -z $root_json || -f $root_json ]] || { echo "build.sh: no file $root_json" >&2; exit 2; }
for tool in dpkg-deb fakeroot gzip strip; do
  command -v "$tool" >/dev/null || { echo "build.sh: $tool is required" >&2; exit 2; }
done
if ((want_rpm)) && ! command -v rpmbuild >/dev/null; then
  echo "build.sh: rpmbuild missing: no .rpm (apt-get install rpm, or pass --no-rpm)" >&2
  exit 2
fi

# One cargo invocation per package, so that charter-cli's `sign` feature of
# charter-keys is not unified into the host binaries; then a check that
# they carry no signing code (build-bins.sh, no-signing-code.sh).
bin="${CARGO_TARGET_DIR:-$top/target}/release"
if ((cargo_build)); then
  "$here/build-bins.sh"
else
  "$here/no-signing-code.sh" "$bin/charter-update" "$bin/charter-agent"
fi
version=${version:-$("$bin/charter-update" --version | awk '{print $2}')}
[[ $version =~ ^[0-9][0-9A-Za-z.+~]*$ ]] || { echo "build.sh: bad --version $version" >&2; exit 2; }
arch_deb=$(dpkg --print-architecture)
arch_rpm=$(uname -m)
work="$out/work"
rm -rf "$work"
mkdir -p "$work" "$out"
# Reproducible timestamps in the archives and the gzip headers.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}

# The Sigstore production trusted root, exactly as the pinned
# sigstore-trust-root crate embeds it (SIGSTORE_PRODUCTION_TRUSTED_ROOT).
trust_crate=$(cargo metadata --locked --format-version 1 2>/dev/null |
  grep -o '"manifest_path":"[^"]*/sigstore-trust-root-[^"/]*/Cargo.toml"' | head -n1 |
  sed 's/"manifest_path":"//; s/"$//')
trusted_root="$(dirname "$trust_crate")/src/trusted_root.json"
[[ -f $trusted_root ]] || { echo "build.sh: cannot find sigstore-trust-root's trusted_root.json" >&2; exit 1; }

# Man pages and completions, from the clap definitions.
gen="$work/gen"
mkdir -p "$gen/man" "$gen/completions"
for b in charter-agent charter-update charter; do
  "$bin/$b" --generate man "$gen/man"
  for sh in bash zsh fish; do "$bin/$b" --generate "$sh" "$gen/completions"; done
done
gzip -9n "$gen/man"/*.1

# Third-party crates linked into each package, with their licenses.
crates() {
  { echo "Rust crates statically linked into $1 (name version license):"; echo
    cargo tree --locked -e normal --prefix none -f '{p} {l}' "${@:2}" 2>/dev/null |
      sed 's/ (\*)$//; s/ ([^)]*)//' | grep -v '^charter' | sort -u; } > "$work/$1.crates"
}
crates charter -p charter-updater -p charter-agent
crates charter-cli -p charter-cli

# The CycloneDX SBOM of each package's binaries, from cargo metadata and
# Cargo.lock (scripts/cargo-sbom), for scanners on the hosts.
python3 scripts/cargo-sbom --package charter-agent --package charter-updater --out "$work/charter.cdx.json"
python3 scripts/cargo-sbom --package charter-cli --out "$work/charter-cli.cdx.json"

# stage FLAVOR PKG DIR: the files of one package, laid out for deb or rpm.
stage() {
  local flavor=$1 pkg=$2 d=$3 unitdir zshdir
  if [[ $flavor == deb ]]; then unitdir=/lib/systemd/system zshdir=/usr/share/zsh/vendor-completions
  else unitdir=/usr/lib/systemd/system zshdir=/usr/share/zsh/site-functions; fi
  local doc="$d/usr/share/doc/$pkg" bins
  if [[ $pkg == charter ]]; then bins=(charter-agent charter-update); else bins=(charter); fi
  install -d -m 0755 "$d/usr/bin" "$d/usr/share/man/man1" "$doc" \
    "$d/usr/share/bash-completion/completions" "$d$zshdir" "$d/usr/share/fish/vendor_completions.d"
  for b in "${bins[@]}"; do
    strip --strip-unneeded -R .comment -o "$d/usr/bin/$b" "$bin/$b"
    chmod 0755 "$d/usr/bin/$b"
    install -m 0644 "$gen/completions/$b.bash" "$d/usr/share/bash-completion/completions/$b"
    install -m 0644 "$gen/completions/_$b" "$d$zshdir/_$b"
    install -m 0644 "$gen/completions/$b.fish" "$d/usr/share/fish/vendor_completions.d/$b.fish"
    # charter-update-*.1 belong to charter-update, not to the charter CLI.
    if [[ $b == charter ]]; then
      find "$gen/man" -name 'charter*.1.gz' ! -name 'charter-update*' ! -name 'charter-agent*' \
        -exec install -m 0644 -t "$d/usr/share/man/man1" {} +
    else
      install -m 0644 "$gen/man/$b.1.gz" "$gen/man/$b-"*.1.gz "$d/usr/share/man/man1/"
    fi
  done
  install -m 0644 "$work/$pkg.crates" "$doc/THIRD-PARTY"
  install -m 0644 "$work/$pkg.cdx.json" "$doc/$pkg.cdx.json"
  if [[ $pkg == charter ]]; then
    install -d -m 0755 "$d/etc/charter/trust" "$d/etc/sudoers.d" "$d$unitdir" \
      "$d/usr/share/charter" "$d/usr/lib/sysusers.d"
    for f in charter.toml agent.toml; do
      sed "s/@PRODUCT@/$product/g" "$here/etc/$f" > "$d/etc/charter/$f"
      chmod 0644 "$d/etc/charter/$f"
    done
    [[ -n $root_json ]] && install -m 0644 "$root_json" "$d/etc/charter/trust/root.json"
    install -m 0440 "$here/sudoers/charter-update" "$d/etc/sudoers.d/charter-update"
    install -m 0644 "$here"/systemd/* "$d$unitdir/"
    install -m 0644 "$here/common/sysusers.conf" "$d/usr/lib/sysusers.d/charter.conf"
    install -m 0644 "$trusted_root" "$d/usr/share/charter/trusted_root.json"
    install -m 0644 docs/PACKAGING.md docs/CONFIG.md docs/API.md README.md "$doc/"
  else
    install -m 0644 README.md docs/SPEC.md "$doc/"
  fi
}

# Maintainer scripts get the shared setup functions inlined.
inline_setup() { sed -e "/^#SETUP#$/{r $here/common/setup.sh" -e 'd}' "$1"; }

# ---- .deb ---------------------------------------------------------------
declare -A summary=(
  [charter]="signed-release updater and license agent for self-hosted products"
  [charter-cli]="release engineer's tool for charter: keys, roots, manifests, licenses"
)
declare -A descr=(
  [charter]=" charter-update installs only releases that the vendor signed, swaps them
 in atomically, keeps the operator's config and data, and rolls back by
 itself when the new release fails its health check. charter-agent
 enforces the customer's signed license on the host and serves a local API
 for panels. Includes the systemd units, the update door (a socket for the
 group charter-update, and a narrow sudoers rule) and example configs."
  [charter-cli]=" charter makes keys and trust roots, builds and signs release manifests,
 publishes channels to a static repository, issues licenses, and signs
 and verifies blobs (Ed25519 and cosign bundles)."
)
deb_depends() { # the shared libraries the binaries link, as dpkg-shlibdeps sees them
  local tmp="$work/shlibdeps" line d=$1
  shift
  mkdir -p "$tmp/debian"
  printf 'Source: charter\n\nPackage: charter\nArchitecture: any\n' > "$tmp/debian/control"
  line=$(cd "$tmp" && dpkg-shlibdeps -O "${@/#/$d/usr/bin/}" | sed -n 's/^shlibs:Depends=//p') || true
  echo "${line:-libc6}"
}
build_deb() {
  local pkg=$1 d="$work/deb-$1"
  stage deb "$pkg" "$d"
  local doc="$d/usr/share/doc/$pkg"
  sed "s/@PKG@/$pkg/g" "$here/debian/copyright" > "$doc/copyright"
  printf '%s (%s-%s) unstable; urgency=medium\n\n  * Package built by packaging/build.sh.\n\n -- charter maintainers <charter@example.invalid>  %s\n' \
    "$pkg" "$version" "$release" "$(date -u -R -d "@$SOURCE_DATE_EPOCH")" | gzip -9n > "$doc/changelog.Debian.gz"
  chmod 0644 "$doc/copyright" "$doc/changelog.Debian.gz"
  install -D -m 0644 "$here/debian/$pkg.lintian-overrides" "$d/usr/share/lintian/overrides/$pkg"
  find "$doc" -maxdepth 1 -name '*.md' -size +4k -exec gzip -9n {} +
  install -d -m 0755 "$d/DEBIAN"
  local deps extra="" bins
  if [[ $pkg == charter ]]; then
    bins=(charter-agent charter-update)
    deps="$(deb_depends "$d" "${bins[@]}"), passwd, init-system-helpers (>= 1.54~)"
    extra="Recommends: sudo"$'\n'
    for s in postinst prerm postrm; do
      inline_setup "$here/debian/$s" > "$d/DEBIAN/$s"
      chmod 0755 "$d/DEBIAN/$s"
    done
    (cd "$d" && find etc -type f | sort | sed 's|^|/|') > "$d/DEBIAN/conffiles"
  else
    bins=(charter)
    deps=$(deb_depends "$d" "${bins[@]}")
  fi
  cat > "$d/DEBIAN/control" <<EOF
Package: $pkg
Version: $version-$release
Architecture: $arch_deb
Maintainer: charter maintainers <charter@example.invalid>
Installed-Size: $(du -sk --exclude=DEBIAN "$d" | cut -f1)
Depends: $deps
${extra}Section: admin
Priority: optional
Homepage: https://example.invalid/charter
Description: ${summary[$pkg]}
${descr[$pkg]}
EOF
  (cd "$d" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) > "$d/DEBIAN/md5sums"
  chmod 0644 "$d/DEBIAN/control" "$d/DEBIAN/md5sums" "$d/DEBIAN/conffiles" 2>/dev/null || true
  local file="$out/${pkg}_${version}-${release}_${arch_deb}.deb"
  dpkg-deb --root-owner-group -Zxz --build "$d" "$file" >/dev/null
  echo "$file"
}

# ---- .rpm ---------------------------------------------------------------
build_rpm() {
  local top_rpm="$work/rpm" d="$work/rpm-root"
  mkdir -p "$top_rpm"/{BUILD,RPMS,SPECS,SRPMS,BUILDROOT}
  stage rpm charter "$d"
  stage rpm charter-cli "$d"
  local scripts="$work/rpm-scripts"
  mkdir -p "$scripts"
  cp "$here/common/setup.sh" "$scripts/setup.sh"
  rpmbuild -bb --quiet \
    --define "_binary_payload w19.zstdio" \
    --define "_topdir $top_rpm" \
    --define "_rpmdir $out" \
    --define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
    --define "charter_version ${version//-/_}" \
    --define "charter_release $release" \
    --define "charter_stage $d" \
    --define "charter_setup $scripts/setup.sh" \
    --define "charter_with_root $([[ -n $root_json ]] && echo 1 || echo 0)" \
    --define "_unitdir /usr/lib/systemd/system" \
    --target "$arch_rpm" \
    "$here/rpm/charter.spec" >/dev/null
  ls "$out"/charter-*"${version//-/_}-$release.$arch_rpm.rpm"
}

build_deb charter
build_deb charter-cli
((want_rpm)) && build_rpm
rm -rf "$work"
