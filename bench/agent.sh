#!/usr/bin/env bash
# bench/agent.sh: how fast and how small charter-agent's local API is, flooded
# over its unix socket by a second process (agent/examples/flood.rs), in one run.
#
# What it measures, on a real `charter-agent run` with a real signed license
# (keys, trust root, license and config made in a scratch directory):
#
#   1. Idle memory: VmRSS of the agent right after it says "serving on",
#      before any connection (and VmHWM then: the startup peak).
#      TARGET: idle RSS < 16 MiB.
#
#   2. Saturated throughput (closed loop): GET /v1/features/backups on N
#      keep-alive connections, each sending its next request as soon as the
#      answer is in, for BENCH_CLOSED_SECS; N = 1, 2, 4, 8.
#      TARGET: >= 20,000 feature checks/s (judged on the best N).
#
#   3. Latency at a fixed rate (open loop): 5,000 requests/s for 10 s on a
#      fixed timeline spread over BENCH_OPEN_CONNS keep-alive connections.
#      Latency is measured from each request's due time, not its actual send,
#      so a stall is charged to every request it delays (no coordinated
#      omission); service time and the client's send lag are shown beside it.
#      TARGET: p99 < 1 ms.
#
#   4. Peak memory: VmHWM of the agent after all the floods, and VmRSS then.
#
#   5. CPU: the agent's CPU time per request (utime+stime from
#      /proc/PID/stat), the flood's CPU, and what other processes used
#      during each run (others' load on this machine skews every figure).
#      The machine: nproc, CPU model, kernel, load average.
#
# The agent's rate limit is raised in its config ([api] rate_per_sec and
# burst = 1,000,000): the benchmark is one peer uid and the default (200/s,
# burst 400) would answer 429. Any non-200 answer counts as an error.
#
# Usage:
#   bench/agent.sh
# Environment:
#   BENCH_CONNS        closed-loop connection counts (default "1 2 4 8")
#   BENCH_CLOSED_SECS  seconds per closed-loop run (default 5)
#   BENCH_RATE         open-loop requests/s (default 5000)
#   BENCH_OPEN_SECS    open-loop seconds (default 10)
#   BENCH_OPEN_CONNS   open-loop connections (default 4)
#   BENCH_BUILD=0      do not build; use the binaries already in target/release
#   BENCH_KEEP=1       keep the scratch directory (keys, config, agent log)
#   BENCH_PERF=1       record `perf record -g` of the agent during the
#                      closed-loop runs into the scratch directory (implies
#                      nothing else; needs perf)
#   CARGO_TARGET_DIR   where the binaries are (default ./target)
#   FLOOD_SPIN_US      passed to flood: spin this long before each open-loop
#                      due time instead of sleeping (default 0)

set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
CONNS_LIST=${BENCH_CONNS:-"1 2 4 8"}
CLOSED_SECS=${BENCH_CLOSED_SECS:-5}
RATE=${BENCH_RATE:-5000}
OPEN_SECS=${BENCH_OPEN_SECS:-10}
OPEN_CONNS=${BENCH_OPEN_CONNS:-4}
TARGET_RPS=20000
TARGET_P99_US=1000
TARGET_IDLE_MIB=16

log() { printf '%s\n' "$*" >&2; }
die() {
  log "bench/agent.sh: $*"
  exit 1
}

if [[ ${BENCH_BUILD:-1} != 0 ]]; then
  log "building release binaries (cargo build --release --workspace --all-features --bins --examples)..."
  (cd "$ROOT" && cargo build --release --workspace --all-features --bins --examples) >&2
fi
BIN=$TARGET_DIR/release
FLOOD=$BIN/examples/flood
for b in "$BIN/charter" "$BIN/charter-agent" "$FLOOD"; do
  [[ -x $b ]] || die "$b is missing: build with cargo build --release --workspace --all-features --bins --examples"
done

