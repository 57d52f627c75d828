//! A goroutine parked in a channel operation when its runtime shuts down is unwound
//! (gmp-core's forced unwind) and its stack freed. It must leave no registration behind
//! (ARCHITECTURE.md: "a registration never outlives the stack it points into"): afterwards
//! plain threads use the same channels exactly as if the dead waiter had never existed —
//! no read or write into its dead stack, no wake-up swallowed by its stale entry, its
//! offered message dropped once and never delivered.
//!
//! Each test parks one goroutine (per flavour, send and receive side, with and without a
//! timeout, and in a `select` over several channels), drops the runtime, then checks the
//! channel from this thread. Bounds are generous (`PATIENCE`): a bug fails a test instead
//! of hanging it.

use gmp_runtime::chan::{
    bounded, never, unbounded, Receiver, RecvError, RecvTimeoutError, Select, Sender, TryRecvError,
    TrySendError,
};
use gmp_runtime::Runtime;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(10);

/// Sets its flag when dropped: proof that the goroutine's stack was unwound.
struct Unwound(Arc<AtomicBool>);

impl Drop for Unwound {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Runs `f` in a goroutine of a fresh runtime until it parks, then drops the runtime
/// (which unwinds the goroutine) and checks that it was unwound.
fn park_then_shut_down(f: impl FnOnce() + Send + 'static) {
    let rt = Runtime::builder().procs(1).build().unwrap();
    let started = Arc::new(AtomicBool::new(false));
    let unwound = Arc::new(AtomicBool::new(false));
    let (st, uw) = (started.clone(), unwound.clone());
    // SAFETY: the goroutine holds no thread-local state across suspension points.
    let _h = unsafe {
        rt.spawn(move || -> () {
            let _flag = Unwound(uw);
            st.store(true, Ordering::SeqCst);
            f();
            panic!("the operation under test returned instead of blocking");
        })
    };
    while !started.load(Ordering::SeqCst) {
        thread::sleep(Duration::from_millis(1));
    }
    // Generous time to get from the flag into the park.
    thread::sleep(Duration::from_millis(50));
    drop(rt);
    assert!(
        unwound.load(Ordering::SeqCst),
        "the goroutine was not unwound at shutdown"
    );
}

/// Counts drops, to check a message is dropped exactly once.
#[derive(Debug)]
struct Counted(Arc<AtomicUsize>, u32);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

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
fn zero_recv_unwound_then_try_send_and_send_see_no_receiver() {
    let (s, r) = bounded::<u64>(0);
    let r2 = r.clone();
    park_then_shut_down(move || {
        let _ = r2.recv();
    });
    // Before the fix, this paired with the dead receiver and wrote into its freed stack.
    assert!(matches!(s.try_send(1), Err(TrySendError::Full(1))));
    // A live receiver then gets a blocking send's message.
    let rx = recv_on_thread(r);
    s.send_timeout(2, PATIENCE).unwrap();
    assert_eq!(rx.join("live receiver"), Ok(2));
}

#[test]
fn zero_recv_timeout_unwound_then_try_send_sees_no_receiver() {
    let (s, r) = bounded::<u64>(0);
    let r2 = r.clone();
    park_then_shut_down(move || {
        let _ = r2.recv_timeout(Duration::from_secs(3600));
    });
    assert!(matches!(s.try_send(1), Err(TrySendError::Full(1))));
    drop(r);
}

#[test]
fn zero_send_unwound_then_try_recv_sees_no_sender_and_message_dropped_once() {
    let drops = Arc::new(AtomicUsize::new(0));
    let (s, r) = bounded::<Counted>(0);
    let (s2, d) = (s.clone(), drops.clone());
    park_then_shut_down(move || {
        let _ = s2.send(Counted(d, 7));
    });
    // Before the fix, this read the message out of the dead sender's stack.
    assert!(matches!(r.try_recv(), Err(TryRecvError::Empty)));
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1,
        "offered message not dropped once"
    );
    // The channel still works between live parties.
    let rx = recv_on_thread(r);
    s.send_timeout(Counted(drops.clone(), 8), PATIENCE).unwrap();
    assert_eq!(rx.join("live receiver").map(|c| c.1), Ok(8));
}

