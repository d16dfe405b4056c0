#!/usr/bin/env bash
# bench/cosign.sh: how long one offline Sigstore (cosign) bundle verification
# takes with `charter verify-blob --bundle`, against sigstore-python, in one run.
#
# What it measures: wall-clock time of the WHOLE PROCESS (exec, startup,
# reading the trusted root and bundle, verifying, exit) for N verifications of
# the same bundle + artifact with each tool, the runs of the two tools
# interleaved (charter, python, charter, python, ...) so that drift in the
# machine's load hits both alike. Reported per tool: mean and median seconds
# per verification, then the ratio python/charter of each.
#
#   charter verify-blob --bundle B --certificate-identity I
#       --certificate-oidc-issuer O --trusted-root ROOT FILE
#   python -m sigstore --trust-config CTC verify identity --offline
#       --bundle B --cert-identity I --cert-oidc-issuer O FILE
#
# sigstore-python (4.x) takes no bare trusted_root.json: its custom-root flag
# is the top-level `--trust-config FILE`, a ClientTrustConfig JSON
# (mediaType application/vnd.dev.sigstore.clienttrustconfig.v0.1+json) that
# wraps a trustedRoot and a signingConfig. This script builds that file in the
# scratch directory from ROOT (the same trusted root charter is given) and a
# minimal signingConfig (only signing reads it; verification uses the
# trustedRoot alone). With --trust-config, sigstore-python does no TUF fetch;
# --offline also keeps it off the network.
#
# TARGET: charter at least 50x faster than sigstore-python per verification,
# whole process. PASS needs both the mean ratio and the median ratio >= 50.
#
# Sanity, before timing (these runs also warm the page cache): both tools must
# exit 0 on the happy path and non-zero with a wrong identity. Every timed run
# must exit 0 as well.
#
# Test data: the sigstore-conformance case (default
# bundle-verify/happy-path-v0.3-new-mediaType) in ../shared/fixtures/sigstore,
# read in place; see its README.md. A case's own `artifact`, `identity`,
# `issuer` and `trusted_root.json` are used when present.
#
# Usage:
#   bench/cosign.sh
# Environment:
#   BENCH_N            verifications per tool (default 20)
#   BENCH_CASE         case folder under bundle-verify/ (default
#                      happy-path-v0.3-new-mediaType)
#   SIGSTORE_FIXTURES  the fixtures folder (default ../shared/fixtures/sigstore
#                      beside the checkout)
#   BENCH_PYTHON       a python that already has sigstore installed; otherwise
#                      python3 is used if it has it, else sigstore is installed
#                      with pip into a venv in the scratch directory
#   BENCH_BUILD=0      do not build; use target/release/charter as it is
#   BENCH_KEEP=1       keep the scratch directory (venv, trust config, logs)
#   CARGO_TARGET_DIR   where the binaries are (default ./target)

set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
N=${BENCH_N:-20}
CASE=${BENCH_CASE:-happy-path-v0.3-new-mediaType}
FIX=${SIGSTORE_FIXTURES:-$ROOT/../shared/fixtures/sigstore}
TARGET_RATIO=50

log() { printf '%s\n' "$*" >&2; }
die() { log "cosign.sh: $*"; exit 1; }

[[ $N =~ ^[1-9][0-9]*$ ]] || die "BENCH_N must be a positive integer"
# $EPOCHREALTIME (bash >= 5) times without forking a `date` per sample.
[[ -n ${EPOCHREALTIME:-} ]] || die "needs bash >= 5 (\$EPOCHREALTIME)"