WORK=$(mktemp -d -t charter-agent-bench.XXXXXX)
AGENT=
PERF=
cleanup() {
  if [[ -n $PERF ]]; then kill -INT "$PERF" 2>/dev/null || true; fi
  if [[ -n $AGENT ]]; then
    kill "$AGENT" 2>/dev/null || true
    wait "$AGENT" 2>/dev/null || true
  fi
  if [[ ${BENCH_KEEP:-0} == 1 ]]; then
    log "kept $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

# ---- the machine -----------------------------------------------------------
NPROC=$(nproc)
CPU=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)
[[ -n $CPU ]] || CPU=$(lscpu 2>/dev/null | awk -F': *' '/^Model name/ {print $2; exit}')
FAM=$(awk -F': *' '/^cpu family/ {f=$2} /^model[ \t]*:/ {m=$2} END {if (f != "") printf "family %s model %s", f, m}' /proc/cpuinfo)
HV=$(lscpu 2>/dev/null | awk -F': *' '/^Hypervisor vendor/ {print $2 " guest"; exit}')
CPU="$CPU${FAM:+ ($FAM${HV:+, $HV})}"
KERNEL=$(uname -r)
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
HZ=$(getconf CLK_TCK)

# ---- keys, trust root, license, config ---------------------------------------
cd "$WORK"
export CHARTER_PASSPHRASE="bench passphrase, not a secret"
log "making keys, a trust root and a license in $WORK..."
for k in root rel1 rel2 chan lic; do
  "$BIN/charter" key generate --out "$k.key" >/dev/null
done
"$BIN/charter" root init --out root.json --root-key root.key.pub \
  --release-key rel1.key.pub --release-key rel2.key.pub --release-threshold 2 \
  --channel-key chan.key.pub --license-key lic.key.pub --key root.key >/dev/null
mkdir -p agent
echo 00112233445566778899aabbccddeeff >agent/machine-id
CFG=$WORK/agent/agent.toml
cat >"$CFG" <<EOT
product = "panel"

[api]
# One peer uid floods: raise the per-uid token bucket out of the way.
rate_per_sec = 1000000
burst = 1000000

[paths]
license = "$WORK/agent/license"
state_dir = "$WORK/agent/state"
trust_root = "$WORK/root.json"
socket = "$WORK/agent/agent.sock"
features_file = "$WORK/agent/features.json"

[fingerprint]
machine_id = "$WORK/agent/machine-id"
dmi_product_uuid = "$WORK/agent/none"
EOT
export CHARTER_AGENT_CONFIG=$CFG
FP=$("$BIN/charter-agent" fingerprint)
"$BIN/charter" license issue --key lic.key --license-id bench-1 --serial 1 \
  --customer Bench --product panel --expires 365d --feature backups \
  --limit max_nodes=10 --machine "$FP" --out agent/license >/dev/null
SOCK=$WORK/agent/agent.sock

# ---- start the agent ---------------------------------------------------------
"$BIN/charter-agent" run 2>"$WORK/agent/agent.log" &
AGENT=$!
t=0
until grep -q 'serving on' "$WORK/agent/agent.log" 2>/dev/null; do
  kill -0 "$AGENT" 2>/dev/null || die "the agent exited: $(cat "$WORK/agent/agent.log")"
  ((++t < 400)) || die "the agent did not start in 20 s: $(cat "$WORK/agent/agent.log")"
  sleep 0.05
done
grep -q 'license state active' "$WORK/agent/agent.log" ||
  die "the license is not active: $(cat "$WORK/agent/agent.log")"
# Idle: after "serving on" (the listener thread is up), no connection yet.
sleep 0.5
status() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$AGENT/status"; }
IDLE_RSS=$(status VmRSS)
IDLE_HWM=$(status VmHWM)
IDLE_THREADS=$(status Threads)
log "agent pid $AGENT: idle VmRSS $IDLE_RSS kB, VmHWM $IDLE_HWM kB, $IDLE_THREADS threads"

