//! The guide: the study note's open questions, answered from this crate's code.
//!
//! gmp grew from a short study note on Go's scheduler (`gmp-scheduler-notes`). It
//! explains G, M and P, work stealing and the P states, then ends with three questions
//! it could not answer — how the main goroutine is created, how the schedule loop
//! starts, how an M finds work — and refers to two pictures it lost: the G status
//! transitions and the P status transitions. This module is documentation only: each
//! answer below follows our code, names the Go function each piece mirrors, and links
//! to the source (the private functions are in the crate's source pages; build the docs
//! with `--document-private-items` to browse them as items).
//!
//! # 1. How is the main goroutine created?
//!
//! Go's `main` is a goroutine the runtime makes for itself: `rt0_go` calls `schedinit`
//! (which sizes `allp` with `procresize`), then `newproc(runtime.main)`, then `mstart`
//! on the first thread, `m0`, bound to `allp[0]`; `runtime.main` calls your `main.main`.
//! In gmp the caller's thread is not an M: it hands its closure to the scheduler and
//! waits.
//!
//! 1. [`Runtime::builder`](crate::Runtime::builder)`()...`[`build`](crate::RuntimeBuilder::build)`()`
//!    is `schedinit` + `procresize`: `Sched::new` ([`sched.rs`](../../src/gmp_runtime/sched.rs.html))
//!    makes `allp`, [`procs`](crate::RuntimeBuilder::procs) Ps (default `GMP_MAXPROCS`,
//!    else the machine's parallelism), every one `IDLE` and on the idle list in reverse
//!    order, so that P 0 is handed out first as Go binds `m0` to `allp[0]`. There is no
//!    `_Pgcstop` (gmp has no garbage collector to stop the world for). The sysmon thread
//!    starts; no M does yet.
//! 2. [`Runtime::block_on`](crate::Runtime::block_on)`(f)` — or [`run`](crate::run)`(f)`,
//!    the same on the process-wide default runtime, our `main` — is `newproc`:
//!    `spawn_in` ([`spawn.rs`](../../src/gmp_runtime/spawn.rs.html)) makes a G named
//!    `main` (`Idle` → `Runnable`, no stack yet: it gets one when it first runs) and,
//!    since the caller is not an M of this runtime, pushes it on the global run queue.
//! 3. `wakep` ([`sched.rs`](../../src/gmp_runtime/sched.rs.html)): a P is idle and no M
//!    spins, so it claims the spinner slot (`nmspinning` 0 → 1), takes P 0 from the idle
//!    list and calls `startm`, which finds no idle M and calls `newm`: a new OS thread,
//!    `gmp-m<id>`, runs `mstart` with P 0, spinning (question 2).
//! 4. The caller waits in `wait_main` ([`runtime.rs`](../../src/gmp_runtime/runtime.rs.html)):
//!    it parks the thread on the main goroutine's result, like
//!    [`JoinHandle::join`](crate::JoinHandle::join), and is woken either by the result
//!    (returned, or a panic resumed in the caller) or by sysmon's deadlock verdict
//!    (Go's `all goroutines are asleep - deadlock!`). Called from inside a goroutine
//!    of the same runtime, `block_on` just joins, parking that goroutine.
//!
//! Every other goroutine is made the same way by [`spawn`](crate::spawn()) /
//! [`go!`](crate::go), except that from a goroutine the new G goes into the spawner's
//! own P's `runnext` (Go's `runqput(pp, newg, true)`), so it runs next on that P, and an
//! idle P is woken only if nobody spins.
//!
//! # 2. How does the schedule loop start?
//!
//! Every M is an OS thread whose body is `mstart` ([`schedule.rs`](../../src/gmp_runtime/schedule.rs.html));
//! the order is Go's `mstart` → `mstart1` → `schedule`:
//!
//! 1. `mstart` publishes the M's context in a thread-local (Go: `g0`/`m.tls`) and
//!    installs the runtime's park hook ([`gmp_core::park::set_hook`]) on the thread,
//!    so that a channel or poller wait there parks the running goroutine instead of
//!    the thread; then `acquirep` ([`p.rs`](../../src/gmp_runtime/p.rs.html)) — the P
//!    goes `IDLE` → `RUNTIME` — and it records whether it was started spinning.
//! 2. `schedule` is a plain loop on the M's own stack, which plays Go's `g0` stack:
//!    `while let Some((g, inherit)) = find_runnable()`: if the M was spinning, it stops
//!    (`resetspinning`: `nmspinning`−1, and if it was the last spinner, `wakep` starts
//!    another, so that new work keeps finding a thread); then `execute(g)`.
//! 3. `execute` is Go's `execute` + `gogo`: a fresh time slice bumps the P's `schedtick`
//!    (not when the G came from `runnext`, which inherits the slice; every switch bumps
//!    its `switchtick`, which sysmon watches for hogs); the G goes
//!    `Runnable` → `Running` and the P `RUNTIME` → `USER`; the M resumes the G's
//!    coroutine ([`gmp_core::Coroutine::resume`]; at the first run the stack comes
//!    from the P's cache).
//! 4. When the goroutine suspends — it parked, yielded, lost its P, or finished — the
//!    resume returns into `execute`, which does what Go does after `mcall`: commit the
//!    park (`park_m`, the G becomes `Waiting`, or `Runnable` again if a wake-up slipped
//!    in), put a yielding G at the tail of the local queue (`goyield`), queue a G whose
//!    P was taken on the global queue (`exitsyscall0`), or retire a finished one
//!    (`goexit0`: `Dead`, its G kept for reuse). Back to 2.
//!
//! Go's `schedule` never returns (each switch goes back to `g0` and calls it afresh);
//! ours returns only at shutdown, when `find_runnable` says `None`, and `mstart` gives
//! its P back and uninstalls the hook.
//!
//! # 3. How does an M find work?
//!
//! `find_runnable` ([`schedule.rs`](../../src/gmp_runtime/schedule.rs.html)) is Go's
//! `findRunnable`, step for step, with an M that holds P `p`:
//!
//! 1. **Timers**: run `p`'s due timers; the goroutines they wake join `p`'s run queue.
//! 2. **Fairness**: on every 61st `schedtick`, take one goroutine from the global queue
//!    first, so a stream of local work cannot starve it.
//! 3. **Local**: `runnext`, then the ring of [`gmp_queue::LOCAL_CAPACITY`] = 256 slots
//!    ([`gmp_queue::Local::pop`]; Go: `runqget`). A G from `runnext` inherits the
//!    current time slice.
//!
//!    Not Go's: **a stalled P**. If another P has not switched goroutines for 100 µs
//!    while goroutines wait in its queue — its M preempted by the kernel in the middle
//!    of a run, or a goroutine running without a scheduling point — take half of its
//!    ring, or its `runnext` once the ring is empty (`stall.rs`). Each M remembers each
//!    P's `switchtick` and since when it has seen it unchanged; a P that switches costs
//!    a load, and no clock read. Without this, a P busy with fresh network events (step
//!    5) never reached step 6, and the stranded goroutines waited for their M, or for
//!    sysmon's retake after 10 ms: under HTTP load they were overtaken by requests that
//!    arrived later (p99 of the ready-to-run wait 1.1-1.6 ms).
//! 4. **Global**: a batch of `min(len, len / procs + 1, 128)` goroutines into the local
//!    ring, one of them to run now ([`gmp_queue::Global::pop_batch_into`]; Go:
//!    `globrunqget`).
//! 5. **Network**: a non-blocking poll ([`gmp_netpoll::Poller::poll`] with a zero
//!    timeout), only if some goroutine waits on the poller — also while another M is
//!    blocked in it, where Go skips the poll: that M, woken by the kernel, may wait for
//!    a CPU while this one runs already. The goroutines it readies go to `p`'s queue,
//!    and wake at most one other M — none for a lone goroutine, which this M runs next
//!    (tokio's rule; the poll in step 8 does the same when it gets a P).
//! 6. **Steal**: only if this M already spins, or fewer than half of the busy Ps have a
//!    spinning M (`2 × nmspinning < procs − npidle`, which keeps idle Ms from burning
//!    every core); the M becomes a spinner (`nmspinning`+1) and makes 4 passes over the
//!    other Ps in random order (a random start and a random stride coprime with
//!    `procs`: Go's `randomOrder`), skipping idle Ps, taking half of a victim's ring
//!    ([`gmp_queue::Stealer::steal_into`]; Go: `runqsteal`). On the last pass only, it
//!    also runs a victim's due timers and takes its `runnext` — after a back-off of 128
//!    spin-loop pauses if the victim is running goroutine code, since that goroutine
//!    was usually just readied by the running one and will run within microseconds
//!    (Go: the `usleep(3)` in `runqgrab`).
//! 7. **Give up the P**: under the idle lock — keep it if the global queue is not empty;
//!    if another M asked for a spinner (`needspinning`), spin again instead; else the
//!    P goes `RUNTIME` → `IDLE` onto the idle list. A spinner then stops spinning
//!    (`nmspinning`−1), and — the step that makes a lost wake-up impossible — after a
//!    `SeqCst` fence re-checks the global queue and every P's run queue; if work
//!    appeared it takes an idle P back and spins again (Go: `pidlegetSpinning`), or
//!    sets `needspinning` if every P is busy.
//! 8. **Sleep** (`sleep_for_p`, Go's `stopm`): block in the network poller if it has
//!    waiters and no other thread is blocked there, else sleep on the M's own note;
//!    either way only until the earliest timer of any P. A `wakep` (new work), a
//!    `handoffp` (a P taken from a blocked or hogging M) or a timer wakes it, with a P
//!    or to look for one.
//!
//! Two things find work *for* an M from outside: `wakep` after every spawn or wake-up
//! (step 3 of question 1), and sysmon ([`sysmon.rs`](../../src/gmp_runtime/sysmon.rs.html)),
//! which retakes a P whose M has been in [`blocking`](crate::blocking) for a sysmon
//! tick (20 µs at first; at once if one of the P's timers is due) or whose goroutine
//! has run 10 ms without a scheduling point,
//! and hands it to another M (`handoffp`) — Rust code has no preemption points, so
//! this is how a busy loop cannot starve its P's queue. Goroutines that hand `runnext`
//! to each other for 10 ms (one time slice, but through the scheduler) keep their P:
//! sysmon sets its `preempt` flag (Go's `preemptone`), and the next `runnext` pick goes
//! to the back of the global queue instead. When every goroutine is parked
//! and nothing can wake one for 250 ms, sysmon reports the deadlock (Go's `checkdead`;
//! see the crate docs for when the report is fatal).
//!
//! # The lost pictures
//!
//! Both diagrams are drawn from the transition tables that debug builds check every
//! state change against (`g::TRANSITIONS` in
//! [`g.rs`](../../src/gmp_runtime/g.rs.html), `p::TRANSITIONS` in
//! [`p.rs`](../../src/gmp_runtime/p.rs.html)); a test redraws them and fails if the
//! committed pictures differ, so they cannot drift from the code. Each arrow is labelled
//! with the function that makes the transition (Go's name where Go has one).
//!
//! ## G status
//!
//! Go's `_G*` states that gmp uses (no `_Gcopystack`, `_Gpreempted` or GC states:
//! stacks are fixed and preemption takes the P, not the G). "lost P": the goroutine ran
//! on after sysmon took its P and goes back through the global queue at its next
//! scheduling point.
//!
#![doc = include_str!("guide/g-status.svg")]
//!
//! ## P status
//!
//! Go's `_Prunning` is split in two: `RUNTIME` while the M runs scheduler code and
//! may touch the P's queues, `USER` while it runs goroutine code — the state in which
//! sysmon may take the P away. It does so through `RETAKE`: it marks the P, makes every
//! running thread pass a memory barrier (`membarrier`), and then takes the P only if
//! its M is not at that moment taking it back itself; so the M, at each switch, takes
//! its P back with plain stores and loads instead of a compare-and-swap (p.rs module
//! docs). The owner word also names the M, so a late owner cannot take back a P that
//! moved on. `SYSCALL` is Go's `_Psyscall`, inside [`blocking`](crate::blocking). There
//! is no `_Pgcstop` or `_Pdead`: no garbage collector, and the number of Ps is fixed per
//! runtime.
//!
#![doc = include_str!("guide/p-status.svg")]
//!
//! An M's own state is Go's: spinning (counted in `nmspinning`, looking for work, step
//! 6 above) or not; an M that finds nothing sleeps on its note until a P is handed to it.

#[cfg(test)]
mod render;
