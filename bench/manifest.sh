#!/usr/bin/env bash
# bench/manifest.sh: how fast `charter` hashes and packs a release tree,
# next to the standard tools doing the same work, on the same tree, in one run.
#
# What it measures (best wall time of 3 runs, tree in the page cache):
#
#   1. Hashing alone
#        charter hash-tree TREE                       (parallel, all cores)
#        charter hash-tree --threads 1 TREE           (one core, info)
#        find | xargs -0 sha256sum                    (one core)
#        find | xargs -0 -P2 -n 64 sha256sum          (two cores, to be fair)
#        openssl speed -evp sha256, 1 MiB blocks      (one-core ceiling: no I/O)
#        openssl speed -multi NPROC, the same         (all-core ceiling, info)
#      TARGET: charter hash-tree MB/s >= 1.7 x openssl's one-core MB/s.
#
#   2. Whole create
#        charter manifest create ... (tar.zst, level 3: walk, hash, tar,
#                                      compress, hash the artifact, fsync)
#        tar -cf - | zstd -T0 -3                      (packing alone)
#        the same, then find | xargs sha256sum        (packing, then hashing)
#        the same, then sync FILE                     (packing + fsync, info)
#      TARGET: charter time <= 1.15 x tar|zstd time;
#              charter peak RSS < 64 MiB.
#
#   3. The machine: nproc, CPU model, SHA extensions (sha_ni), load.
#
# Units: MB/s is 10^6 bytes/s of file content (openssl's "k" is 1000 bytes/s,
# so its figure divides by 1000). Peak RSS is MiB, from GNU time's %M; for a
# shell pipeline %M is the largest single process in it, not the sum. Wall
# time comes from bash's $EPOCHREALTIME (microseconds) because time's %e has
# only 10 ms resolution, too coarse for small trees. RSS is the worst of the
# 3 runs; time is the best.
#
# Baseline (CHARTER_BASELINE_BIN=DIR, DIR holding the `charter` of another
# build, e.g. the commit before a change): every charter row (hash-tree,
# hash-tree --threads 1, manifest create) is measured with DIR/charter too,
# in the same run, run for run next to the current one, and printed as an
# extra row "... (baseline <git describe of the commit DIR's charter was
# built from, or DIR>)" under the charter row, with a line
# "current/baseline" of time and peak RSS (and a summary of them all at the
# end). The order alternates run by run (current first in odd runs, baseline
# first in even ones), so drift in the machine's load hits both sides alike:
# compare these ratios, not figures of separate runs. The peer rows are
# measured once, as without a baseline. The baseline's create writes to
# OUT/charter-base; whether its artifact and manifest are byte for byte the
# current one's is printed (info). Build both sides the same way: without
# CHARTER this script builds `cargo build --release -p charter-cli`
# (default features), so either build the baseline like that too, or give
# CHARTER from a build made like the baseline's (update.sh's
# `--workspace --all-features --bins` build serves both scripts).
#
# Usage:
#   bench/manifest.sh                        # 1 GiB in ~2,000 files
#   BENCH_SIZE_MB=64 bench/manifest.sh       # quick run
#   CHARTER=target/release/charter CHARTER_BASELINE_BIN=../base-target/release \
#       bench/manifest.sh                    # current vs another build
# Environment:
#   BENCH_SIZE_MB  tree size in MiB (default 1024)
#   BENCH_FILES    number of files (default ~2 per MiB: 2,000 at 1 GiB, so
#                  small trees keep the same mix of file sizes; at least 100)
#   BENCH_DIR      work directory (default: a new mktemp -d)
#   BENCH_KEEP=1   keep the tree and outputs (a kept tree of the same size
#                  and file count is reused by the next run in that BENCH_DIR)
#   BENCH_RUNS     runs per measurement (default 3)
#   CHARTER        use this charter binary instead of building one
#   CHARTER_BASELINE_BIN  directory holding the charter of another build,
#                  measured next to the current one (see Baseline above;
#                  default: none)
#   BENCH_VERBOSE=1  print every run (time, RSS, CPU, others' CPU) on stderr
#   BENCH_WAIT_IDLE  seconds to wait, before each run, for other processes
#                  to leave the CPUs idle (default 0: just report them)
#
# Other CPU load (a compile on the same machine) skews everything: the script
# measures other processes' CPU use during every timed run and warns at the
# end; BENCH_WAIT_IDLE=N makes it wait up to N s for idle CPUs before each run.

