//! A waiter that leaves its park by unwinding leaves no registration behind (ARCHITECTURE.md,
//! "a registration never outlives the stack it points into").
//!
//! gmp-chan alone, without a runtime: a tiny park hook makes `park` suspend a gmp-core
//! [`Coroutine`], exactly as gmp-runtime's goroutines do. Dropping the suspended coroutine
//! is then gmp-core's forced unwind raised from inside the channel's park (what a runtime's
//! shutdown does to its parked goroutines), and the coroutine's stack is freed right after.
//! Each test then uses the same channel from this thread and checks that the next
//! operations behave exactly as if the dead waiter had never existed.

use gmp_chan::{
    bounded, unbounded, Receiver, RecvError, RecvTimeoutError, Select, Sender, TryRecvError,
    TrySendError,
};
use gmp_core::park::{self, ParkHook, Unpark, Unparker};
use gmp_core::{Coroutine, Resume, Stack, Suspender};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// Generous: a bug fails the test after this long instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(10);

thread_local! {
    /// The coroutine running on this thread (its suspender), if any.
    static RUNNING: Cell<*const Suspender> = const { Cell::new(std::ptr::null()) };
    /// Its wake-up flag.
    static WOKEN: Cell<Option<&'static AtomicBool>> = const { Cell::new(None) };
}

/// Records that the coroutine was unparked (nobody resumes it: the test decides).
struct Flag(&'static AtomicBool);

impl Unpark for Flag {
    fn unpark(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

struct Hook;

impl ParkHook for Hook {
    fn current(&self) -> Option<Unparker> {
        if RUNNING.get().is_null() {
            return None;
        }
        WOKEN
            .get()
            .map(|f| Unparker::new(Arc::new(Flag(f)) as Arc<dyn Unpark>))
    }

    fn park(&self, _deadline: Option<std::time::Instant>) -> bool {
        let s = RUNNING.get();
        if s.is_null() {
            return false;
        }
        // SAFETY: `s` is the running coroutine's suspender (set by `parked` below, on this
        // thread, for the coroutine's whole run), and we are on that coroutine's stack.
        unsafe { (*s).suspend() };
        true
    }
}

static HOOK: Hook = Hook;

/// A coroutine that ran `f` until `f` parked; drop it to unwind `f` out of its park.
struct Parked {
    co: Option<Coroutine<()>>,
    woken: &'static AtomicBool,
}

impl Parked {
    /// True once a peer unparked the coroutine (it chose the parked operation).
    fn woken(&self) -> bool {
        self.woken.load(Ordering::SeqCst)
    }
}

/// Runs `f` on a coroutine until it parks (`f` must park).
fn parked(f: impl FnOnce() + 'static) -> Parked {
    park::set_hook(Some(&HOOK));
    let woken: &'static AtomicBool = Box::leak(Box::new(AtomicBool::new(false)));
    WOKEN.set(Some(woken));
    let mut co = Coroutine::new(Stack::new(256 * 1024).unwrap(), move |s: &Suspender| {
        RUNNING.set(s as *const Suspender);
        f();
    });
    match co.resume() {
        Resume::Suspended => {}
        _ => panic!("the operation under test did not park"),
    }
    Parked {
        co: Some(co),
        woken,
    }
}

impl Drop for Parked {
    fn drop(&mut self) {
        // The forced unwind runs on this thread; RUNNING still names the suspender, so
        // parks during the unwinding reach `suspend`, which returns at once then.
        drop(self.co.take());
        RUNNING.set(std::ptr::null());
        WOKEN.set(None);
    }
}

/// Counts drops, to check that a message is dropped exactly once (never leaked, never
/// received and dropped again).
#[derive(Debug)]
struct Counted(Arc<AtomicUsize>, u32);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

/// Receives on another thread, with a bound; `None` if nothing came in time.
fn recv_on_thread<T: Send + 'static>(r: Receiver<T>) -> Live<Result<T, RecvError>> {
    live(move || r.recv())
}

/// A plain thread doing a blocking operation with no deadline of its own (a lost wake-up
/// would leave it asleep for good, where a timeout would only hide the bug).
struct Live<T>(std::sync::mpsc::Receiver<T>);

fn live<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Live<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    Live(rx)
}

impl<T> Live<T> {
    /// The operation's result; panics (naming `what`) if it is still blocked after
    /// `PATIENCE` (the thread is then left behind, blocked).
    fn join(self, what: &str) -> T {
        self.0
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|_| panic!("{what}: still blocked after {PATIENCE:?}"))
    }
}

