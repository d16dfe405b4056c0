#!/usr/bin/env bash
# bench/update.sh: how fast and how lean `charter-update` installs, verifies
# and rolls back a release, next to the standard tools doing the same work,
# on the same data and the same disk, in one run.
#
# What it measures (wall time: best of 3 runs; peak RSS: worst of 3):
#
#   1. First install of a release, for each size in BENCH_SIZES (MiB;
#      default 100 and 1024; ~2 MiB average file, so ~2,000 files at 1 GiB;
#      half /dev/urandom, half log-like text). The release is made with
#      `charter manifest create` (tar.zst, level 3), signed, added to a
#      repository (`charter repo add`), published on a channel and served
#      by a real nginx on 127.0.0.1. Page cache warm for the repository.
#        charter-update apply       fresh host dir every run: fetch channel
#                                   and manifest, verify signatures, download,
#                                   hash, decompress, check every entry,
#                                   write, syncfs, rename, swap `current`
#        curl -s URL | zstd -d | tar -x -C DIR      (the unverified peer)
#        the same, then sync -f DIR (syncfs, info: the peer with charter's
#                                   durability)
#      TARGETS: charter time <= peer time (ratio <= 1.00);
#               charter peak RSS < 64 MiB at every size.
#
#   2. Verifying the installed tree of the largest size (1 GiB by default)
#        charter-update verify      (signed manifest; hashes on all cores)
#        sha256sum -c --quiet       (list made once by `charter hash-tree`,
#                                   run from inside the tree)
#        info rows: sha256sum -c split over nproc processes, and
#                   charter hash-tree --threads 1 (charter's one-core speed)
#      TARGET: charter >= 8x faster than sha256sum -c. The speedup is at most
#      (charter's one-core MB/s / sha256sum's MB/s) x (cores); the info rows
#      show both factors, so a miss says which one bounds it.
#
#   3. Rollback latency: v1's health check (`bin/health`, appends
#      "<date +%s.%N> ok-v1" to a log outside the tree) passes; v2's appends
#      "<time> fail-v2" and exits 1 (--health-retries 0); the service restart
#      command is /bin/true (zero start time). `charter-update apply` of v2
#      must exit 3 (rolled back). Latency = first "ok-v1" after "fail-v2"
#      minus "fail-v2": from the failed check to the old release checked
#      healthy again (swap back, restart, health check). 5 runs, a fresh
#      host each; min and median.
#      TARGET: median < 1 s.
#
# Units: MB/s is 10^6 bytes/s of release content (uncompressed files).
# CPU s is user + system time of the command and its children (GNU time's
# %U + %S; least of the runs): less sensitive than wall time to other load.
# Peak RSS is MiB from GNU time's %M (`/usr/bin/time -f '%e %M'`); for a
# shell pipeline that is the largest single process in it, not the sum.
# Seconds come from bash's $EPOCHREALTIME around the run (time's %e has only
# 10 ms resolution). Before every timed run (untimed): `sync` flushes dirty
# pages and the artifact is read into the page cache. Other CPU load on the machine (a compile) skews everything: it is
# measured during every timed run and reported at the end.
#
# Nothing is deleted between timed runs: every run writes into a new
# directory and all is removed at the end. On ext4 without a journal (as
# some VM root file systems are), the kernel will not reuse an inode freed
# in the last minutes, and every file creation scans past the recently
# freed ones: with a `rm -rf` of the previous run's 2,000 files before each
# run, file creation got several times slower, run after run, and the
# order of the rows decided the ratio. Disk needed: about
# sum(BENCH_SIZES) x (2 + 3 x BENCH_RUNS) MiB (2 + 4 x BENCH_RUNS with a
# baseline), checked at the start.
#
# The binaries are built the way the workspace builds them (--all-features),
# which compiles in the test-only `failpoints` hook: an environment lookup
# at each of ~17 steps of a transaction, nothing per byte. They are copied
# into the work directory first, so a build elsewhere cannot swap them
# mid-run.
#
# Baseline (CHARTER_BASELINE_BIN=DIR, DIR holding `charter` and
# `charter-update` of another build, e.g. the commit before a change): every
# charter row is measured with those binaries too, in the same run, run for
# run next to the current ones, and printed as an extra row "... (baseline
# <git describe of the commit DIR's charter was built from, or DIR>)" under
# the charter row, with a line "current/baseline" of time, peak RSS and
# CPU s (and a summary of them all at the end). The order alternates run by run
# (current first in odd runs, baseline first in even ones), so drift in the
# machine's load and page-cache or memory effects of the run before hit both
# sides alike. Compare these ratios, not figures of separate runs. The
# releases and the repository are made once, with the current `charter`; the
# baseline's charter-update installs, verifies and rolls back the same
# releases (verify: the same installed tree), into hosts of its own. The
# peer rows are measured once, as without a baseline. Build the baseline the
# way this script builds the current binaries (below), in a target dir of
# its own (seeding one side's target dir with a copy of the other's reuses
# the build-script output that records the commit in `charter version`),
# e.g.
#   git worktree add --detach ../base COMMIT
#   (cd ../base && CARGO_TARGET_DIR=/tmp/tgt-base cargo build --release \
#       --workspace --all-features --bins)
#   CHARTER_BASELINE_BIN=/tmp/tgt-base/release bench/update.sh
#
# Usage:
#   bench/update.sh                       # 100 MiB and 1 GiB
#   BENCH_SIZES=100 bench/update.sh       # quick run
#   CHARTER_BASELINE_BIN=../base-target/release bench/update.sh
#                                         # current vs another build
# Environment:
#   BENCH_SIZES        release sizes in MiB (default "100 1024")
#   BENCH_RUNS         runs per measurement (default 3)
#   BENCH_ROLLBACKS    rollback runs (default 5)
#   BENCH_DIR          work directory (default: a new mktemp -d); removed at
#                      the end unless BENCH_KEEP=1
#   BENCH_KEEP=1       keep the work directory
#   BENCH_WAIT_IDLE    seconds to wait, before each timed run, for other
#                      processes to leave the CPUs idle (default 0)
#   BENCH_PRETOUCH=0   do not write memory once before the timed runs (see
#                      Memory below)
#   CHARTER_BIN        directory holding charter and charter-update to use
#                      instead of building them
#   CHARTER_BASELINE_BIN  directory holding charter and charter-update of
#                      another build, measured next to the current ones
#                      (see Baseline above; default: none)
#   CHARTER_PASSPHRASE passphrase of the bench keys (generated in the work
#                      directory; a fixed bench value when unset)

