//! Stacks and the stack pool.

use gmp_core::stack::{self, StackProtection, MAX_STACK_SIZE, MIN_STACK_SIZE};
use gmp_core::{Stack, StackPool};
use std::io::ErrorKind;

#[test]
fn geometry() {
    let s = Stack::new(100_000).unwrap();
    assert_eq!(s.size(), 102_400, "rounded up to whole pages");
    assert_eq!(s.top() as usize % 16, 0);
    assert_eq!(s.top() as usize - s.bottom() as usize, s.size());
    // The whole usable range is writable (and committed lazily).
    // SAFETY: [bottom, top) is the stack's usable memory, not in use.
    unsafe {
        std::ptr::write_bytes(s.bottom(), 0xA5, s.size());
        assert_eq!(*s.bottom(), 0xA5);
        assert_eq!(*s.top().sub(1), 0xA5);
    }
}

#[test]
fn bad_sizes_are_invalid_input() {
    for size in [0, 1, MIN_STACK_SIZE - 1, MAX_STACK_SIZE + 1, usize::MAX] {
        let e = Stack::new(size).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "size {size}");
        assert!(e.to_string().contains("stack size"), "{e}");
    }
    assert!(Stack::new(MIN_STACK_SIZE).is_ok());
    let pool = StackPool::new(10);
    assert_eq!(pool.get().unwrap_err().kind(), ErrorKind::InvalidInput);
}

#[test]
fn guarded_by_default() {
    // Other tests of this binary never lower the limit, and hold few stacks.
    assert!(stack::guarded_stack_limit() >= 1000);
    let s = Stack::new(64 * 1024).unwrap();
    assert_eq!(s.protection(), StackProtection::GuardPage);
}

#[test]
fn pool_caches_up_to_max() {
    let pool = StackPool::with_max_cached(32 * 1024, 2);
    assert_eq!(pool.stack_size(), 32 * 1024);
    let a = pool.get().unwrap();
    let b = pool.get().unwrap();
    let c = pool.get().unwrap();
    let tops = [a.top(), b.top()];
    pool.put(a);
    pool.put(b);
    pool.put(c); // beyond max_cached: freed
    assert_eq!(pool.cached(), 2);
    let x = pool.get().unwrap();
    let y = pool.get().unwrap();
    assert!(tops.contains(&x.top()) && tops.contains(&y.top()));
    assert_eq!(pool.cached(), 0);
}

#[test]
fn pool_beyond_hot_set_releases_memory_but_stays_usable() {
    let n = stack::HOT_CACHED + 8;
    let pool = StackPool::with_max_cached(16 * 1024, n);
    let stacks: Vec<Stack> = (0..n).map(|_| pool.get().unwrap()).collect();
    for s in &stacks {
        // SAFETY: the stack's usable memory, not in use.
        unsafe { std::ptr::write_bytes(s.bottom(), 1, s.size()) };
    }
    for s in stacks {
        pool.put(s);
    }
    assert_eq!(pool.cached(), n);
    // The stacks put last (beyond the hot set) were given back: they read as zeros.
    let mut zeroed = 0;
    let mut again = Vec::new();
    for _ in 0..n {
        let s = pool.get().unwrap();
        // SAFETY: reading the stack's own memory.
        if unsafe { *s.bottom() } == 0 {
            zeroed += 1;
        }
        again.push(s);
    }
    assert_eq!(zeroed, n - stack::HOT_CACHED);
}

#[test]
#[should_panic(expected = "StackPool::put: a stack of")]
fn pool_rejects_wrong_size() {
    let pool = StackPool::new(64 * 1024);
    pool.put(Stack::new(128 * 1024).unwrap());
}

#[test]
fn stacks_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Stack>();
    check::<StackPool>();
}

/// True if a system call writing one byte at `p` fails with `EFAULT` (a guard page or
/// guard region) rather than succeeding (ordinary memory). Never faults itself.
fn syscall_faults_at(p: *mut u8) -> bool {
    let zero = std::fs::File::open("/dev/zero").unwrap();
    // SAFETY: `read` into `p`: the kernel checks the access and returns EFAULT instead
    // of writing to a guard; where it succeeds, `p` is a stack's usable byte, ours.
    let r = unsafe { libc::read(std::os::fd::AsRawFd::as_raw_fd(&zero), p.cast(), 1) };
    if r == 1 {
        return false;
    }
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::EFAULT)
    );
    true
}

/// Every stack of a chunk has its guard, not only the first (the guard regions of a
/// fresh chunk go in as one batch where the kernel allows): three hundred stacks span
/// more than one 64 MiB chunk of default-size slots.
#[test]
fn every_stack_of_a_chunk_is_guarded() {
    let stacks: Vec<Stack> = (0..300)
        .map(|_| Stack::new(stack::DEFAULT_STACK_SIZE).unwrap())
        .collect();
    for (i, s) in stacks.iter().enumerate() {
        assert_eq!(s.protection(), StackProtection::GuardPage, "stack {i}");
        assert!(
            syscall_faults_at(s.bottom().wrapping_sub(1)),
            "stack {i}: the byte below its bottom is not guarded"
        );
        assert!(
            !syscall_faults_at(s.bottom()),
            "stack {i}: its bottom is guarded"
        );
    }
}

/// Threads that find no free slot at once each make a chunk, outside the chunk lock: no
/// slot is handed out twice, and every stack keeps its guard. Four threads start
/// together on a slot size nothing else uses (so each of them finds the free list
/// empty), three hundred stacks each (more than one chunk per thread).
#[test]
fn racing_threads_make_chunks_without_sharing_a_slot() {
    let size = stack::DEFAULT_STACK_SIZE + 3 * 4096;
    let start = std::sync::Arc::new(std::sync::Barrier::new(4));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let start = start.clone();
            std::thread::spawn(move || {
                start.wait();
                (0..300)
                    .map(|_| Stack::new(size).unwrap())
                    .collect::<Vec<Stack>>()
            })
        })
        .collect();
    let mut stacks: Vec<Stack> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    stacks.sort_by_key(|s| s.bottom() as usize);
    for w in stacks.windows(2) {
        assert!(
            (w[0].top() as usize) < w[1].bottom() as usize,
            "two stacks overlap: {:?} and {:?}",
            w[0],
            w[1]
        );
    }
    for (i, s) in stacks.iter().enumerate() {
        assert_eq!(s.size(), size);
        assert!(
            syscall_faults_at(s.bottom().wrapping_sub(1)),
            "stack {i}: unguarded"
        );
        // The top page is the stack's own: write to it and read the mark back.
        let top = s.top().wrapping_sub(1);
        // SAFETY: the last usable byte of a stack we own and nothing runs on.
        unsafe { top.write(i as u8) };
        // SAFETY: as above.
        assert_eq!(unsafe { top.read() }, i as u8);
    }
}