# ---- CPU accounting ----------------------------------------------------------
agent_ticks() { awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$AGENT/stat"; }
# All CPUs' busy ticks (user nice system irq softirq; not idle, iowait, steal).
busy_ticks() { awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8; exit}' /proc/stat; }

# run_flood NAME ARGS...: runs flood, prints its output indented, leaves its
# RESULT line in RES_<NAME> and CPU figures in CPU_<NAME>.
run_flood() {
  local name=$1
  shift
  local a0 b0 a1 b1 t0 t1 rc=0
  a0=$(agent_ticks)
  b0=$(busy_ticks)
  t0=$EPOCHREALTIME
  /usr/bin/time -f '%U %S' -o "$WORK/time.$name" "$FLOOD" "$SOCK" "$@" >"$WORK/flood.$name" 2>&1 || rc=$?
  t1=$EPOCHREALTIME
  a1=$(agent_ticks)
  b1=$(busy_ticks)
  sed 's/^/    /' "$WORK/flood.$name" | grep -v '^    RESULT' >&2
  ((rc == 0)) || die "flood $* failed (exit $rc)"
  local res fl
  res=$(grep '^RESULT' "$WORK/flood.$name")
  fl=$(awk '/^[0-9.]+ [0-9.]+$/ {print $1 + $2}' "$WORK/time.$name")
  # agent CPU s, flood CPU s, others' CPU s, wall s
  printf -v "RES_$name" '%s' "$res"
  printf -v "CPU_$name" '%s' "$(awk -v a=$((a1 - a0)) -v b=$((b1 - b0)) -v hz="$HZ" -v f="$fl" \
    -v w="$(awk -v x="$t0" -v y="$t1" 'BEGIN {print y - x}')" \
    'BEGIN {ag = a / hz; all = b / hz; o = all - ag - f; if (o < 0) o = 0; printf "%.2f %.2f %.2f %.2f", ag, f, o, w}')"
}
field() { tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1 == k {print $2}'; }

if [[ ${BENCH_PERF:-0} == 1 ]]; then
  perf record -g -F 999 -p "$AGENT" -o "$WORK/perf.data" 2>"$WORK/perf.log" >/dev/null &
  PERF=$!
  sleep 1
fi

for n in $CONNS_LIST; do
  log "closed loop: $n connection(s), $CLOSED_SECS s..."
  run_flood "c$n" closed "$n" "$CLOSED_SECS"
done

if [[ -n $PERF ]]; then
  kill -INT "$PERF" 2>/dev/null || true
  wait "$PERF" 2>/dev/null || true
  PERF=
  log "perf data: $WORK/perf.data (BENCH_KEEP=1 to keep it)"
fi

log "open loop: $RATE requests/s for $OPEN_SECS s over $OPEN_CONNS connection(s)..."
run_flood open open "$RATE" "$OPEN_SECS" "$OPEN_CONNS"

PEAK_HWM=$(status VmHWM)
AFTER_RSS=$(status VmRSS)
AFTER_THREADS=$(status Threads)
kill "$AGENT"
wait "$AGENT" 2>/dev/null || true
AGENT=

# ---- the table ---------------------------------------------------------------
mib() { awk -v k="$1" 'BEGIN {printf "%.1f MiB", k / 1024}'; }
verdict() { if awk -v v="$1" -v t="$3" "BEGIN {exit !(v $2 t)}"; then echo ok; else echo MISSED; fi; }

echo
echo "charter-agent local API benchmark ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
echo "machine: nproc $NPROC, CPU $CPU, kernel $KERNEL, load average at start $LOAD0, at end $(cut -d' ' -f1-3 /proc/loadavg)"
echo "request: GET /v1/features/backups, HTTP/1.1 keep-alive over a unix socket, from a second process"
echo
printf '%-44s %14s %12s  %-16s %s\n' "closed loop (saturating, ${CLOSED_SECS} s each)" "checks/s" "p99" "target" "CPU s: agent/flood/others, agent us/req"
BEST=0
BEST_N=
for n in $CONNS_LIST; do
  v="RES_c$n"
  c="CPU_c$n"
  r=$(field "${!v}" rps)
  ok=$(field "${!v}" ok)
  read -r ag fl ot _ <<<"${!c}"
  per=$(awk -v a="$ag" -v n="$ok" 'BEGIN {printf "%.1f", n ? a * 1e6 / n : 0}')
  printf '%-44s %14s %9s us  %-16s %s/%s/%s, %s\n' "  $n connection(s)" "$r" "$(field "${!v}" p99_us)" \
    ">= $TARGET_RPS $(verdict "$r" '>=' $TARGET_RPS)" "$ag" "$fl" "$ot" "$per"
  if awk -v a="$r" -v b="$BEST" 'BEGIN {exit !(a > b)}'; then
    BEST=$r
    BEST_N=$n
  fi
done
printf '%-44s %14s %12s  %-16s\n' "  best ($BEST_N connection(s))" "$BEST" "" ">= $TARGET_RPS $(verdict "$BEST" '>=' $TARGET_RPS)"
echo
read -r ag fl ot _ <<<"$CPU_open"
printf '%-44s %14s  %-16s\n' "open loop ($RATE/s, $OPEN_SECS s, $OPEN_CONNS conns)" "" ""
printf '%-44s %14s\n' "  requests ok / non-200" "$(field "$RES_open" ok) / $(field "$RES_open" errors)"
printf '%-44s %14s\n' "  achieved rate" "$(field "$RES_open" achieved)/s"
printf '%-44s %11s us\n' "  p50 latency (from due time)" "$(field "$RES_open" p50_us)"
P99=$(field "$RES_open" p99_us)
printf '%-44s %11s us  %-16s\n' "  p99 latency (from due time)" "$P99" "< $TARGET_P99_US us $(verdict "$P99" '<' $TARGET_P99_US)"
printf '%-44s %11s us\n' "  p99.9 latency (from due time)" "$(field "$RES_open" p999_us)"
printf '%-44s %11s us\n' "  max latency (from due time)" "$(field "$RES_open" max_us)"
printf '%-44s %14s\n' "  requests over 1 ms" "$(field "$RES_open" over_1ms)"
printf '%-44s %s / %s / %s us\n' "  service time p50 / p99 / max" "$(field "$RES_open" svc_p50_us)" "$(field "$RES_open" svc_p99_us)" "$(field "$RES_open" svc_max_us)"
printf '%-44s %s / %s us\n' "  client send lag p50 / p99" "$(field "$RES_open" lag_p50_us)" "$(field "$RES_open" lag_p99_us)"
printf '%-44s %s / %s / %s\n' "  CPU s: agent / flood / others" "$ag" "$fl" "$ot"
echo
printf '%-44s %14s  %-16s\n' "memory (agent)" "" ""
printf '%-44s %14s  %-16s\n' "  idle RSS (VmRSS after startup, no load)" "$(mib "$IDLE_RSS")" "< $TARGET_IDLE_MIB MiB $(verdict "$IDLE_RSS" '<' $((TARGET_IDLE_MIB * 1024)))"
printf '%-44s %14s\n' "  startup peak (VmHWM before any load)" "$(mib "$IDLE_HWM")"
printf '%-44s %14s\n' "  peak RSS (VmHWM after the floods)" "$(mib "$PEAK_HWM")"
printf '%-44s %14s\n' "  RSS after the floods (VmRSS)" "$(mib "$AFTER_RSS")"
printf '%-44s %14s\n' "  threads idle / after the floods" "$IDLE_THREADS / $AFTER_THREADS"

# Others' CPU use during the timed runs, as a share of the whole machine.
OTHERS=$(for v in ${!CPU_*}; do echo "${!v}"; done |
  awk -v n="$NPROC" '{o += $3; w += $4} END {printf "%.2f %.0f", o, w ? 100 * o / (w * n) : 0}')
read -r o_s o_pct <<<"$OTHERS"
echo
if ((o_pct >= 10)); then
  echo "note: other processes used $o_s CPU-s during the timed runs ($o_pct % of this $NPROC-CPU machine): the figures above are pessimistic."
else
  echo "other processes used $o_s CPU-s during the timed runs ($o_pct % of the machine)."
fi