set -euo pipefail
export LC_ALL=C # decimal points in $EPOCHREALTIME and awk

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SIZES=${BENCH_SIZES:-100 1024}
RUNS=${BENCH_RUNS:-3}
ROLLBACKS=${BENCH_ROLLBACKS:-5}
SEED=20260101

log() { printf '%s\n' "$*" >&2; }
die() { log "bench: $*"; exit 1; }

# ---------------------------------------------------------------------------
# Tools: install what is missing (one apt-get update, one install).
# ---------------------------------------------------------------------------
nginx_bin() { command -v nginx 2>/dev/null || { [[ -x /usr/sbin/nginx ]] && echo /usr/sbin/nginx; } || true; }
install_missing() {
    local need=()
    [[ -n $(nginx_bin) ]] || need+=(NGINX)
    command -v curl >/dev/null || need+=(curl)
    command -v zstd >/dev/null || need+=(zstd)
    [[ -x /usr/bin/time ]] || need+=(time) # GNU time (bash's `time` has no RSS)
    command -v tar >/dev/null || need+=(tar)
    command -v awk >/dev/null || need+=(mawk)
    ((${#need[@]})) || return 0
    local sudo=()
    [[ $(id -u) -eq 0 ]] || sudo=(sudo)
    log "bench: installing what is missing"
    "${sudo[@]}" apt-get update
    # Debian/Ubuntu up to bookworm/jammy ship the small build as nginx-light;
    # later releases only have nginx.
    local pkgs=() p
    for p in "${need[@]}"; do
        if [[ $p == NGINX ]]; then
            local cand
            cand=$(apt-cache policy nginx-light 2>/dev/null | awk '/Candidate:/ { print $2 }')
            if [[ -n $cand && $cand != "(none)" ]]; then
                pkgs+=(nginx-light)
            else
                pkgs+=(nginx)
            fi
        else
            pkgs+=("$p")
        fi
    done
    log "bench: apt-get install -y ${pkgs[*]}"
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y "${pkgs[@]}"
}

# ---------------------------------------------------------------------------
# A release tree: FILES files, SIZE_MB MiB in all, sizes log-uniform (1 KiB
# to 16 MiB before scaling, ~2 MiB average), spread over nested directories.
# Half the bytes are /dev/urandom, half log-like text (zstd -3 gets ~4:1).
# ---------------------------------------------------------------------------
gen_tree() { # TREE SIZE_MB
    local tree=$1 size_mb=$2 total=$(($2 * 1048576)) files plan=$W/plan
    files=$(((size_mb * 2000 / 1024) > 100 ? size_mb * 2000 / 1024 : 100))
    awk -v n="$files" -v total="$total" -v seed="$SEED" 'BEGIN {
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
    local kind size path
    while read -r kind size path; do
        [[ $kind == rand ]] && head -c "$size" /dev/urandom >"$tree/$path"
    done <"$plan"
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
    rm -f "$plan"
}

# ---------------------------------------------------------------------------
# The repository side: make, sign, add, publish.
# ---------------------------------------------------------------------------
release() { # PRODUCT VERSION TREE [manifest create options...]
    local product=$1 version=$2 tree=$3 out=$W/out/$1-$2
    shift 3
    rm -rf "$out"
    "$CHARTER" manifest create --product "$product" --version "$version" --from "$tree" \
        --out "$out" --format tar.zst --level 3 "$@" >/dev/null
    "$CHARTER" manifest sign --key "$W/keys/release.key" "$out/manifest.json" >/dev/null
    "$CHARTER" repo add "$REPO" "$out" >/dev/null
    rm -rf "$out"
}
publish() { # PRODUCT VERSION
    "$CHARTER" channel publish --repo "$REPO" --product "$1" --channel stable \
        --version "$2" --key "$W/keys/channel.key" >/dev/null
}

# A fresh host: config, the shipped trust root, empty install root and state.
make_host() { # DIR PRODUCT [RESTART_CMD]
    local h=$1
    rm -rf "$h"
    mkdir -p "$h/etc" "$h/opt" "$h/state"
    cp "$W/root.json" "$h/etc/root.json"
    {
        printf 'product = "%s"\nchannel = "stable"\n\n' "$2"
        printf '[repository]\nurl = "http://127.0.0.1:%s/"\n\n' "$PORT"
        printf '[paths]\ninstall_root = "%s/opt"\nstate_dir = "%s/state"\ntrust_root = "%s/etc/root.json"\n' "$h" "$h" "$h"
        if [[ -n ${3:-} ]]; then
            printf '\n[service]\nrestart = ["%s"]\n' "$3"
        fi
    } >"$h/etc/charter.toml"
}

# ---------------------------------------------------------------------------
# nginx serving REPO on a free port of 127.0.0.1.
# ---------------------------------------------------------------------------
NGINX_PID=""
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
start_nginx() {
    local ng=$W/nginx user_line=""
    mkdir -p "$ng/tmp"
    # As root, nginx's worker would run as `nobody` and could not enter a
    # mode-0700 mktemp directory: run it as the invoking user instead.
    [[ $(id -u) -eq 0 ]] && user_line="user $(id -un) $(id -gn);"
    for _ in 1 2 3 4 5; do
        PORT=$((20000 + RANDOM % 40000))
        port_free "$PORT" || continue
        cat >"$ng/nginx.conf" <<EOF
daemon off;
worker_processes 1;
$user_line
pid $ng/nginx.pid;
error_log $ng/error.log;
events {}
http {
    access_log off;
    sendfile on;
    client_body_temp_path $ng/tmp/body;
    proxy_temp_path $ng/tmp/proxy;
    server {
        listen 127.0.0.1:$PORT;
        root $REPO;
    }
}
EOF
        "$NGINX" -p "$ng" -e "$ng/error.log" -c "$ng/nginx.conf" &
        NGINX_PID=$!
        for _ in $(seq 50); do
            if curl -s -o /dev/null "http://127.0.0.1:$PORT/root.json" 2>/dev/null; then
                curl -sf -o /dev/null "http://127.0.0.1:$PORT/root.json" ||
                    die "nginx answers but cannot serve $REPO/root.json (see $ng/error.log)"
                return 0
            fi
            kill -0 "$NGINX_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill "$NGINX_PID" 2>/dev/null || true
        wait "$NGINX_PID" 2>/dev/null || true
        NGINX_PID=""
    done
    cat "$ng/error.log" >&2 || true
    die "could not start nginx"
}

# ---------------------------------------------------------------------------
# Measuring (as in bench/manifest.sh).
#
# Other work on the machine skews timings, so every run also measures it:
# CPU time the whole machine spent busy during the run (/proc/stat) minus
# the CPU time of the measured command (time's %U + %S), as a share of the
# run's wall time x nproc. The worst share is printed at the end.
# ---------------------------------------------------------------------------
MAX_OTHER=0
NPROC=$(nproc)
declare -A BEST PEAK CPU
busy_jiffies() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
wait_idle() {
    local deadline=$((SECONDS + ${BENCH_WAIT_IDLE:-0})) a b
    while :; do
        a=$(busy_jiffies)
        sleep 0.5
        b=$(busy_jiffies)
        ((b - a < 5 * NPROC && SECONDS < deadline)) || break
    done
}

# measure KEY PREP CMD: one run. PREP untimed, then CMD under GNU time.
# Keeps the best wall time in BEST[KEY] and the worst %M in PEAK[KEY].
# Commands run in `bash -c` under `set -euo pipefail`, with the exported
# variables; their output goes to $W/run.log, shown if they fail.
measure() {
    local key=$1 prep=$2 cmd=$3 t0 t1 j0 j1 el kib cpu other
    bash -c "set -euo pipefail; $prep"
    wait_idle
    j0=$(busy_jiffies)
    t0=$EPOCHREALTIME
    if ! /usr/bin/time -f '%e %M %U %S' -o "$W/time.out" bash -c "set -euo pipefail; $cmd" >"$W/run.log" 2>&1; then
        cat "$W/run.log" "$W/time.out" >&2
        die "failed: $cmd"
    fi
    t1=$EPOCHREALTIME
    j1=$(busy_jiffies)
    read -r _ kib cpu < <(awk 'END { print $1, $2, $3 + $4 }' "$W/time.out")
    el=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", b - a }')
    other=$(awk -v j="$((j1 - j0))" -v c="$cpu" -v e="$el" -v n="$NPROC" \
        'BEGIN { o = 100 * (j / 100 - c) / (e * n); printf "%.0f", (o > 0 ? o : 0) }')
    ((other > MAX_OTHER)) && MAX_OTHER=$other
    log "bench:   $key: $(printf %.3f "$el") s, CPU $(printf %.2f "$cpu") s, $((kib / 1024)) MiB, other CPU use ${other}%"
    BEST[$key]=$(awk -v a="${BEST[$key]:-}" -v b="$el" 'BEGIN { print (a == "" || b < a) ? b : a }')
    PEAK[$key]=$(awk -v a="${PEAK[$key]:-0}" -v k="$kib" 'BEGIN { m = k / 1024; print (m > a) ? m : a }')
    CPU[$key]=$(awk -v a="${CPU[$key]:-}" -v b="$cpu" 'BEGIN { print (a == "" || b < a) ? b : a }')
}

# ---------------------------------------------------------------------------
# Table output.
# ---------------------------------------------------------------------------
ROWFMT='%-50s %9s %9s %9s %7s   %s\n'
header() {
    printf '\n%s\n' "$1"
    printf "$ROWFMT" "what" "seconds" "MB/s" "RSS MiB" "CPU s" "ratio"
    printf "$ROWFMT" "----" "-------" "----" "-------" "-----" "-----"
}
row() { # WHAT KEY BYTES RATIO_TEXT
    local s=${BEST[$2]} mbps
    mbps=$(awk -v b="$3" -v s="$s" 'BEGIN { printf "%.0f", b / 1e6 / s }')
    printf "$ROWFMT" "$1" "$(printf %.3f "$s")" "$mbps" "$(printf %.1f "${PEAK[$2]}")" "$(printf %.2f "${CPU[$2]}")" "$4"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
verdict() { awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN {
    ok = (op == ">=") ? v >= t : (op == "<=") ? v <= t : v < t
    print ok ? "PASS" : "FAIL" }'; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
tree_bytes() { find "$1" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }'; }
warm() { find "$@" -type f -print0 | xargs -0 cat >/dev/null; }

# ---------------------------------------------------------------------------
# Baseline (CHARTER_BASELINE_BIN; see the header). A measurement KEY of the
# current binaries is base.KEY for the baseline's; side_cmd turns a command
# using "$CHARTER" / "$UPDATE" into the same with the baseline's binaries.
# ---------------------------------------------------------------------------
BASE_BIN=""
# sides RUN: the order of the sides in run RUN: "cur" without a baseline;
# "cur base" in odd runs, "base cur" in even ones.
sides() {
    if [[ -z $BASE_BIN ]]; then
        echo cur
    elif (($1 % 2)); then
        echo cur base
    else
        echo base cur
    fi
}
side_key() { if [[ $1 == base ]]; then echo "base.$2"; else echo "$2"; fi; } # SIDE KEY
side_cmd() {                                                                   # SIDE CMD
    if [[ $1 == base ]]; then
        printf 'CHARTER=$BASE_CHARTER; UPDATE=$BASE_UPDATE; %s' "$2"
    else
        printf '%s' "$2"
    fi
}
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
# The rows under a charter row: the baseline's row and the current/baseline
# ratios (time, peak RSS, CPU s). Also kept for the summary at the end.
BASE_LINES=()
base_rows() { # WHAT KEY BYTES RATIO_TEXT (RATIO_TEXT of the baseline row)
    [[ -n $BASE_BIN ]] || return 0
    local line
    row "$1 (baseline $BASE_DESC)" "base.$2" "$3" "$4"
    line=$(printf 'time %sx, peak RSS %sx, CPU s %sx' "$(ratio "${BEST[$2]}" "${BEST[base.$2]}")" \
        "$(ratio "${PEAK[$2]}" "${PEAK[base.$2]}")" "$(ratio "${CPU[$2]}" "${CPU[base.$2]}")")
    printf '  current/baseline: %s\n' "$line"
}
base_summary() { # WHAT KEY: a line of the summary at the end
    [[ -n $BASE_BIN ]] || return 0
    BASE_LINES+=("$(printf '  %-52s time %sx  peak RSS %sx  CPU s %sx' "$1" "$(ratio "${BEST[$2]}" "${BEST[base.$2]}")" \
        "$(ratio "${PEAK[$2]}" "${PEAK[base.$2]}")" "$(ratio "${CPU[$2]}" "${CPU[base.$2]}")")")
}

# ===========================================================================
install_missing
((BASH_VERSINFO[0] >= 5)) || die "needs bash >= 5 (\$EPOCHREALTIME)"
NGINX=$(nginx_bin)
[[ -n $NGINX ]] || die "nginx not found"
for s in $SIZES; do [[ $s =~ ^[1-9][0-9]*$ ]] || die "BENCH_SIZES: \`$s\` is not a size in MiB"; done
BIG=$(printf '%s\n' $SIZES | sort -n | tail -1)

if [[ -n ${CHARTER_BIN:-} ]]; then
    BIN=$(cd "$CHARTER_BIN" && pwd)
    log "bench: using $BIN (not building)"
else
    command -v cargo >/dev/null || die "cargo not found (install Rust)"
    # The workspace's usual build (so its artifacts are shared with other
    # builds in target/); if some other crate of the workspace does not
    # compile right now, just the two packages the bench runs.
    log "bench: building charter (cargo build --release --workspace --all-features --bins)"
    if ! (cd "$ROOT" && cargo build --release --workspace --all-features --bins); then
        log "bench: the workspace does not build; building charter-cli and charter-updater only"
        (cd "$ROOT" && cargo build --release -p charter-cli -p charter-updater --all-features --bins)
    fi
    BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
fi
[[ -x $BIN/charter && -x $BIN/charter-update ]] || die "no charter / charter-update in $BIN"
if [[ -n ${CHARTER_BASELINE_BIN:-} ]]; then
    BASE_BIN=$(cd "$CHARTER_BASELINE_BIN" && pwd) || die "CHARTER_BASELINE_BIN: no directory $CHARTER_BASELINE_BIN"
    [[ -x $BASE_BIN/charter && -x $BASE_BIN/charter-update ]] ||
        die "CHARTER_BASELINE_BIN: no charter / charter-update in $BASE_BIN"
    BASE_DESC=$(bin_desc "$BASE_BIN")
    log "bench: baseline $BASE_BIN ($BASE_DESC), measured next to $BIN"
fi

if [[ -n ${BENCH_DIR:-} ]]; then
    mkdir -p "$BENCH_DIR"
    W=$(cd "$BENCH_DIR" && pwd)
else
    W=$(mktemp -d)
fi
cleanup() {
    [[ -n ${PRETOUCH:-} ]] && rm -f "$PRETOUCH"
    if [[ -n $NGINX_PID ]]; then
        kill "$NGINX_PID" 2>/dev/null || true
        wait "$NGINX_PID" 2>/dev/null || true
    fi
    if [[ ${BENCH_KEEP:-0} == 1 ]]; then
        log "bench: kept $W"
    else
        rm -rf "$W"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# Snapshot the binaries: a build elsewhere may replace target/release/*
# while the bench runs.
mkdir -p "$W/bin"
cp "$BIN/charter" "$BIN/charter-update" "$W/bin/"
CHARTER=$W/bin/charter
UPDATE=$W/bin/charter-update
BASE_CHARTER="" BASE_UPDATE=""
if [[ -n $BASE_BIN ]]; then
    mkdir -p "$W/bin-base"
    cp "$BASE_BIN/charter" "$BASE_BIN/charter-update" "$W/bin-base/"
    BASE_CHARTER=$W/bin-base/charter
    BASE_UPDATE=$W/bin-base/charter-update
fi
export BASE_CHARTER BASE_UPDATE
# Installs per size and run: peer, peer + sync, charter (and the baseline).
INSTALLS=3
[[ -z $BASE_BIN ]] || INSTALLS=4
# Disk: the trees, the repository, and INSTALLS x RUNS installs of every
# size, all kept until the end.
NEED_MIB=$(awk -v s="$SIZES" -v r="$RUNS" -v k="$INSTALLS" 'BEGIN { n = split(s, a, " "); for (i = 1; i <= n; i++) t += a[i]; print int(t * (2 + k * r) + 1024) }')
AVAIL_MIB=$(df -Pm "$W" | awk 'NR == 2 { print $4 }')
((AVAIL_MIB >= NEED_MIB)) || die "needs ~$NEED_MIB MiB free in $W, has $AVAIL_MIB MiB (BENCH_DIR elsewhere, or smaller BENCH_SIZES)"
REPO=$W/repo
export CHARTER_PASSPHRASE=${CHARTER_PASSPHRASE:-bench passphrase, not a secret}
export CHARTER UPDATE W

# ---------------------------------------------------------------------------
# The machine.
# ---------------------------------------------------------------------------
SHA_NI=no
grep -qw sha_ni /proc/cpuinfo && SHA_NI=yes
echo "charter-update benchmark"
echo "  nproc:        $NPROC"
echo "  CPU:          $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo) (sha_ni: $SHA_NI)"
echo "  kernel:       $(uname -sr)"
FSTYPE=$(stat -f -c %T "$W")
command -v findmnt >/dev/null && FSTYPE="$FSTYPE; mounted as $(findmnt -n -o FSTYPE -T "$W")"
echo "  bench dir:    $W ($FSTYPE)"
echo "  memory:       $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
# virtio-balloon feature bit 5: free page reporting (see Memory below).
for f in /sys/bus/virtio/drivers/virtio_balloon/*/features; do
    [[ -r $f ]] || continue
    [[ $(cut -c6 "$f") == 1 ]] && echo "  VM:           virtio-balloon free page reporting on (freed memory goes back to the host)"
    break
done
echo "  load before:  $(loadavg)"
echo "  charter:      $BIN ($(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?'))"
[[ -z $BASE_BIN ]] || echo "  baseline:     $BASE_BIN ($BASE_DESC; runs alternate: current first in odd runs, baseline first in even ones)"
echo "  nginx:        $("$NGINX" -v 2>&1 | sed 's/^nginx version: //')"
echo "  curl:         $(curl --version | head -1 | cut -d' ' -f1-2)"
echo "  zstd:         $(zstd -V | sed 's/^\*\*\* //; s/, by.*//')"
echo "  tar:          $(tar --version | head -1)"
echo "  sha256sum:    $(sha256sum --version | head -1)"
echo "  timing:       best of $RUNS runs (RSS: worst of $RUNS), page cache warm"

# ---------------------------------------------------------------------------
# Keys, trust root, repository, nginx.
# ---------------------------------------------------------------------------
log "bench: keys, trust root, repository"
mkdir -p "$W/keys" "$W/out"
for k in root release channel license; do
    "$CHARTER" key generate --out "$W/keys/$k.key" >/dev/null
done
"$CHARTER" root init --out "$W/root.json" --root-key "$W/keys/root.key.pub" \
    --release-key "$W/keys/release.key.pub" --release-threshold 1 \
    --channel-key "$W/keys/channel.key.pub" --license-key "$W/keys/license.key.pub" \
    --key "$W/keys/root.key" >/dev/null
"$CHARTER" repo init "$REPO" --root "$W/root.json" >/dev/null
start_nginx
log "bench: nginx (pid $NGINX_PID) serves $REPO on 127.0.0.1:$PORT"
echo "  repository:   http://127.0.0.1:$PORT/ (nginx, sendfile on)"

# ---------------------------------------------------------------------------
# The releases, all made before anything is timed (see "Nothing is deleted"
# in the header: the trees stay until the end).
# ---------------------------------------------------------------------------
declare -A NFILES_OF BYTES_OF ART_OF ART_MIB_OF
for S in $SIZES; do
    TREE=$W/tree-$S
    log "bench: generating a $S MiB release tree"
    gen_tree "$TREE" "$S"
    BYTES_OF[$S]=$(tree_bytes "$TREE")
    NFILES_OF[$S]=$(find "$TREE" -type f | wc -l)
    # One product per size, so sizes may come in any order.
    log "bench: charter manifest create / sign / repo add / channel publish (bench-$S 1.0.0)"
    release "bench-$S" 1.0.0 "$TREE"
    publish "bench-$S" 1.0.0
    ART_OF[$S]=$(find "$REPO/releases/bench-$S/1.0.0" -name '*.tar.zst')
    [[ -f ${ART_OF[$S]} ]] || die "no artifact in $REPO/releases/bench-$S/1.0.0"
    ART_MIB_OF[$S]=$(awk -v b="$(stat -c %s "${ART_OF[$S]}")" 'BEGIN { printf "%.1f", b / 1048576 }')
done

# ---------------------------------------------------------------------------
# Memory. In a VM the first write to a guest page that was never used (or
# was handed back to the host) traps into the hypervisor: on the machine
# this was written on, page-cache writes of the same 643 MiB took 0.15 s on
# reused memory and up to 1.9 s on fresh memory, so whichever tool happened
# to get fresh pages lost. The timed runs write ~INSTALLS x RUNS x sizes
# of new page cache (INSTALLS: 3, or 4 with a baseline); that much memory
# is written once beforehand (a tmpfs file in /dev/shm, then removed), so
# every run gets pages the guest already touched. BENCH_PRETOUCH=0 skips it.
#
# It does not cure everything: with virtio-balloon free page reporting
# (printed below when present), free blocks of 2 MiB and up go back to the
# host within seconds, and large page-cache folios (which the kernel uses
# for large write(2)s) come from those blocks. There, `dd bs=256k` of the
# same file took ~1.7 s against ~0.5 s with bs=10k (tar's write size), and
# the cost lands in copy_folio_from_iter_atomic of the writing process.
# ---------------------------------------------------------------------------
PRETOUCH_NOTE="skipped"
if [[ ${BENCH_PRETOUCH:-1} != 0 && -d /dev/shm && -w /dev/shm ]]; then
    want=$(awk -v s="$SIZES" -v r="$RUNS" -v k="$INSTALLS" 'BEGIN { n = split(s, a, " "); for (i = 1; i <= n; i++) t += a[i]; print int(t * k * r + 1024) }')
    avail=$(awk '/^MemAvailable/ { print int($2 / 1024) }' /proc/meminfo)
    ((want <= avail - 1024)) || want=$((avail - 1024))
    if ((want > 0)); then
        log "bench: writing $want MiB of memory once (see Memory in the script)"
        PRETOUCH=/dev/shm/charter-bench-pretouch.$$
        t0=$EPOCHREALTIME
        fallocate -l "${want}M" "$PRETOUCH" 2>/dev/null || head -c "${want}M" /dev/zero >"$PRETOUCH" 2>/dev/null || true
        got=$(($(stat -c %s "$PRETOUCH" 2>/dev/null || echo 0) / 1048576))
        rm -f "$PRETOUCH"
        PRETOUCH_NOTE=$(awk -v m="$got" -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f GiB written in %.1f s (%.2f GB/s)", m / 1024, b - a, m * 1048576 / 1e9 / (b - a) }')
    fi
fi

# ---------------------------------------------------------------------------
# 1. First install, per size. Every run writes into a new directory
# (A/peer-S-RUN, A/peersync-S-RUN, A/host-S-RUN, the baseline's
# A/hostbase-S-RUN); nothing is removed until the end.
# ---------------------------------------------------------------------------
A=$W/apply
mkdir -p "$A"
APPLY_TABLES=$(printf '\n  memory pre-touch: %s' "$PRETOUCH_NOTE")$'\n'
TARGET_LINES=()
for S in $SIZES; do
    BYTES=${BYTES_OF[$S]}
    export ART=${ART_OF[$S]}
    export URL=http://127.0.0.1:$PORT/${ART#"$REPO"/}
    warm "$REPO"
    log "bench: apply, $S MiB ($RUNS runs each, interleaved)"
    for ((run = 1; run <= RUNS; run++)); do
        export DEST=$A/peer-$S-$run
        measure "peer$S" 'mkdir -p "$DEST"; sync; cat "$ART" >/dev/null' \
            'curl -s "$URL" | zstd -d | tar -x -C "$DEST"'
        export DEST=$A/peersync-$S-$run
        measure "peersync$S" 'mkdir -p "$DEST"; sync; cat "$ART" >/dev/null' \
            'curl -s "$URL" | zstd -d | tar -x -C "$DEST"; sync -f "$DEST"'
        for side in $(sides "$run"); do
            if [[ $side == base ]]; then export HOST=$A/hostbase-$S-$run; else export HOST=$A/host-$S-$run; fi
            make_host "$HOST" "bench-$S"
            measure "$(side_key "$side" "charter$S")" 'sync; cat "$ART" >/dev/null' \
                "$(side_cmd "$side" '"$UPDATE" --config "$HOST/etc/charter.toml" apply')"
            grep -q "installed 1.0.0" "$W/run.log" || { cat "$W/run.log" >&2; die "charter-update apply ($side) did not install 1.0.0"; }
        done
    done
    # Both sides produced the release's files (untimed sanity check).
    diff -rq "$W/tree-$S" "$A/peer-$S-$RUNS" >/dev/null || die "the peer extracted something else than the release tree"
    diff -rq "$W/tree-$S" "$A/host-$S-$RUNS/opt/current/" >/dev/null || die "charter installed something else than the release tree"
    if [[ -n $BASE_BIN ]]; then
        diff -rq "$W/tree-$S" "$A/hostbase-$S-$RUNS/opt/current/" >/dev/null ||
            die "the baseline's charter installed something else than the release tree"
    fi

    R=$(ratio "${BEST[charter$S]}" "${BEST[peer$S]}")
    APPLY_TABLES+=$(
        header "1. First install, $S MiB release: ${NFILES_OF[$S]} files, artifact ${ART_MIB_OF[$S]} MiB (ratio: seconds / peer seconds; lower is better)"
        row "curl -s | zstd -d | tar -x (unverified peer)" "peer$S" "$BYTES" "1.00x (peer)"
        row "  the same, then sync -f DIR (info)" "peersync$S" "$BYTES" "$(ratio "${BEST[peersync$S]}" "${BEST[peer$S]}")x"
        row "charter-update apply (verified, synced, swapped)" "charter$S" "$BYTES" "${R}x"
        [[ -z $BASE_BIN ]] || base_rows "charter-update apply" "charter$S" "$BYTES" "$(ratio "${BEST[base.charter$S]}" "${BEST[peer$S]}")x"
    )$'\n'
    base_summary "apply $S MiB" "charter$S"
    TARGET_LINES+=("$(printf '  %-52s %8s  %s' "apply $S MiB: charter / peer time <= 1.00x" "${R}x" "$(verdict "$R" "<=" 1.0)")")
    TARGET_LINES+=("$(printf '  %-52s %8s  %s' "apply $S MiB: charter peak RSS < 64 MiB" "$(printf %.1f "${PEAK[charter$S]}")" "$(verdict "${PEAK[charter$S]}" "<" 64)")")
    printf '%s\n' "$APPLY_TABLES" | tail -n "$([[ -z $BASE_BIN ]] && echo 6 || echo 8)" >&2
done

# ---------------------------------------------------------------------------
# 2. Verify the installed tree of the largest size (its last charter run;
# the baseline verifies the same tree, through the same host's state).
# ---------------------------------------------------------------------------
log "bench: verify ($BIG MiB)"
HOST=$A/host-$BIG-$RUNS
VDIR=$(readlink -f "$HOST/opt/current")
export VDIR HOST SUMS="$W/verify.sums" PARTS="$W/sums-part."
VBYTES=$(tree_bytes "$VDIR")
"$CHARTER" hash-tree "$VDIR" >"$SUMS"
[[ $(wc -l <"$SUMS") -eq $(find "$VDIR" -type f | wc -l) ]] || die "hash-tree did not list every file"
split -n "r/$NPROC" "$SUMS" "$PARTS" # round-robin: the parallel sha256sum row
(cd "$VDIR" && sha256sum -c --quiet "$SUMS") || die "sha256sum -c disagrees with charter hash-tree"
"$UPDATE" --config "$HOST/etc/charter.toml" verify >/dev/null || die "charter-update verify found problems in a fresh install"
if [[ -n $BASE_BIN ]]; then
    "$BASE_CHARTER" hash-tree "$VDIR" | cmp -s - "$SUMS" || die "the baseline's charter hash-tree lists something else"
    "$BASE_UPDATE" --config "$HOST/etc/charter.toml" verify >/dev/null || die "the baseline's charter-update verify found problems in a fresh install"
fi
warm "$VDIR"
for ((run = 1; run <= RUNS; run++)); do
    measure vsum ':' 'cd "$VDIR" && sha256sum -c --quiet "$SUMS"'
    measure vsumpar ':' 'cd "$VDIR" && for p in "$PARTS"*; do sha256sum -c --quiet "$p" & done; for p in "$PARTS"*; do wait -n; done'
    for side in $(sides "$run"); do
        measure "$(side_key "$side" vht1)" ':' "$(side_cmd "$side" '"$CHARTER" hash-tree --threads 1 "$VDIR" >/dev/null')"
    done
    for side in $(sides "$run"); do
        measure "$(side_key "$side" vcharter)" ':' "$(side_cmd "$side" '"$UPDATE" --config "$HOST/etc/charter.toml" verify')"
        grep -q ': OK$' "$W/run.log" || { cat "$W/run.log" >&2; die "charter-update verify ($side) did not say OK"; }
    done
done
VSPEED=$(ratio "${BEST[vsum]}" "${BEST[vcharter]}")
VPAR=$(ratio "${BEST[vsum]}" "${BEST[vsumpar]}")
VCORE=$(ratio "${BEST[vsum]}" "${BEST[vht1]}")
VERIFY_TABLE=$(
    header "2. Verify the installed $BIG MiB tree (ratio: sha256sum -c seconds / seconds; higher is faster)"
    row "cd DIR; sha256sum -c --quiet LIST (peer, 1 core)" vsum "$VBYTES" "1.00x (peer)"
    row "  the same, LIST split over $NPROC processes (info)" vsumpar "$VBYTES" "${VPAR}x"
    row "  charter hash-tree --threads 1 (info: 1 core)" vht1 "$VBYTES" "${VCORE}x"
    [[ -z $BASE_BIN ]] || base_rows "  charter hash-tree --threads 1" vht1 "$VBYTES" "$(ratio "${BEST[vsum]}" "${BEST[base.vht1]}")x"
    row "charter-update verify (signed manifest, all cores)" vcharter "$VBYTES" "${VSPEED}x"
    [[ -z $BASE_BIN ]] || base_rows "charter-update verify" vcharter "$VBYTES" "$(ratio "${BEST[vsum]}" "${BEST[base.vcharter]}")x"
    # What bounds the speedup: charter's one-core speed over sha256sum's,
    # times the cores charter can use.
    printf '  bound: %.2fx per core x %d cores = %.1fx at most\n' "$VCORE" "$NPROC" "$(awk -v a="$VCORE" -v n="$NPROC" 'BEGIN { print a * n }')"
)
TARGET_LINES+=("$(printf '  %-52s %8s  %s' "verify: charter >= 8x faster than sha256sum -c" "${VSPEED}x" "$(verdict "$VSPEED" ">=" 8)")")
base_summary "verify $BIG MiB" vcharter
base_summary "hash-tree --threads 1, $BIG MiB" vht1

# ---------------------------------------------------------------------------
# 3. Rollback latency.
# ---------------------------------------------------------------------------
log "bench: rollback latency ($ROLLBACKS runs)"
RB=$W/rollback
HLOG=$RB/health.log
mkdir -p "$RB"
for v in 1 2; do
    t=$RB/tree-v$v
    mkdir -p "$t/bin" "$t/share"
    if [[ $v == 1 ]]; then word=ok-v1 rc=0; else word=fail-v2 rc=1; fi
    printf '#!/bin/sh\n# bench health check of v%s: logs the time, then %s\necho "$(date +%%s.%%N) %s" >> %s\nexit %s\n' \
        "$v" "$([[ $rc == 0 ]] && echo passes || echo fails)" "$word" "$HLOG" "$rc" >"$t/bin/health"
    chmod 755 "$t/bin/health"
    head -c 65536 /dev/urandom >"$t/share/data.bin"
    echo "release v$v" >"$t/share/README"
    release rb "$v.0.0" "$t" --health-cmd bin/health --health-retries 0 --health-timeout 10s
done
publish rb 2.0.0
LAT=() BLAT=()
for ((run = 1; run <= ROLLBACKS; run++)); do
    for side in $(sides "$run"); do
        if [[ $side == base ]]; then
            h=$RB/hostbase-$run up=$BASE_UPDATE
        else
            h=$RB/host-$run up=$UPDATE
        fi
        make_host "$h" rb /bin/true
        : >"$HLOG"
        "$up" --config "$h/etc/charter.toml" apply --version 1.0.0 >"$W/run.log" 2>&1 ||
            { cat "$W/run.log" >&2; die "installing rb 1.0.0 ($side) failed"; }
        sync
        wait_idle
        rc=0
        "$up" --config "$h/etc/charter.toml" apply >"$W/run.log" 2>&1 || rc=$?
        [[ $rc == 3 ]] || { cat "$W/run.log" "$HLOG" >&2; die "apply of rb 2.0.0 ($side) exited $rc, not 3 (rolled back)"; }
        [[ $(readlink "$h/opt/current") == releases/1.0.0 ]] || die "current does not point at 1.0.0 after the rollback ($side)"
        l=$(awk '$2 == "fail-v2" && !f { f = $1; next } f && $2 == "ok-v1" { printf "%.6f", $1 - f; exit }' "$HLOG")
        [[ -n $l ]] || { cat "$HLOG" >&2; die "no ok-v1 after fail-v2 in the health log ($side)"; }
        if [[ $side == base ]]; then BLAT+=("$l"); else LAT+=("$l"); fi
    done
done
min_med_max() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 }
    END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print v[1], m, v[NR] }'; }
read -r LMIN LMED LMAX < <(min_med_max "${LAT[@]}")
ROLLBACK_TABLE=$(
    printf '\n3. Rollback latency: failed health check of v2 -> v1 checked healthy again (restart = /bin/true)\n'
    printf '%-50s %9s %9s %9s\n' "what" "min s" "median s" "max s" "----" "-----" "--------" "-----"
    printf '%-50s %9.3f %9.3f %9.3f\n' "charter-update apply, v2 unhealthy (exit 3), $ROLLBACKS runs" "$LMIN" "$LMED" "$LMAX"
    printf '  runs (s): %s\n' "${LAT[*]}"
    if [[ -n $BASE_BIN ]]; then
        read -r BMIN BMED BMAX < <(min_med_max "${BLAT[@]}")
        printf '%-50s %9.3f %9.3f %9.3f\n' "charter-update apply (baseline $BASE_DESC)" "$BMIN" "$BMED" "$BMAX"
        printf '  runs (s): %s\n' "${BLAT[*]}"
        printf '  current/baseline: median %sx, min %sx\n' "$(ratio "$LMED" "$BMED")" "$(ratio "$LMIN" "$BMIN")"
    fi
)
if [[ -n $BASE_BIN ]]; then
    read -r BMIN BMED BMAX < <(min_med_max "${BLAT[@]}")
    BASE_LINES+=("$(printf '  %-52s median %sx  min %sx' "rollback latency" "$(ratio "$LMED" "$BMED")" "$(ratio "$LMIN" "$BMIN")")")
fi
TARGET_LINES+=("$(printf '  %-52s %8s  %s' "rollback latency, median < 1 s" "$(printf %.3f "$LMED")" "$(verdict "$LMED" "<" 1)")")

# ---------------------------------------------------------------------------
# The tables, together.
# ---------------------------------------------------------------------------
printf '%s' "$APPLY_TABLES"
printf '%s\n' "$VERIFY_TABLE"
printf '%s\n' "$ROLLBACK_TABLE"
echo
echo "Targets"
printf '%s\n' "${TARGET_LINES[@]}"
echo "  load after:   $(loadavg)"
echo "  other processes' CPU use during timed runs: up to ${MAX_OTHER}% of the machine"
((MAX_OTHER < 10)) || echo "  WARNING: other work shared the CPUs; rerun on a quiet machine (BENCH_WAIT_IDLE=300 helps)"
if [[ -n $BASE_BIN ]]; then
    echo
    echo "Current / baseline ($BASE_DESC), same run, runs alternating (lower is better; ~1.00: no change)"
    printf '%s\n' "${BASE_LINES[@]}"
fi