fn buffered_recv_unwound(s: Sender<u64>, r: Receiver<u64>) {
    let r2 = r.clone();
    park_then_shut_down(move || {
        let _ = r2.recv();
    });
    let rx = recv_on_thread(r);
    // Let the live receiver park behind the dead one's entry (if it were still there).
    thread::sleep(Duration::from_millis(50));
    s.send(5).unwrap();
    // Before the fix, the dead entry took the only notification: this timed out with the
    // message in the buffer.
    assert_eq!(rx.join("live receiver not woken"), Ok(5));
}

#[test]
fn array_recv_unwound_then_live_receiver_gets_the_message() {
    let (s, r) = bounded(2);
    buffered_recv_unwound(s, r);
}

#[test]
fn list_recv_unwound_then_live_receiver_gets_the_message() {
    let (s, r) = unbounded();
    buffered_recv_unwound(s, r);
}

#[test]
fn array_send_unwound_then_live_sender_gets_the_slot() {
    let drops = Arc::new(AtomicUsize::new(0));
    let (s, r) = bounded::<Counted>(1);
    s.send(Counted(drops.clone(), 0)).unwrap();
    let (s2, d) = (s.clone(), drops.clone());
    park_then_shut_down(move || {
        let _ = s2.send(Counted(d, 1));
    });
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1,
        "offered message not dropped once"
    );
    let (s3, d) = (s.clone(), drops.clone());
    let tx = live(move || s3.send(Counted(d, 2)).is_ok());
    thread::sleep(Duration::from_millis(50));
    assert_eq!(r.recv().unwrap().1, 0);
    assert!(tx.join("live sender"));
    assert_eq!(r.recv_timeout(PATIENCE).unwrap().1, 2);
    assert!(r.try_recv().is_err());
}

#[test]
fn select_unwound_leaves_no_entry_on_any_channel() {
    let (zs, zr) = bounded::<u64>(0);
    let (zs_out, zr_out) = bounded::<u64>(0);
    let (as_, ar) = bounded::<u64>(1);
    let (ls, lr) = unbounded::<u64>();
    let (zr2, zs_out2, ar2, lr2) = (zr.clone(), zs_out.clone(), ar.clone(), lr.clone());
    park_then_shut_down(move || {
        let nothing = never::<std::time::Instant>();
        let mut sel = Select::new();
        sel.recv(&zr2);
        sel.send(&zs_out2);
        sel.recv(&ar2);
        sel.recv(&lr2);
        sel.recv(&nothing);
        let oper = sel.select();
        panic!("operation {} fired with nothing sent", oper.index());
    });
    assert!(matches!(zs.try_send(1), Err(TrySendError::Full(1))));
    assert!(matches!(zr_out.try_recv(), Err(TryRecvError::Empty)));
    let (ra, rl) = (recv_on_thread(ar), recv_on_thread(lr));
    thread::sleep(Duration::from_millis(50));
    as_.send(2).unwrap();
    ls.send(3).unwrap();
    assert_eq!(ra.join("array receiver not woken"), Ok(2));
    assert_eq!(rl.join("list receiver not woken"), Ok(3));
    drop((zr, zs_out));
}

#[test]
fn select_timeout_unwound_leaves_no_entry() {
    let (zs, zr) = bounded::<u64>(0);
    let (as_, ar) = bounded::<u64>(1);
    let (zr2, ar2) = (zr.clone(), ar.clone());
    park_then_shut_down(move || {
        let mut sel = Select::new();
        sel.recv(&zr2);
        sel.recv(&ar2);
        let _ = sel.select_timeout(Duration::from_secs(3600));
    });
    assert!(matches!(zs.try_send(1), Err(TrySendError::Full(1))));
    let ra = recv_on_thread(ar);
    thread::sleep(Duration::from_millis(50));
    as_.send(2).unwrap();
    assert_eq!(ra.join("array receiver not woken"), Ok(2));
    assert_eq!(
        zr.recv_timeout(Duration::from_millis(1)),
        Err(RecvTimeoutError::Timeout)
    );
}

#[test]
fn ready_unwound_leaves_no_observer() {
    let (s, r) = bounded::<u64>(1);
    let r2 = r.clone();
    park_then_shut_down(move || {
        let mut sel = Select::new();
        sel.recv(&r2);
        let _ = sel.ready();
    });
    // The channel works as before; no observer of the dead goroutine remains to be
    // notified (a stale one would be notified, harmlessly, and dropped: this checks the
    // channel is unaffected).
    s.send(1).unwrap();
    assert_eq!(r.recv_timeout(PATIENCE), Ok(1));
}
