#!/bin/bash
# One device run: (1) scaling of the peer suite at 1..16 procs, (2) the release test
# binaries on 16 cores, repeated until the time is up. Writes everything under $OUT.
cd "$(dirname "$0")"
S=$OUT/scaling.txt; T=$OUT/tests.txt
{ nproc; grep -m1 'model name' /proc/cpuinfo; uname -a; cat /proc/loadavg; } > $OUT/machine.txt 2>&1
ulimit -n 65536 2>/dev/null
end=$((SECONDS+270))
for rep in 1 2 3; do
 for procs in 1 2 4 8 16; do
  for b in spawn skynet pingpong yield mpmc mpmc0 timers mutex waitgroup; do
   for p in gmp go tokio may; do
    [ $SECONDS -gt $end ] && break 4
    o=$(timeout 40 bin/peer-$p $b --procs $procs 2>&1); rc=$?
    echo "$o" | grep RESULT | sed "s/\$/ rep=$rep/" >> $S
    [ $rc -ne 0 ] && echo "FAIL peer=$p bench=$b procs=$procs rc=$rc :: $(echo "$o" | tail -3 | tr '\n' '|')" >> $S
   done
  done
 done
done
echo "scaling done at ${SECONDS}s" >> $S
# (2) tests: each binary once, then the scheduler ones again until the deadline.
end=$((SECONDS+180))
run() { timeout 60 tests/$1 --test-threads=16 -q > /tmp/t.log 2>&1; rc=$?
  echo "$1 rc=$rc $(grep -E '^test result' /tmp/t.log | tr '\n' ' ')" >> $T
  [ $rc -ne 0 ] && { echo "---- $1 ----"; tail -60 /tmp/t.log; } >> $OUT/test-failures.txt; }
for t in $(ls tests); do [ $SECONDS -gt $end ] && break; run $t; done
round=0
while [ $SECONDS -lt $end ]; do round=$((round+1))
 for t in $(ls tests | grep -E '^(lifecycle|scheduler_regressions|chan_goroutines|sync_goroutines|runtime|stress|deadlock|prop_workload|unwind_registrations|async_interop)-'); do
  [ $SECONDS -gt $end ] && break; run $t; done
done
echo "tests done at ${SECONDS}s, repeat rounds $round" >> $T