#[test]
fn zero_recv_unwound_then_try_send_finds_no_receiver() {
    let (s, r) = bounded::<u32>(0);
    let r2 = r.clone(); // keeps the channel connected after the unwinding
    let p = parked(move || {
        let _ = r2.recv();
    });
    drop(p);
    // The dead receiver's entry (and its packet) must be gone: nobody is waiting.
    assert!(matches!(s.try_send(1), Err(TrySendError::Full(1))));
    drop(r);
}

#[test]
fn zero_send_unwound_drops_its_message_once_and_leaves_no_sender() {
    let drops = counter();
    let (s, r) = bounded::<Counted>(0);
    let (s2, d) = (s.clone(), drops.clone());
    let p = parked(move || {
        let _ = s2.send(Counted(d, 7));
    });
    drop(p);
    // Never delivered: dropped with the unwound sender, exactly once; no sender waits.
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert!(matches!(r.try_recv(), Err(TryRecvError::Empty)));
    drop(s);
}

#[test]
fn zero_select_recv_unwound_after_a_sender_completed_drops_the_message_once() {
    let drops = counter();
    let (s, r) = bounded::<Counted>(0);
    let (_s2, r2) = bounded::<Counted>(0);
    let _r = r.clone();
    let p = parked(move || {
        let mut sel = Select::new();
        let a = sel.recv(&r);
        let b = sel.recv(&r2);
        let oper = sel.select();
        let _ = if oper.index() == a {
            oper.recv(&r)
        } else {
            assert_eq!(oper.index(), b);
            oper.recv(&r2)
        };
    });
    // The sender pairs with the parked select and completes the handoff.
    s.send_timeout(Counted(drops.clone(), 1), PATIENCE)
        .expect("the parked select should take the message");
    assert!(p.woken());
    drop(p);
    // The select never received it: the message is dropped with the pairing, once.
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn zero_select_send_unwound_after_being_chosen_lets_the_receiver_retry() {
    let (s, r) = bounded::<u32>(0);
    let s2 = s.clone();
    let p = parked(move || {
        let mut sel = Select::new();
        let i = sel.send(&s2);
        let oper = sel.select();
        assert_eq!(oper.index(), i);
        let _ = oper.send(&s2, 1);
    });
    // This receiver pairs with the parked select send arm and waits for it to produce
    // the message; the select is then unwound instead.
    let rx = recv_on_thread(r);
    while !p.woken() {
        thread::sleep(Duration::from_millis(1));
    }
    drop(p);
    // The receiver did not get a phantom message: it is still waiting, and takes the
    // next real one.
    s.send_timeout(2, PATIENCE)
        .expect("the receiver should still be waiting");
    assert_eq!(rx.join("live receiver"), Ok(2));
}

/// A plain sender is chosen by a `select` that then holds the pairing (a
/// `SelectedOperation`, across user code) while the sender is unwound. The sender must
/// not wait for that select: it leaves first (`LEFT`), and its stack and waiter record
/// go at once. The select, completing afterwards, delivers the message exactly once and
/// does not touch the dead sender's record (gmp-chan's `context.rs`). Run on a helper
/// thread so that a sender waiting for the select fails the test instead of hanging it.
#[test]
fn zero_send_unwound_while_a_select_holds_its_pairing() {
    let drops = counter();
    let d = drops.clone();
    let outcome = live(move || {
        let (s, r) = bounded::<Counted>(0);
        let s2 = s.clone();
        let p = parked(move || {
            let _ = s2.send(Counted(d, 7));
        });
        let mut sel = Select::new();
        let i = sel.recv(&r);
        // Pairs with the parked sender at once and holds the pairing.
        let oper = sel.select();
        assert_eq!(oper.index(), i);
        drop(p); // the sender unwinds while the select holds it
        let m = oper.recv(&r).expect("the message was handed over");
        let got = m.1;
        drop(m);
        let empty = matches!(r.try_recv(), Err(TryRecvError::Empty));
        (got, empty)
    })
    .join("a sender unwound while a select held its pairing");
    assert_eq!(outcome, (7, true));
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1,
        "the message is dropped once"
    );
}

