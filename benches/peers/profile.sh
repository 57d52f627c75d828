#!/usr/bin/env bash
# Profiles one peer on one workload with perf, and renders what it saw:
#
#   benches/peers/profile.sh <bench> [--peer P] [--procs N] [--seconds S] [--syscalls]
#
# writes, under bench-results/profiles/:
#   <bench>-<peer>.svg            a flame graph (inferno, via the `flame` tool here)
#   <bench>-<peer>.txt            the frames with the most self and total samples
#   <bench>-<peer>-syscalls.txt   with --syscalls: `strace -c -f` of the same run (a
#                                 separate run: strace slows it), and for echo the
#                                 calls per round trip (100 x 1,000 round trips)
# The peer binary is the one the comparison suite measures (bin/peer-<peer>, release,
# no debug info): perf unwinds it with DWARF CFI (.eh_frame), Go with frame pointers.
# echo and http profile the server only (perf attached to it while the load client,
# the suite's own, drives it). Run it on a quiet machine, as the suite.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
cd "$HERE"
export GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=mod

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; }
[ $# -ge 1 ] || { usage >&2; exit 2; }
case $1 in -h | --help) usage; exit 0 ;; esac
bench=$1
shift
peer=gmp procs="" seconds=5 syscalls=""
while [ $# -gt 0 ]; do
    case $1 in
    --peer) peer=${2:?--peer needs a value}; shift 2 ;;
    --procs) procs=${2:?--procs needs a value}; shift 2 ;;
    --seconds) seconds=${2:?--seconds needs a value}; shift 2 ;;
    --syscalls) syscalls=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "profile.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
done
case " spawn skynet pingpong yield mpmc mpmc0 timers idlemem starve mutex park1m conns echo http " in
*" $bench "*) ;;
*) echo "profile.sh: unknown bench '$bench'" >&2; exit 2 ;;
esac
case $peer in gmp | go | tokio | may | threads) ;; *)
    echo "profile.sh: unknown peer '$peer' (gmp go tokio may threads)" >&2; exit 2 ;;
esac
if [ -z "$procs" ]; then
    case $bench in pingpong | yield | starve) procs=1 ;; *) procs=2 ;; esac
fi
command -v perf >/dev/null || { echo "profile.sh: perf is not installed" >&2; exit 1; }

OUT=$ROOT/bench-results/profiles
TMP=$ROOT/bench-results/tmp
mkdir -p "$OUT" "$TMP" bin
echo "profile.sh: building peer-$peer and flame (release)" >&2
if [ "$peer" = go ]; then
    (cd go && go build -o ../bin/ ./peer-go)
else
    cargo build --release -q -p "peer-$peer" -p flame
    cp "target/release/peer-$peer" bin/
fi
[ "$peer" = go ] && cargo build --release -q -p flame
cp target/release/flame bin/
if [ "$bench" = echo ]; then
    (cd go && go build -o ../bin/ ./echoclient) 2>/dev/null && client=(bin/echoclient -addr) ||
        { cargo build --release -q -p peer-loadgen && cp target/release/peer-loadgen bin/ &&
            client=(bin/peer-loadgen --addr); }
fi
if [ "$bench" = http ] && ! command -v wrk >/dev/null; then
    echo "profile.sh: http needs wrk" >&2
    exit 1
fi

callgraph=(--call-graph dwarf,16384)
[ "$peer" = go ] && callgraph=(--call-graph fp)
data=$TMP/perf-$bench-$peer.data
port=$((17000 + RANDOM % 20000))

# Starts the server on $port and drives it with the suite's client (echo: $2 round trips
# per connection, 100 connections; http: wrk for $seconds). $1 says what watches the
# server meanwhile: `perf` (perf record for $seconds, starting once the load runs) or
# `strace` (strace -c -f for the whole load). The watcher is started directly (not in a
# subshell) so that SIGINT reaches it.
serve_and_load() {
    local watch=$1 n=$2 spid wpid
    "bin/peer-$peer" "$bench" --procs "$procs" --port "$port" >/dev/null 2>"$TMP/profile-server.txt" &
    spid=$!
    for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
    if [ "$watch" = strace ]; then
        strace -c -f -o "$TMP/strace.txt" -p "$spid" 2>/dev/null &
        wpid=$!
        sleep 0.5
    fi
    if [ "$bench" = echo ]; then
        "${client[@]}" "127.0.0.1:$port" -n "$n" -peer "$peer" -procs "$procs" &
    else
        wrk -t2 -c100 -d"${seconds}s" --latency "http://127.0.0.1:$port/" >"$TMP/profile-wrk.txt" &
    fi
    local cpid=$!
    if [ "$watch" = perf ]; then
        sleep 0.5
        perf record -q -F 999 "${callgraph[@]}" -o "$data" -p "$spid" -- sleep "$seconds" 2>/dev/null || true
    fi
    wait "$cpid" || true
    [ "$bench" = http ] && grep -E 'Requests/sec|Latency|50%|99%' "$TMP/profile-wrk.txt"
    if [ "$watch" = strace ]; then
        kill -INT "$wpid" 2>/dev/null || true
        wait "$wpid" 2>/dev/null || true
    fi
    kill "$spid" 2>/dev/null || true
    wait "$spid" 2>/dev/null || true
}

echo "profile.sh: recording $peer $bench --procs $procs (load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
case $bench in
echo | http) serve_and_load perf 10000 ;;
*) perf record -q -F 999 "${callgraph[@]}" -o "$data" -- \
    "bin/peer-$peer" "$bench" --procs "$procs" ;;
esac
perf script -i "$data" 2>/dev/null |
    bin/flame --title "$peer $bench (procs $procs)" --svg "$OUT/$bench-$peer.svg" >"$OUT/$bench-$peer.txt"
rm -f "$data"
echo "profile.sh: wrote $OUT/$bench-$peer.svg and .txt" >&2
head -n 20 "$OUT/$bench-$peer.txt"

if [ -n "$syscalls" ]; then
    echo "profile.sh: counting system calls (a second run, under strace)" >&2
    case $bench in
    # echo: 100 connections x 1,000 round trips (strace slows the server down).
    echo | http) serve_and_load strace 1000 >"$TMP/strace-load.txt" ;;
    *) strace -c -f -o "$TMP/strace.txt" "bin/peer-$peer" "$bench" --procs "$procs" >/dev/null ;;
    esac
    {
        echo "# system calls: $peer $bench (procs $procs), strace -c -f$( [ "$bench" = echo ] || [ "$bench" = http ] && echo " of the server")"
        cat "$TMP/strace.txt"
        if [ "$bench" = echo ]; then
            # 100 connections x 1,000 round trips.
            awk '$NF == "total" {printf "\ncalls per round trip: %.2f\n", $4 / 100000}' "$TMP/strace.txt"
        fi
    } >"$OUT/$bench-$peer-syscalls.txt"
    tail -n 25 "$OUT/$bench-$peer-syscalls.txt"
fi