WORK=$(mktemp -d -t charter-cosign-bench.XXXXXX)
cleanup() {
  if [[ ${BENCH_KEEP:-0} == 1 ]]; then
    log "kept $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

# ---- the test case -----------------------------------------------------------
[[ -d $FIX ]] || die "no fixtures at $FIX (set SIGSTORE_FIXTURES)"
FIX=$(cd "$FIX" && pwd)
CASE_DIR=$FIX/bundle-verify/$CASE
[[ -d $CASE_DIR ]] || die "no case $CASE_DIR"
[[ $CASE != *_fail ]] || die "$CASE is a case that must fail; pick a passing one"
[[ ! -e $CASE_DIR/key.pub ]] || die "$CASE is a managed-key case; this bench verifies identities"
BUNDLE=$CASE_DIR/bundle.sigstore.json
ARTIFACT=$FIX/bundle-verify/a.txt
[[ -e $CASE_DIR/artifact ]] && ARTIFACT=$CASE_DIR/artifact
IDENTITY='https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main'
ISSUER='https://token.actions.githubusercontent.com'
[[ -e $CASE_DIR/identity ]] && IDENTITY=$(<"$CASE_DIR/identity")
[[ -e $CASE_DIR/issuer ]] && ISSUER=$(<"$CASE_DIR/issuer")
TRUSTED_ROOT=$FIX/trusted_root.production.json
[[ -e $CASE_DIR/trusted_root.json ]] && TRUSTED_ROOT=$CASE_DIR/trusted_root.json
WRONG_IDENTITY='https://github.com/someone-else/repo/.github/workflows/release.yml@refs/heads/main'
for f in "$BUNDLE" "$ARTIFACT" "$TRUSTED_ROOT"; do
  [[ -r $f ]] || die "cannot read $f"
done

# ---- charter -----------------------------------------------------------------
if [[ ${BENCH_BUILD:-1} != 0 ]]; then
  log "building charter (cargo build --release -p charter-cli; may wait for the cargo lock)..."
  (cd "$ROOT" && cargo build --release -p charter-cli) >&2
fi
CHARTER=$TARGET_DIR/release/charter
[[ -x $CHARTER ]] || die "$CHARTER is missing: cargo build --release -p charter-cli"

# ---- sigstore-python -----------------------------------------------------------
has_sigstore() { "$1" -c 'import sigstore' >/dev/null 2>&1; }
PY=
if [[ -n ${BENCH_PYTHON:-} ]]; then
  has_sigstore "$BENCH_PYTHON" || die "BENCH_PYTHON=$BENCH_PYTHON has no sigstore module"
  PY=$BENCH_PYTHON
elif command -v python3 >/dev/null && has_sigstore python3; then
  PY=python3
else
  command -v python3 >/dev/null || die "no python3 to install sigstore-python with"
  log "installing sigstore-python into $WORK/venv (pip install sigstore)..."
  python3 -m venv "$WORK/venv" >&2
  "$WORK/venv/bin/python" -m pip install --quiet --disable-pip-version-check sigstore >&2
  PY=$WORK/venv/bin/python
fi
# Time the interpreter itself, not a wrapper (a pyenv shim is a shell script).
PY=$("$PY" -c 'import sys; print(sys.executable)')
SIGSTORE_VERSION=$("$PY" -c 'import importlib.metadata as m; print(m.version("sigstore"))')
PY_VERSION=$("$PY" -c 'import platform; print(platform.python_version())')

# The ClientTrustConfig for --trust-config, built from the same trusted root.
CTC=$WORK/client_trust_config.json
"$PY" - "$TRUSTED_ROOT" "$CTC" <<'EOF'
import json, sys
with open(sys.argv[1]) as f:
    root = json.load(f)
config = {
    "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
    "trustedRoot": root,
    # Signing reads this; verification does not. Minimal valid content.
    "signingConfig": {"mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json"},
}
with open(sys.argv[2], "w") as f:
    json.dump(config, f)
EOF

# ---- the two commands ------------------------------------------------------------
charter_cmd() { # identity
  "$CHARTER" verify-blob --bundle "$BUNDLE" --certificate-identity "$1" \
    --certificate-oidc-issuer "$ISSUER" --trusted-root "$TRUSTED_ROOT" "$ARTIFACT"
}
python_cmd() { # identity
  "$PY" -m sigstore --trust-config "$CTC" verify identity --offline \
    --bundle "$BUNDLE" --cert-identity "$1" --cert-oidc-issuer "$ISSUER" "$ARTIFACT"
}

# ---- the machine -------------------------------------------------------------------
NPROC=$(nproc)
CPU=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)
[[ -n $CPU ]] || CPU=$(lscpu 2>/dev/null | awk -F': *' '/^Model name/ {print $2; exit}')
FAM=$(awk -F': *' '/^cpu family/ {f=$2} /^model[ \t]*:/ {m=$2} END {if (f != "") printf "family %s model %s", f, m}' /proc/cpuinfo)
CPU="$CPU${FAM:+ ($FAM)}"
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)

echo "== bench/cosign.sh: offline Sigstore bundle verification, whole process =="
echo "machine:   nproc=$NPROC, CPU: $CPU, kernel $(uname -r)"
echo "load avg:  $LOAD0 (before)"
echo "case:      bundle-verify/$CASE"
echo "bundle:    $BUNDLE"
echo "artifact:  $ARTIFACT"
echo "root:      $TRUSTED_ROOT"
echo "identity:  $IDENTITY"
echo "issuer:    $ISSUER"
echo "charter:   $CHARTER ($("$CHARTER" --version))"
echo "python:    $PY (Python $PY_VERSION), sigstore $SIGSTORE_VERSION"
echo "  charter verify-blob --bundle B --certificate-identity I --certificate-oidc-issuer O --trusted-root ROOT FILE"
echo "  python -m sigstore --trust-config CTC verify identity --offline --bundle B --cert-identity I --cert-oidc-issuer O FILE"
echo "  (CTC: ClientTrustConfig JSON built from ROOT; sigstore-python takes no bare trusted root)"
echo