fn buffered_recv_unwound_then_live_receiver_gets_message(s: Sender<u32>, r: Receiver<u32>) {
    let r2 = r.clone();
    let p = parked(move || {
        let _ = r2.recv();
    });
    drop(p);
    let rx = recv_on_thread(r);
    // Let the live receiver register behind the dead one's entry (if it is still there).
    thread::sleep(Duration::from_millis(50));
    s.send(5).unwrap();
    assert_eq!(rx.join("the live receiver was not woken"), Ok(5));
}

#[test]
fn array_recv_unwound_then_live_receiver_gets_message() {
    let (s, r) = bounded(1);
    buffered_recv_unwound_then_live_receiver_gets_message(s, r);
}

#[test]
fn list_recv_unwound_then_live_receiver_gets_message() {
    let (s, r) = unbounded();
    buffered_recv_unwound_then_live_receiver_gets_message(s, r);
}

#[test]
fn array_send_unwound_then_live_sender_gets_the_slot() {
    let drops = counter();
    let (s, r) = bounded::<Counted>(1);
    s.send(Counted(drops.clone(), 0)).unwrap();
    let (s2, d) = (s.clone(), drops.clone());
    let p = parked(move || {
        let _ = s2.send(Counted(d, 1));
    });
    drop(p);
    // The unwound sender's message was never written: dropped with it, once.
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    let (s3, d) = (s.clone(), drops.clone());
    let tx = live(move || s3.send(Counted(d, 2)).is_ok());
    thread::sleep(Duration::from_millis(50));
    assert_eq!(r.recv().unwrap().1, 0);
    assert!(tx.join("live sender"));
    assert_eq!(r.recv().unwrap().1, 2);
    assert!(r.try_recv().is_err());
}

#[test]
fn select_over_flavours_unwound_leaves_every_channel_clean() {
    let (zs, zr) = bounded::<u32>(0);
    let (as_, ar) = bounded::<u32>(1);
    let (ls, lr) = unbounded::<u32>();
    let (zr2, ar2, lr2) = (zr.clone(), ar.clone(), lr.clone());
    let p = parked(move || {
        let mut sel = Select::new();
        sel.recv(&zr2);
        sel.recv(&ar2);
        sel.recv(&lr2);
        let tick = gmp_chan::never::<std::time::Instant>();
        sel.recv(&tick);
        let oper = sel.select();
        panic!("nothing was sent, yet operation {} fired", oper.index());
    });
    drop(p);
    let res = zs.try_send(1);
    assert!(matches!(res, Err(TrySendError::Full(1))), "{res:?}");
    let (ra, rl) = (recv_on_thread(ar), recv_on_thread(lr));
    thread::sleep(Duration::from_millis(50));
    as_.send(2).unwrap();
    ls.send(3).unwrap();
    assert_eq!(ra.join("array receiver not woken"), Ok(2));
    assert_eq!(rl.join("list receiver not woken"), Ok(3));
    drop(zr);
}

