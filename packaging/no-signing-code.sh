#!/usr/bin/env bash
# Fails when a host binary links charter's signing code (house style §9:
# host binaries carry no signing code).
#
#   packaging/no-signing-code.sh BINARY...
#
# Two checks, both of which must pass for every BINARY:
#   1. cargo's resolved features: `cargo tree -e normal,build,features` (no dev-dependencies) for the package
#      that builds BINARY (charter-update: charter-updater, charter-agent:
#      charter-agent) lists no `sign` feature of charter-keys;
#   2. the binary itself (an unstripped release build) has no symbol from
#      charter-keys' signing code: the `charter_keys::secret` module (private
#      keys, key files, signers) or `Envelope::sign`, both compiled only
#      with that feature;
#   3. and no trace of keys/src/secret.rs (panic locations and the line
#      tables of code inlined from it), for signing code that LTO inlined
#      away from its symbols.
# The linker drops functions nothing calls, so 2 and 3 look at what the
# binary can run; 1 at what cargo compiles for the package.
# The `charter` CLI links both, which packaging/test.sh uses to show that
# the check can fail.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
(($#)) || { echo "no-signing-code.sh: no binary given" >&2; exit 2; }
for tool in nm strings cargo; do
  command -v $tool >/dev/null || { echo "no-signing-code.sh: $tool is required (binutils, cargo)" >&2; exit 2; }
done
status=0
for b in "$@"; do
  [[ -x $b ]] || { echo "no-signing-code.sh: $b is not an executable" >&2; exit 2; }
  case $(basename "$b") in
    charter-update) pkg=charter-updater ;;
    charter-agent) pkg=charter-agent ;;
    charter) pkg=charter-cli ;;
    *) echo "no-signing-code.sh: $b: which package builds it?" >&2; exit 2 ;;
  esac
  features=$(cd "$top" && cargo tree --locked -e normal,build,features -p "$pkg" -i charter-keys --prefix none 2>/dev/null) || {
    echo "no-signing-code.sh: cargo tree -p $pkg failed" >&2
    exit 2
  }
  if grep -q 'charter-keys feature "sign"' <<<"$features"; then
    echo "$b: package $pkg enables charter-keys' sign feature (cargo tree -e normal,build,features -p $pkg -i charter-keys)"
    status=1
  fi
  syms=$(nm -C "$b" 2>&1) || { echo "no-signing-code.sh: nm $b: $syms" >&2; exit 2; }
  [[ -n $syms && $syms != *"no symbols"* ]] || {
    echo "no-signing-code.sh: $b has no symbols (stripped?); check the unstripped release build" >&2
    exit 2
  }
  found=$(grep -E 'charter_keys::secret::|charter_keys::dsse::Envelope::sign(::|$)' <<<"$syms" | head -n 3 || true)
  if [[ -n $found ]]; then
    echo "$b links signing code, e.g.:"
    sed 's/^/  /' <<<"$found"
    status=1
  fi
  # grep without -q: with pipefail, an early exit of grep -q would make
  # strings die of SIGPIPE and the pipeline read as "not found".
  if strings -a "$b" | grep 'keys/src/secret\.rs' >/dev/null; then
    echo "$b holds code from keys/src/secret.rs (strings -a $b | grep keys/src/secret.rs)"
    status=1
  fi
done
((status == 0)) && echo "no signing code in: $*"
exit $status
