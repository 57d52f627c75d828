//! Basic coroutine behaviour: results, suspension, panics, drops, labels.

use gmp_core::{is_forced_unwind, Coroutine, Resume, Stack, StackPool};
use std::cell::{Cell, RefCell};
use std::rc::Rc;

fn stack() -> Stack {
    Stack::new(64 * 1024).expect("stack")
}

#[test]
fn returns_value_without_suspending() {
    let mut co = Coroutine::new(stack(), |_| 42u64);
    match co.resume() {
        Resume::Returned(v) => assert_eq!(v, 42),
        other => panic!("unexpected {other:?}"),
    }
    assert!(co.is_finished());
}

#[test]
fn suspends_and_resumes_in_order() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    let mut co = Coroutine::new(stack(), move |s| {
        for i in 0..5 {
            l.borrow_mut().push(i);
            s.suspend();
        }
        String::from("end")
    });
    for i in 0..5 {
        assert!(matches!(co.resume(), Resume::Suspended));
        assert_eq!(*log.borrow(), (0..=i).collect::<Vec<_>>());
    }
    match co.resume() {
        Resume::Returned(s) => assert_eq!(s, "end"),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn panic_payload_is_returned() {
    let mut co = Coroutine::new(stack(), |s| -> u32 {
        s.suspend();
        std::panic::panic_any(String::from("boom in coroutine"))
    });
    assert!(matches!(co.resume(), Resume::Suspended));
    match co.resume() {
        Resume::Panicked(p) => {
            assert_eq!(
                p.downcast_ref::<String>().map(String::as_str),
                Some("boom in coroutine")
            );
            assert!(!is_forced_unwind(&*p));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(co.is_finished());
}

#[test]
#[should_panic(expected = "already finished")]
fn resume_after_finish_panics() {
    let mut co = Coroutine::new(stack(), |_| ());
    let _ = co.resume();
    let _ = co.resume();
}

struct Counted(Rc<Cell<u32>>);
impl Drop for Counted {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

#[test]
fn drop_suspended_runs_destructors() {
    let drops = Rc::new(Cell::new(0));
    let reached_end = Rc::new(Cell::new(false));
    let (d, e) = (drops.clone(), reached_end.clone());
    let mut co = Coroutine::new(stack(), move |s| {
        let _a = Counted(d.clone());
        fn nested(s: &gmp_core::Suspender, d: Rc<Cell<u32>>) {
            let _b = Counted(d);
            s.suspend();
        }
        nested(s, d.clone());
        e.set(true);
    });
    assert!(matches!(co.resume(), Resume::Suspended));
    assert_eq!(drops.get(), 0);
    drop(co);
    // _a, _b, and the closure's captured Rc clone `d` (not a Counted) — two Counted drops.
    assert_eq!(drops.get(), 2);
    assert!(!reached_end.get());
}

#[test]
fn drop_fresh_drops_closure_without_running() {
    let drops = Rc::new(Cell::new(0));
    let ran = Rc::new(Cell::new(false));
    let c = Counted(drops.clone());
    let r = ran.clone();
    let co = Coroutine::new(stack(), move |_| {
        let _c = &c;
        r.set(true);
    });
    drop(co);
    assert_eq!(drops.get(), 1);
    assert!(!ran.get());
}

#[test]
fn forced_unwind_is_visible_and_rethrown() {
    let saw_forced = Rc::new(Cell::new(false));
    let drops = Rc::new(Cell::new(0));
    let (f, d) = (saw_forced.clone(), drops.clone());
    let mut co = Coroutine::new(stack(), move |s| {
        let _g = Counted(d);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| s.suspend()));
        if let Err(p) = r {
            f.set(is_forced_unwind(&*p));
            std::panic::resume_unwind(p);
        }
    });
    assert!(matches!(co.resume(), Resume::Suspended));
    let stack = co.into_stack().expect("stack back");
    assert!(saw_forced.get());
    assert_eq!(drops.get(), 1);
    // The stack is reusable.
    let mut co2 = Coroutine::new(stack, |_| 7);
    assert!(matches!(co2.resume(), Resume::Returned(7)));
}

#[test]
fn destructor_that_suspends_during_forced_unwind_does_not_abort() {
    struct SuspendOnDrop(*const gmp_core::Suspender, Rc<Cell<u32>>);
    impl Drop for SuspendOnDrop {
        fn drop(&mut self) {
            // SAFETY: the suspender outlives this guard (both on the coroutine's stack).
            unsafe { (*self.0).suspend() };
            self.1.set(self.1.get() + 1);
        }
    }
    let drops = Rc::new(Cell::new(0));
    let d = drops.clone();
    let mut co = Coroutine::new(stack(), move |s| {
        let _g = SuspendOnDrop(s as *const _, d);
        s.suspend();
    });
    assert!(matches!(co.resume(), Resume::Suspended));
    drop(co);
    assert_eq!(drops.get(), 1);
}

#[test]
fn deep_recursion_that_fits() {
    #[inline(never)]
    fn recurse(n: u64, buf: &mut [u8; 256]) -> u64 {
        let mut local = [0u8; 256];
        local[0] = n as u8;
        buf[1] = buf[1].wrapping_add(1);
        if n == 0 {
            return std::hint::black_box(local[0]) as u64;
        }
        n + recurse(n - 1, std::hint::black_box(&mut local))
    }
    // ~2000 frames of > 512 bytes: ~1 MiB of a 2 MiB stack.
    let mut co = Coroutine::new(Stack::new(2 << 20).unwrap(), |s| {
        let r = recurse(2000, &mut [0; 256]);
        s.suspend();
        r
    });
    assert!(matches!(co.resume(), Resume::Suspended));
    assert!(matches!(co.resume(), Resume::Returned(v) if v == 2000 * 2001 / 2));
}

#[test]
fn labels() {
    let mut co = Coroutine::new(stack(), |_| ());
    let auto = co.id();
    assert!(auto >= 1);
    co.set_label(77, Some("worker"));
    assert_eq!(co.id(), 77);
    assert_eq!(co.name(), Some("worker"));
    co.set_label(78, None);
    assert_eq!(co.name(), None);
    let co2 = Coroutine::new(stack(), |_| ());
    assert_ne!(co2.id(), auto);
}

#[test]
fn nested_coroutines() {
    let mut outer = Coroutine::new(stack(), |s| {
        let mut inner = Coroutine::new(Stack::new(64 * 1024).unwrap(), |s2| {
            s2.suspend();
            10
        });
        assert!(matches!(inner.resume(), Resume::Suspended));
        s.suspend();
        match inner.resume() {
            Resume::Returned(v) => v + 1,
            _ => unreachable!(),
        }
    });
    assert!(matches!(outer.resume(), Resume::Suspended));
    assert!(matches!(outer.resume(), Resume::Returned(11)));
}

#[test]
fn resume_on_another_thread() {
    struct SendCo(Coroutine<u64>);
    // SAFETY: the closure below holds no thread-bound state across its suspension.
    unsafe impl Send for SendCo {}
    let mut co = SendCo(Coroutine::new(stack(), |s| {
        let a = std::thread::current().id();
        s.suspend();
        let b = std::thread::current().id();
        u64::from(a != b)
    }));
    assert!(matches!(co.0.resume(), Resume::Suspended));
    let r = std::thread::spawn(move || {
        let mut co = co; // the whole wrapper, not the (non-Send) field
        match co.0.resume() {
            Resume::Returned(v) => v,
            _ => unreachable!(),
        }
    })
    .join()
    .unwrap();
    assert_eq!(r, 1);
}

#[test]
fn pool_reuses_stacks() {
    let pool = StackPool::with_max_cached(64 * 1024, 4);
    let s = pool.get().unwrap();
    let top = s.top();
    let mut co = Coroutine::new(s, |_| 1);
    assert!(matches!(co.resume(), Resume::Returned(1)));
    pool.put(co.into_stack().unwrap());
    assert_eq!(pool.cached(), 1);
    let s = pool.get().unwrap();
    assert_eq!(s.top(), top);
    assert_eq!(pool.cached(), 0);
}

#[test]
fn drop_suspended_while_owner_panics_still_unwinds_it() {
    let drops = Rc::new(Cell::new(0));
    let continued = Rc::new(Cell::new(false));
    let (d, c) = (drops.clone(), continued.clone());
    let mut co = Coroutine::new(stack(), move |s| {
        let _g = Counted(d);
        s.suspend();
        c.set(true); // must never run: the coroutine is being dropped
        loop {
            s.suspend();
        }
    });
    assert!(matches!(co.resume(), Resume::Suspended));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _owned = co;
        panic!("owner panics while holding a suspended coroutine");
    }));
    assert!(r.is_err());
    assert_eq!(drops.get(), 1);
    assert!(!continued.get());
}

#[test]
fn swallowed_forced_unwind_is_raised_again() {
    let caught = Rc::new(Cell::new(0));
    let c = caught.clone();
    let mut co = Coroutine::new(stack(), move |s| loop {
        // Misbehaving code: catches everything and suspends again.
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| s.suspend())).is_err() {
            c.set(c.get() + 1);
            if c.get() == 3 {
                // Finally lets it through.
                s.suspend();
            }
        }
    });
    assert!(matches!(co.resume(), Resume::Suspended));
    drop(co);
    assert_eq!(caught.get(), 3);
}