#[test]
fn array_recv_chosen_then_unwound_passes_the_wakeup_on() {
    // The dead receiver is chosen by the send (its wake-up consumed) before it unwinds:
    // the wake-up must reach the live receiver queued behind it.
    let (s, r) = bounded::<u32>(1);
    let r2 = r.clone();
    let p = parked(move || {
        let _ = r2.recv();
    });
    let rx = recv_on_thread(r);
    thread::sleep(Duration::from_millis(50));
    s.send(9).unwrap();
    assert!(
        p.woken(),
        "the send should have chosen the first (parked) receiver"
    );
    drop(p);
    assert_eq!(rx.join("the live receiver was not woken"), Ok(9));
}

#[test]
fn zero_recv_with_timeout_unwound_then_try_send_finds_no_receiver() {
    let (s, r) = bounded::<u32>(0);
    let r2 = r.clone();
    let p = parked(move || {
        assert_eq!(
            r2.recv_timeout(Duration::from_secs(3600)),
            Err(RecvTimeoutError::Timeout)
        );
    });
    drop(p);
    assert!(matches!(s.try_send(1), Err(TrySendError::Full(1))));
    drop(r);
}

/// A `SelectedOperation` dropped by a panicking thread before it completes a
/// zero-capacity pairing cancels the pairing: the blocked sender keeps its message and
/// hands it to the next receiver (before the fix it waited forever for a receiver that
/// was gone).
#[test]
fn zero_selected_recv_dropped_by_a_panic_gives_the_sender_its_message_back() {
    let (s, r) = bounded::<u32>(0);
    let tx = live(move || s.send(5));
    thread::sleep(Duration::from_millis(50)); // the sender parks
    let r2 = r.clone();
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let mut sel = Select::new();
        sel.recv(&r2);
        let _oper = sel.select(); // paired with the blocked sender
        std::panic::resume_unwind(Box::new("gone before receiving"));
    }));
    assert!(res.is_err());
    assert_eq!(r.recv_timeout(PATIENCE), Ok(5), "the message was lost");
    assert_eq!(tx.join("sender"), Ok(()));
}

/// The same for a select send arm that chose a blocked receiver: the receiver is not
/// told it received anything, and takes the next message.
#[test]
fn zero_selected_send_dropped_by_a_panic_lets_the_receiver_wait_on() {
    let (s, r) = bounded::<u32>(0);
    let rx = recv_on_thread(r);
    thread::sleep(Duration::from_millis(50)); // the receiver parks
    let s2 = s.clone();
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let mut sel = Select::new();
        sel.send(&s2);
        let _oper = sel.select(); // paired with the blocked receiver
        std::panic::resume_unwind(Box::new("gone before sending"));
    }));
    assert!(res.is_err());
    s.send_timeout(6, PATIENCE)
        .expect("the receiver should still be waiting");
    assert_eq!(rx.join("receiver"), Ok(6));
}

/// An unbounded channel's message claimed by a `select` whose thread panics before
/// receiving it is dropped exactly once (by the claim's destructor), and every other
/// message is still received in order: the claim does not strand its block.
#[test]
fn list_selected_recv_dropped_by_a_panic_drops_its_message_once() {
    let drops = counter();
    let (s, r) = unbounded::<Counted>();
    // Enough to fill more than one block, so that the next block must still be reached.
    for i in 0..40 {
        s.send(Counted(drops.clone(), i)).unwrap();
    }
    let r2 = r.clone();
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let mut sel = Select::new();
        sel.recv(&r2);
        let _oper = sel.select(); // claims message 0
        std::panic::resume_unwind(Box::new("gone before receiving"));
    }));
    assert!(res.is_err());
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1,
        "the claimed message was not dropped once"
    );
    for i in 1..40 {
        assert_eq!(r.try_recv().map(|m| m.1), Ok(i));
    }
    assert_eq!(r.try_recv().map(|m| m.1), Err(TryRecvError::Empty));
    assert_eq!(drops.load(Ordering::SeqCst), 40);
}