set -euo pipefail
export LC_ALL=C # decimal points in $EPOCHREALTIME and awk, byte-wise sort

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SIZE_MB=${BENCH_SIZE_MB:-1024}
FILES=${BENCH_FILES:-$(((SIZE_MB * 2000 / 1024) > 100 ? SIZE_MB * 2000 / 1024 : 100))}
RUNS=${BENCH_RUNS:-3}
SEED=20260101 # file sizes and text content are reproducible; random files are not

log() { printf '%s\n' "$*" >&2; }
die() { log "bench: $*"; exit 1; }

# ---------------------------------------------------------------------------
# Tools: install what is missing (one apt-get update, one install).
# ---------------------------------------------------------------------------
install_missing() {
    local need=()
    [[ -x /usr/bin/time ]] || need+=(time) # GNU time (bash's `time` has no RSS)
    command -v zstd >/dev/null || need+=(zstd)
    command -v openssl >/dev/null || need+=(openssl)
    local c
    for c in sha256sum nproc mktemp cat head sort; do
        command -v "$c" >/dev/null || { need+=(coreutils); break; }
    done
    command -v tar >/dev/null || need+=(tar)
    command -v xargs >/dev/null || need+=(findutils)
    command -v awk >/dev/null || need+=(mawk)
    ((${#need[@]})) || return 0
    local sudo=()
    [[ $(id -u) -eq 0 ]] || sudo=(sudo)
    log "bench: installing ${need[*]}"
    "${sudo[@]}" apt-get update
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y "${need[@]}"
}

# ---------------------------------------------------------------------------
# The test tree: FILES files, SIZE_MB MiB in all, sizes log-uniform (a few
# hundred bytes to a few MiB, a handful of big ones), spread over nested
# directories. Half the bytes are /dev/urandom (incompressible), half
# log-like text (zstd -3 gets ~4:1), interleaved so both kinds are mixed
# through the archive.
# ---------------------------------------------------------------------------
gen_tree() {
    local tree=$1 total=$((SIZE_MB * 1048576))
    local plan=$W/plan
    # One line per file: kind size path. Sizes are scaled to sum to `total`
    # exactly; each file takes the kind that has fewer bytes so far.
    awk -v n="$FILES" -v total="$total" -v seed="$SEED" 'BEGIN {
        srand(seed); lo = log(1024); hi = log(16 * 1048576)
        for (i = 0; i < n; i++) { s[i] = exp(lo + rand() * (hi - lo)); sum += s[i] }
        for (i = 0; i < n; i++) {
            sz = (i == n - 1) ? total - acc : int(s[i] * total / sum); acc += sz
            kind = (rb <= tb) ? "rand" : "text"
            if (kind == "rand") rb += sz; else tb += sz
            dir = sprintf("d%02d", i % 16)
            if (i % 3 == 0) dir = dir "/sub" (i % 5)
            printf "%s %d %s/f%05d.%s\n", kind, sz, dir, i, (kind == "rand" ? "bin" : "log")
        }
    }' >"$plan"

    rm -rf "$tree"
    mkdir -p "$tree"
    (cd "$tree" && awk '{ sub(/\/[^\/]*$/, "", $3); print $3 }' "$plan" | sort -u | xargs mkdir -p)

    # Random files.
    local kind size path
    while read -r kind size path; do
        if [[ $kind == rand ]]; then
            head -c "$size" /dev/urandom >"$tree/$path"
        fi
    done <"$plan"

    # Text files: one awk writes them all, log lines cut to the exact size.
    awk -v tree="$tree" -v seed="$SEED" 'BEGIN {
        srand(seed)
        split("INFO INFO INFO INFO DEBUG DEBUG WARN ERROR", lv, " ")
        split("api worker scheduler db cache auth http updater", cm, " ")
        split("GET POST PUT DELETE", mt, " ")
        t = 1767225600
    }
    $1 == "text" {
        f = tree "/" $3; want = $2; n = 0
        while (n < want) {
            t += rand() * 0.05; lvl = lv[int(rand() * 8) + 1]; c = cm[int(rand() * 8) + 1]; r = rand()
            if (r < 0.5)
                line = sprintf("%d.%06d %-5s [%s-%d] %s /api/v1/items/%d status=%d bytes=%d dur_ms=%.1f\n",
                    t, int(rand() * 1e6), lvl, c, int(rand() * 16), mt[int(rand() * 4) + 1],
                    int(rand() * 50000), (rand() < 0.9 ? 200 : 404), int(rand() * 65536), rand() * 250)
            else if (r < 0.8)
                line = sprintf("%d.%06d %-5s [%s-%d] job id=%08x finished in %d ms, %d rows\n",
                    t, int(rand() * 1e6), lvl, c, int(rand() * 16), int(rand() * 2^31),
                    int(rand() * 5000), int(rand() * 1000))
            else
                line = sprintf("%d.%06d %-5s [%s-%d] connection from 10.%d.%d.%d:%d closed: %s\n",
                    t, int(rand() * 1e6), lvl, c, int(rand() * 16), int(rand() * 256), int(rand() * 256),
                    int(rand() * 256), 1024 + int(rand() * 60000), (rand() < 0.5 ? "timeout" : "reset by peer"))
            if (n + length(line) > want) line = substr(line, 1, want - n)
            printf "%s", line > f; n += length(line)
        }
        if (want == 0) printf "" > f
        close(f)
    }' "$plan"
}

# ---------------------------------------------------------------------------
# Measuring.
#
# Other work on the machine (a colleague's compile) skews timings, so every
# run also measures it: CPU time the whole machine spent busy during the run
# (/proc/stat) minus the CPU time of the measured command (time's %U + %S),
# as a share of the run's wall time x nproc. The worst share among the
# reported (best) runs is printed at the end (MAX_OTHER). wait_idle first
# waits, up to BENCH_WAIT_IDLE seconds, for the CPUs to be idle.
# ---------------------------------------------------------------------------
MAX_OTHER=0
NPROC=$(nproc)
busy_jiffies() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
wait_idle() {
    local start=$SECONDS deadline=$((SECONDS + ${BENCH_WAIT_IDLE:-0})) a b
    while :; do
        a=$(busy_jiffies)
        sleep 0.5
        b=$(busy_jiffies)
        # /proc/stat counts in 1/100 s: 0.5 s x nproc x 10% = 5 x nproc ticks.
        ((b - a >= 5 * NPROC && SECONDS < deadline)) || break
    done
    WAITED=$((SECONDS - start))
}

# The page cache may not keep the tree between runs: some VMs reclaim cold
# pages proactively (DAMON "pageout" drops page cache untouched for ~30 s),
# and a run that reads from disk measures the disk. So the tree is read
# (warmed) again right before every run, and time's %I (blocks read from
# disk) is checked: MAX_READ_BLOCKS (worst among the reported runs) should
# stay 0 (a warning is printed above 1% of the tree). On such a machine a tmpfs BENCH_DIR (/dev/shm) avoids the issue.
MAX_READ_BLOCKS=0
warm_tree() { find "$TREE" -type f -print0 | xargs -0 cat >/dev/null; }

# measure PREP CMD: RUNS times, runs PREP (untimed: remove outputs, flush
# dirty pages), warms the tree, then times CMD under GNU time. Sets BEST_S
# (min wall seconds) and PEAK_MIB (max of time's %M over the runs). Commands
# run in `bash -c` with TREE, OUT, CHARTER exported, under `set -euo
# pipefail`.
measure() {
    local prep=$1 cmd=$2 run
    declare -A m_best=() m_peak=() m_other=() m_blocks=()
    for ((run = 1; run <= RUNS; run++)); do
        measure_run cur "$run" "$prep" "$cmd"
    done
    measure_done cur
    BEST_S=${m_best[cur]} PEAK_MIB=${m_peak[cur]}
}

# measure_ab PREP CMD BASE_CMD [BASE_PREP]: as measure, for a charter row:
# CMD with the current charter and, with a baseline, BASE_CMD (the same with
# "$BASE_CHARTER"; BASE_PREP before it, default PREP) in the same runs, the
# order alternating run by run. Sets BEST_S and PEAK_MIB (current),
# BASE_BEST_S and BASE_PEAK_MIB (baseline).
measure_ab() {
    local prep=$1 cmd=$2 base_cmd=$3 base_prep=${4:-$1} run
    [[ -n $BASE_CHARTER ]] || { measure "$prep" "$cmd"; return; }
    declare -A m_best=() m_peak=() m_other=() m_blocks=()
    for ((run = 1; run <= RUNS; run++)); do
        if ((run % 2)); then
            measure_run cur "$run" "$prep" "$cmd"
            measure_run base "$run" "$base_prep" "$base_cmd"
        else
            measure_run base "$run" "$base_prep" "$base_cmd"
            measure_run cur "$run" "$prep" "$cmd"
        fi
    done
    measure_done cur
    measure_done base
    BEST_S=${m_best[cur]} PEAK_MIB=${m_peak[cur]}
    BASE_BEST_S=${m_best[base]} BASE_PEAK_MIB=${m_peak[base]}
}

# measure_run SIDE RUN PREP CMD: one run, into the caller's m_best, m_peak,
# m_other and m_blocks (others' CPU share and disk reads of the best run) of
# SIDE.
measure_run() {
    local side=$1 run=$2 prep=$3 cmd=$4 t0 t1 j0 j1 el kib cpu blocks other
    bash -c "set -euo pipefail; $prep"
    warm_tree
    wait_idle
    ((WAITED < 10)) || warm_tree # long wait: warm again
    j0=$(busy_jiffies)
    t0=$EPOCHREALTIME
    if ! /usr/bin/time -f '%e %M %U %S %I' -o "$W/time.out" bash -c "set -euo pipefail; $cmd"; then
        cat "$W/time.out" >&2
        die "failed: $cmd"
    fi
    t1=$EPOCHREALTIME
    j1=$(busy_jiffies)
    read -r _ kib cpu blocks < <(awk 'END { print $1, $2, $3 + $4, $5 }' "$W/time.out")
    el=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", b - a }')
    other=$(awk -v j="$((j1 - j0))" -v c="$cpu" -v e="$el" -v n="$NPROC" \
        'BEGIN { o = 100 * (j / 100 - c) / (e * n); printf "%.0f", (o > 0 ? o : 0) }')
    [[ ${BENCH_VERBOSE:-0} != 1 ]] ||
        log "  run $run: ${el}s, $kib KiB, cpu ${cpu}s, other ${other}%, read ${blocks}x512B: $cmd"
    if [[ -z ${m_best[$side]:-} ]] || awk -v a="${m_best[$side]}" -v b="$el" 'BEGIN { exit !(b < a) }'; then
        m_best[$side]=$el m_other[$side]=$other m_blocks[$side]=$blocks
    fi
    m_peak[$side]=$(awk -v a="${m_peak[$side]:-0}" -v k="$kib" 'BEGIN { m = k / 1024; print ((m > a) ? m : a) }')
}
measure_done() { # SIDE: fold its best run's others' CPU and disk reads in
    ((m_other[$1] <= MAX_OTHER)) || MAX_OTHER=${m_other[$1]}
    ((m_blocks[$1] <= MAX_READ_BLOCKS)) || MAX_READ_BLOCKS=${m_blocks[$1]}
}

# openssl's SHA-256 throughput on 1 MiB blocks, in MB/s (best of RUNS), on
# one core, or with `openssl_mbps -multi N` summed over N processes. Its
# table is in 1000s of bytes per second: "sha256  1937768.45k".
openssl_mbps() {
    local best=0 v run
    for ((run = 1; run <= RUNS; run++)); do
        wait_idle
        v=$(openssl speed "$@" -evp sha256 -bytes 1048576 -seconds 3 2>/dev/null |
            awk '$1 == "sha256" { v = $NF; sub(/k$/, "", v); print v / 1000 }')
        [[ -n $v ]] || die "could not parse the output of openssl speed"
        best=$(awk -v a="$best" -v b="$v" 'BEGIN { print ((b > a) ? b : a) }')
    done
    echo "$best"
}

# ---------------------------------------------------------------------------
# Table output.
# ---------------------------------------------------------------------------
ROWFMT='%-52s %9s %9s %9s   %s\n'
header() {
    printf '\n%s\n' "$1"
    printf "$ROWFMT" "what" "seconds" "MB/s" "RSS MiB" "ratio"
    printf "$ROWFMT" "----" "-------" "----" "-------" "-----"
}
# row WHAT SECONDS RSS_MIB RATIO_TEXT (MB/s computed from BYTES)
row() {
    local mbps
    mbps=$(awk -v b="$BYTES" -v s="$2" 'BEGIN { printf "%.0f", b / 1e6 / s }')
    printf "$ROWFMT" "$1" "$(printf %.3f "$2")" "$mbps" "$(printf %.1f "$3")" "$4"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
mbps_of() { awk -v b="$BYTES" -v s="$1" 'BEGIN { printf "%.3f", b / 1e6 / s }'; }
verdict() { awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN {
    ok = (op == ">=") ? v >= t : (op == "<=") ? v <= t : v < t
    print ok ? "PASS" : "FAIL" }'; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
# What built DIR: the commit its charter was built from (`charter version
# --json`), as `git describe` names it in this repository (or the bare
# commit if this clone does not have it), else DIR itself.
bin_desc() { # DIR
    local c d
    c=$("$1/charter" version --json 2>/dev/null | sed -n 's/^ *"commit": *"\([0-9a-f]\{7,\}\)".*/\1/p' | head -1)
    if [[ -z $c ]]; then
        echo "$1"
    elif d=$(git -C "$ROOT" describe --always "$c" 2>/dev/null); then
        echo "$d"
    else
        echo "${c:0:12}"
    fi
}
# base_row WHAT CUR_S CUR_RSS RATIO_TEXT: under a charter row, the
# baseline's row (from BASE_BEST_S, BASE_PEAK_MIB) and the current/baseline
# line. base_summary keeps a line for the summary at the end.
BASE_LINES=()
base_row() { # WHAT CUR_S CUR_RSS RATIO_TEXT
    [[ -n $BASE_CHARTER ]] || return 0
    row "$1 (baseline $BASE_DESC)" "$BASE_BEST_S" "$BASE_PEAK_MIB" "$4"
    printf '  current/baseline: time %sx, peak RSS %sx\n' "$(ratio "$2" "$BASE_BEST_S")" "$(ratio "$3" "$BASE_PEAK_MIB")"
}
base_summary() { # WHAT CUR_S CUR_RSS BASE_S BASE_RSS
    [[ -n $BASE_CHARTER ]] || return 0
    BASE_LINES+=("$(printf '  %-52s time %sx  peak RSS %sx' "$1" "$(ratio "$2" "$4")" "$(ratio "$3" "$5")")")
}

# ===========================================================================
install_missing
((BASH_VERSINFO[0] >= 5)) || die "needs bash >= 5 (\$EPOCHREALTIME)"

# Build charter (release), unless CHARTER names a binary to use as it is.
if [[ -n ${CHARTER:-} ]]; then
    log "bench: using CHARTER=$CHARTER (not building)"
else
    command -v cargo >/dev/null || die "cargo not found (install Rust)"
    log "bench: building charter (cargo build --release -p charter-cli)"
    (cd "$ROOT" && cargo build --release -p charter-cli)
    CHARTER=${CARGO_TARGET_DIR:-$ROOT/target}/release/charter
fi
[[ -x $CHARTER ]] || die "no binary at $CHARTER"
CHARTER=$(cd "$(dirname "$CHARTER")" && pwd)/$(basename "$CHARTER")
BASE_CHARTER="" BASE_DESC=""
if [[ -n ${CHARTER_BASELINE_BIN:-} ]]; then
    d=$(cd "$CHARTER_BASELINE_BIN" && pwd) || die "CHARTER_BASELINE_BIN: no directory $CHARTER_BASELINE_BIN"
    [[ -x $d/charter ]] || die "CHARTER_BASELINE_BIN: no charter in $d"
    BASE_CHARTER=$d/charter
    BASE_DESC=$(bin_desc "$d")
    log "bench: baseline $BASE_CHARTER ($BASE_DESC), measured next to $CHARTER"
fi

# Work directory. Given BENCH_DIR, only what this script creates in it is
# removed at the end; a mktemp directory is removed whole.
if [[ -n ${BENCH_DIR:-} ]]; then
    W=$BENCH_DIR
    mkdir -p "$W"
else
    W=$(mktemp -d)
fi
W=$(cd "$W" && pwd)
TREE=$W/tree
OUT=$W/out
cleanup() {
    if [[ ${BENCH_KEEP:-0} == 1 ]]; then
        log "bench: kept $W"
    else
        rm -rf "$TREE" "$OUT" "$W/plan" "$W/time.out" "$W/tree.stamp" "$W"/*.sums
        rmdir "$W" 2>/dev/null || true
    fi
}
trap cleanup EXIT
export TREE OUT CHARTER BASE_CHARTER

# The tree (reused if BENCH_KEEP left one of the same shape here).
stamp="$SIZE_MB MiB, $FILES files, seed $SEED"
if [[ -d $TREE && -f $W/tree.stamp && $(cat "$W/tree.stamp") == "$stamp" ]]; then
    log "bench: reusing $TREE ($stamp)"
else
    log "bench: generating $TREE ($stamp)"
    gen_tree "$TREE"
    echo "$stamp" >"$W/tree.stamp"
fi
rm -rf "$OUT"
mkdir -p "$OUT"
BYTES=$(find "$TREE" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
NFILES=$(find "$TREE" -type f | wc -l)
TEXT_BYTES=$(find "$TREE" -type f -name '*.log' -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')

# Sanity: charter and sha256sum must agree on every file (so both sides of
# the comparison do the same work). Untimed.
(cd "$TREE" && find . -type f -print0 | xargs -0 sha256sum | sed 's|  \./|  |' | sort) >"$W/ref.sums"
"$CHARTER" hash-tree "$TREE" | sort >"$W/charter.sums"
cmp -s "$W/ref.sums" "$W/charter.sums" || die "charter hash-tree and sha256sum disagree"
if [[ -n $BASE_CHARTER ]]; then
    "$BASE_CHARTER" hash-tree "$TREE" | sort | cmp -s "$W/ref.sums" - || die "the baseline's charter hash-tree and sha256sum disagree"
fi

# Warm the page cache: every measurement reads from memory, not the disk
# (measure warms it again before each run).
warm_tree

# ---------------------------------------------------------------------------
# 3. The machine (printed first).
# ---------------------------------------------------------------------------
SHA_NI=no
grep -qw sha_ni /proc/cpuinfo && SHA_NI=yes
echo "charter manifest benchmark"
echo "  nproc:        $(nproc)"
echo "  CPU:          $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
echo "  sha_ni:       $SHA_NI"
echo "  load before:  $(loadavg)"
echo "  charter:      $CHARTER ($(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?'))"
[[ -z $BASE_CHARTER ]] || echo "  baseline:     $BASE_CHARTER ($BASE_DESC; runs alternate: current first in odd runs, baseline first in even ones)"
echo "  tools:        $(zstd -V | sed 's/^\*\*\* //; s/, by.*//'); $(openssl version | cut -d' ' -f1-2); $(tar --version | head -1)"
echo "  tree:         $TREE"
awk -v b="$BYTES" -v n="$NFILES" -v t="$TEXT_BYTES" 'BEGIN {
    printf "                %.1f MiB in %d files (%.0f%% log-like text, the rest /dev/urandom)\n",
        b / 1048576, n, 100 * t / b }'
echo "  timing:       best of $RUNS runs, page cache warm; RSS: worst of $RUNS"

# ---------------------------------------------------------------------------
# 1. Hashing alone.
# ---------------------------------------------------------------------------
log "bench: openssl speed (3 s x $RUNS, then the same on all cores)"
OSSL=$(openssl_mbps)
OSSL_ALL=$(openssl_mbps -multi "$NPROC")

log "bench: hashing"
measure ":" 'find "$TREE" -type f -print0 | xargs -0 sha256sum >/dev/null'
S_SUM1=$BEST_S R_SUM1=$PEAK_MIB
measure ":" 'find "$TREE" -type f -print0 | xargs -0 -P2 -n 64 sha256sum >/dev/null'
S_SUM2=$BEST_S R_SUM2=$PEAK_MIB
measure_ab ":" '"$CHARTER" hash-tree --threads 1 "$TREE" >/dev/null' '"$BASE_CHARTER" hash-tree --threads 1 "$TREE" >/dev/null'
S_HT1=$BEST_S R_HT1=$PEAK_MIB B_S_HT1=${BASE_BEST_S:-} B_R_HT1=${BASE_PEAK_MIB:-}
measure_ab ":" '"$CHARTER" hash-tree "$TREE" >/dev/null' '"$BASE_CHARTER" hash-tree "$TREE" >/dev/null'
S_HT=$BEST_S R_HT=$PEAK_MIB B_S_HT=${BASE_BEST_S:-} B_R_HT=${BASE_PEAK_MIB:-}

vs_ossl() { echo "$(ratio "$(mbps_of "$1")" "$OSSL")x of openssl 1-core MB/s"; }
header "1. Hashing alone (ratio: MB/s / openssl one-core MB/s; higher is better)"
printf "$ROWFMT" "openssl speed -evp sha256, 1 MiB blocks (1 core)" "-" "$(printf %.0f "$OSSL")" "-" "1.00x (the one-core ceiling)"
printf "$ROWFMT" "openssl speed -multi $NPROC (all cores, no I/O) (info)" "-" "$(printf %.0f "$OSSL_ALL")" "-" \
    "$(ratio "$OSSL_ALL" "$OSSL")x (the all-core ceiling)"
row "find | xargs sha256sum (1 core)" "$S_SUM1" "$R_SUM1" "$(vs_ossl "$S_SUM1")"
row "find | xargs -P2 -n 64 sha256sum (2 procs)" "$S_SUM2" "$R_SUM2" "$(vs_ossl "$S_SUM2")"
row "charter hash-tree --threads 1 (info)" "$S_HT1" "$R_HT1" "$(vs_ossl "$S_HT1")"
if [[ -n $BASE_CHARTER ]]; then
    BASE_BEST_S=$B_S_HT1 BASE_PEAK_MIB=$B_R_HT1
    base_row "charter hash-tree --threads 1" "$S_HT1" "$R_HT1" "$(vs_ossl "$B_S_HT1")"
fi
row "charter hash-tree (all cores)" "$S_HT" "$R_HT" "$(vs_ossl "$S_HT")"
if [[ -n $BASE_CHARTER ]]; then
    BASE_BEST_S=$B_S_HT BASE_PEAK_MIB=$B_R_HT
    base_row "charter hash-tree" "$S_HT" "$R_HT" "$(vs_ossl "$B_S_HT")"
    base_summary "hash-tree (all cores)" "$S_HT" "$R_HT" "$B_S_HT" "$B_R_HT"
    base_summary "hash-tree --threads 1" "$S_HT1" "$R_HT1" "$B_S_HT1" "$B_R_HT1"
fi

# ---------------------------------------------------------------------------
# 2. Whole create. Before each run (untimed): remove the previous output
# (neither command overwrites) and `sync` so no run pays for writing back
# the last one's dirty pages.
# ---------------------------------------------------------------------------
log "bench: create"
BASE='tar -cf - -C "$TREE" . | zstd -T0 -3 -q -o "$OUT/base.tar.zst"'
measure 'rm -f "$OUT/base.tar.zst"; sync' "$BASE"
S_TZ=$BEST_S R_TZ=$PEAK_MIB
measure 'rm -f "$OUT/base.tar.zst"; sync' "$BASE"'; find "$TREE" -type f -print0 | xargs -0 sha256sum >/dev/null'
S_TZH=$BEST_S R_TZH=$PEAK_MIB
# charter create fsyncs its artifact; this row shows what that costs tar|zstd.
measure 'rm -f "$OUT/base.tar.zst"; sync' "$BASE"'; sync "$OUT/base.tar.zst"'
S_TZS=$BEST_S R_TZS=$PEAK_MIB
CREATE='"$CHARTER" manifest create --product bench --version 1.0.0 --from "$TREE" --out "$OUT/charter" --released-at 2026-01-01T00:00:00Z >/dev/null'
BASE_CREATE='"$BASE_CHARTER" manifest create --product bench --version 1.0.0 --from "$TREE" --out "$OUT/charter-base" --released-at 2026-01-01T00:00:00Z >/dev/null'
measure_ab 'rm -rf "$OUT/charter"; sync' "$CREATE" "$BASE_CREATE" 'rm -rf "$OUT/charter-base"; sync'
S_CR=$BEST_S R_CR=$PEAK_MIB

vs_tz() { echo "$(ratio "$1" "$S_TZ")x of tar|zstd time"; }
header "2. Whole create (ratio: seconds / tar|zstd seconds; lower is better)"
row "tar -cf - | zstd -T0 -3" "$S_TZ" "$R_TZ" "1.00x (reference)"
row "tar | zstd, then find | xargs sha256sum (1 core)" "$S_TZH" "$R_TZH" "$(vs_tz "$S_TZH")"
row "tar | zstd, then sync FILE (fsync) (info)" "$S_TZS" "$R_TZS" "$(vs_tz "$S_TZS")"
row "charter manifest create (tar.zst, level 3)" "$S_CR" "$R_CR" "$(vs_tz "$S_CR")"
if [[ -n $BASE_CHARTER ]]; then
    base_row "charter manifest create" "$S_CR" "$R_CR" "$(vs_tz "$BASE_BEST_S")"
    base_summary "manifest create" "$S_CR" "$R_CR" "$BASE_BEST_S" "$BASE_PEAK_MIB"
fi
ART=$(find "$OUT/charter" -name '*.tar.zst')
awk -v a="$(stat -c %s "$ART")" -v b="$(stat -c %s "$OUT/base.tar.zst")" -v t="$BYTES" 'BEGIN {
    printf "  artifact sizes: charter %.1f MiB, tar|zstd %.1f MiB (content %.1f MiB)\n",
        a / 1048576, b / 1048576, t / 1048576 }'
if [[ -n $BASE_CHARTER ]]; then
    # Which files of the two outputs differ (info: a behaviour-preserving
    # change makes the same bytes, unless a file records the version).
    same=() differ=()
    while IFS= read -r -d '' f; do
        if cmp -s "$OUT/charter/$f" "$OUT/charter-base/$f"; then same+=("$f"); else differ+=("$f"); fi
    done < <(cd "$OUT/charter" && find . -type f -printf '%P\0' | sort -z)
    printf '  baseline output vs current: %d files the same, differ: %s\n' "${#same[@]}" "${differ[*]:-none}"
fi

# ---------------------------------------------------------------------------
# Targets.
# ---------------------------------------------------------------------------
R_HASH=$(ratio "$(mbps_of "$S_HT")" "$OSSL")
R_CREATE=$(ratio "$S_CR" "$S_TZ")
R_CREATE_SYNC=$(ratio "$S_CR" "$S_TZS")
echo
echo "Targets"
printf '  %-52s %7s  %s\n' "hash-tree MB/s / openssl 1-core MB/s >= 1.70x" "${R_HASH}x" "$(verdict "$R_HASH" ">=" 1.7)"
printf '  %-52s %7s  %s\n' "create time / tar|zstd time <= 1.15x" "${R_CREATE}x" "$(verdict "$R_CREATE" "<=" 1.15)"
printf '  %-52s %7s  %s\n' "create peak RSS < 64 MiB" "$(printf %.1f "$R_CR")" "$(verdict "$R_CR" "<" 64)"
printf '  %-52s %7s  %s\n' "(info) create time / tar|zstd+fsync time" "${R_CREATE_SYNC}x" ""
echo "  load after:   $(loadavg)"
echo "  reported runs read from disk: up to $((MAX_READ_BLOCKS / 2)) KiB (0: all from the page cache)"
((MAX_READ_BLOCKS * 512 <= BYTES / 100)) ||
    echo "  WARNING: the page cache did not keep the tree; some figures include disk reads (try BENCH_DIR=/dev/shm/...)"
echo "  reported runs shared the CPUs with other processes: up to ${MAX_OTHER}% of the machine"
((MAX_OTHER < 10)) ||
    echo "  WARNING: other work skewed some figures; rerun on a quiet machine (BENCH_WAIT_IDLE=300 helps)"
if [[ -n $BASE_CHARTER ]]; then
    echo
    echo "Current / baseline ($BASE_DESC), same run, runs alternating (lower is better; ~1.00: no change)"
    printf '%s\n' "${BASE_LINES[@]}"
fi