# ---- sanity --------------------------------------------------------------------------
echo "-- sanity --"
SANE=1
sanity() { # label expect(0|nonzero) function identity
  local label=$1 expect=$2 fn=$3 id=$4 rc=0
  "$fn" "$id" >"$WORK/sanity.out" 2>&1 || rc=$?
  local ok=0
  if [[ $expect == 0 ]]; then [[ $rc == 0 ]] && ok=1; else [[ $rc != 0 ]] && ok=1; fi
  if [[ $ok == 1 ]]; then
    printf '  %-36s exit %-3s ok\n' "$label" "$rc"
  else
    printf '  %-36s exit %-3s WRONG (expected %s)\n' "$label" "$rc" "$expect"
    sed 's/^/    | /' "$WORK/sanity.out" | tail -n 20
    SANE=0
  fi
}
sanity "charter, happy path" 0 charter_cmd "$IDENTITY"
sanity "sigstore-python, happy path" 0 python_cmd "$IDENTITY"
sanity "charter, wrong identity" nonzero charter_cmd "$WRONG_IDENTITY"
sanity "sigstore-python, wrong identity" nonzero python_cmd "$WRONG_IDENTITY"
[[ $SANE == 1 ]] || { echo; echo "FAIL: sanity checks failed; not timing"; exit 1; }
echo

# ---- timing ------------------------------------------------------------------------------
# Per run: microseconds from $EPOCHREALTIME ("sec.usec", C locale) taken
# just before and after, with no fork of its own around the process.
: >"$WORK/charter.us"
: >"$WORK/python.us"
timed() { # fn outfile label i
  local fn=$1 out=$2 label=$3 i=$4 t0 t1 rc=0
  t0=${EPOCHREALTIME/./}
  "$fn" "$IDENTITY" >/dev/null 2>"$WORK/run.err" || rc=$?
  t1=${EPOCHREALTIME/./}
  if [[ $rc != 0 ]]; then
    echo "FAIL: $label run $i exited $rc:"
    sed 's/^/    | /' "$WORK/run.err" | tail -n 20
    exit 1
  fi
  echo "$((10#$t1 - 10#$t0))" >>"$out"
}
echo "-- timing: N=$N whole-process verifications per tool, interleaved --"
for ((i = 1; i <= N; i++)); do
  timed charter_cmd "$WORK/charter.us" charter "$i"
  timed python_cmd "$WORK/python.us" sigstore-python "$i"
done
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)

# stats FILE -> "mean median min max" in seconds
stats() {
  sort -n "$1" | awk '
    { v[NR] = $1; s += $1 }
    END {
      m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
      printf "%.6f %.6f %.6f %.6f\n", s / NR / 1e6, m / 1e6, v[1] / 1e6, v[NR] / 1e6
    }'
}
read -r C_MEAN C_MED C_MIN C_MAX < <(stats "$WORK/charter.us")
read -r P_MEAN P_MED P_MIN P_MAX < <(stats "$WORK/python.us")

printf '\n  %-18s %12s %12s %12s %12s\n' "s/verification" "mean" "median" "min" "max"
printf '  %-18s %12s %12s %12s %12s\n' "charter" "$C_MEAN" "$C_MED" "$C_MIN" "$C_MAX"
printf '  %-18s %12s %12s %12s %12s\n' "sigstore-python" "$P_MEAN" "$P_MED" "$P_MIN" "$P_MAX"
echo
echo "load avg:  $LOAD1 (after)"
echo

R_MEAN=$(awk -v p="$P_MEAN" -v c="$C_MEAN" 'BEGIN { printf "%.1f", p / c }')
R_MED=$(awk -v p="$P_MED" -v c="$C_MED" 'BEGIN { printf "%.1f", p / c }')
echo "ratio python/charter: mean ${R_MEAN}x, median ${R_MED}x (target >= ${TARGET_RATIO}x)"
if awk -v a="$R_MEAN" -v b="$R_MED" -v t="$TARGET_RATIO" 'BEGIN { exit !(a >= t && b >= t) }'; then
  echo "PASS: charter is >= ${TARGET_RATIO}x faster than sigstore-python per verification (mean and median)"
else
  echo "FAIL: charter is not >= ${TARGET_RATIO}x faster than sigstore-python per verification (mean and median)"
  exit 1
fi
