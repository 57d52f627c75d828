//! A gmp-core `Coroutine` nested in a goroutine whose body blocks on a gmp primitive: the
//! block parks the *goroutine* from the nested coroutine's stack, the goroutine may resume
//! on another M, and the nested coroutine then switches back to its resumer on that M
//! (issue 10, finding 10). The resumer's per-thread bookkeeping (`overflow::leave`) runs on
//! the new thread; everything must keep working, and the values must arrive intact.

use gmp_core::{Coroutine, Resume, Stack};
use gmp_runtime::chan::bounded;
use gmp_runtime::Runtime;

fn thread_id() -> u64 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() as u64 }
}

#[test]
fn nested_coroutine_parks_its_goroutine_and_resumes_on_another_thread() {
    // First on guard-region chunk stacks (Linux 6.13+, else as the next), then on
    // stacks with mappings of their own, then on userfaultfd chunk stacks (the guarded
    // budget set to 0: the path an older kernel takes beyond 16,382 stacks), whose pages
    // the handler thread fills while goroutines migrate.
    scenario();
    gmp_core::stack::set_guard_regions(false);
    scenario();
    gmp_core::stack::set_guarded_stack_limit(0);
    scenario();
}

fn scenario() {
    const N: u64 = 200;
    let rt = Runtime::builder().procs(4).build().unwrap();
    // SAFETY: no thread-local state is held across suspension points (thread ids are
    // read afresh after each).
    let (sum, moved) = unsafe {
        rt.block_on(|| {
            let (tx, rx) = bounded::<u64>(0);
            let handles: Vec<_> = (0..N)
                .map(|i| {
                    let rx = rx.clone();
                    // SAFETY: as above.
                    gmp_runtime::spawn(move || {
                        let mut co = Coroutine::new(Stack::new(64 * 1024).unwrap(), move |s| {
                            let before = thread_id();
                            // Blocks: parks the goroutine from this nested stack.
                            let v = rx.recv().unwrap();
                            s.suspend();
                            (v + i, before != thread_id())
                        });
                        let first = co.resume();
                        assert!(matches!(first, Resume::Suspended));
                        let started_on = thread_id();
                        gmp_runtime::yield_now();
                        match co.resume() {
                            Resume::Returned((v, moved)) => (v, moved || started_on != thread_id()),
                            _ => panic!("the nested coroutine did not finish"),
                        }
                    })
                })
                .collect();
            for k in 0..N {
                tx.send(k * 1000).unwrap();
            }
            let mut sum = 0;
            let mut moved = 0;
            for h in handles {
                let (v, m) = h.join().unwrap();
                sum += v;
                moved += m as u64;
            }
            (sum, moved)
        })
    };
    let expected: u64 = (0..N).map(|k| k * 1000).sum::<u64>() + (0..N).sum::<u64>();
    assert_eq!(sum, expected);
    println!("{moved} of {N} goroutines resumed their nested coroutine on another thread");
}
