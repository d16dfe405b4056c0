#!/usr/bin/env bash
# Builds the three packaged binaries in release mode, one cargo invocation
# per package, and checks that the host binaries carry no signing code.
#
#   packaging/build-bins.sh [cargo flags, e.g. --quiet]
#
# Why one package at a time: cargo unifies the features of every package
# selected in one invocation, and charter-cli enables charter-keys' `sign`
# feature; `cargo build -p charter-updater -p charter-agent -p charter-cli`
# would therefore compile charter-keys with signing code into
# charter-update and charter-agent too. Built alone, each package gets only
# the features its own dependency tree asks for (docs/PACKAGING.md).
# Binaries land in ${CARGO_TARGET_DIR:-target}/release.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
cd "$top"
for pkg in charter-updater charter-agent charter-cli; do
  cargo build --release --locked "$@" -p "$pkg" --bins
done
bin="${CARGO_TARGET_DIR:-$top/target}/release"
"$here/no-signing-code.sh" "$bin/charter-update" "$bin/charter-agent"
