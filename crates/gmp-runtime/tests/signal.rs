//! `signal::notify`/`stop` (Go's `os/signal`). A test binary of its own: the signals are
//! sent to this whole process, and no other test runs in it.

use gmp_runtime::signal;
use gmp_runtime::Runtime;
use std::io::ErrorKind;
use std::time::Duration;

fn raise(sig: i32) {
    // SAFETY: sends a signal to this process; the tests catch it first.
    assert_eq!(unsafe { libc::kill(libc::getpid(), sig) }, 0);
}

/// One test function: the steps share the process-wide signal state and must not
/// interleave with another test's.
#[test]
fn notify_and_stop() {
    let rt = Runtime::builder().procs(2).build().unwrap();
    // SAFETY: the goroutine holds no thread-local state across its waits.
    unsafe {
        rt.block_on(|| {
            // SIGUSR1 sent to ourselves arrives on the channel (the receive parks).
            let a = signal::notify(&[libc::SIGUSR1]).unwrap();
            raise(libc::SIGUSR1);
            assert_eq!(a.recv_timeout(Duration::from_secs(10)), Ok(libc::SIGUSR1));

            // Two channels both receive it.
            let b = signal::notify(&[libc::SIGUSR1, libc::SIGUSR2]).unwrap();
            raise(libc::SIGUSR1);
            assert_eq!(a.recv_timeout(Duration::from_secs(10)), Ok(libc::SIGUSR1));
            assert_eq!(b.recv_timeout(Duration::from_secs(10)), Ok(libc::SIGUSR1));
            // Only b asked for SIGUSR2.
            raise(libc::SIGUSR2);
            assert_eq!(b.recv_timeout(Duration::from_secs(10)), Ok(libc::SIGUSR2));
            assert!(a.try_recv().is_err());

            // After stop(a), b still receives and a does not: the dispatcher delivers to
            // every channel in one pass, so once b has it, a would have it too.
            signal::stop(&a);
            raise(libc::SIGUSR1);
            assert_eq!(b.recv_timeout(Duration::from_secs(10)), Ok(libc::SIGUSR1));
            assert!(a.try_recv().is_err(), "a stopped channel received a signal");

            // After stop(b) too, none does, and the process is not killed by the signal.
            signal::stop(&b);
            raise(libc::SIGUSR1);
            gmp_runtime::sleep(Duration::from_millis(100));
            assert!(a.try_recv().is_err());
            assert!(b.try_recv().is_err());
        })
    }
}

#[test]
fn uncatchable_signals_are_clear_errors() {
    for sig in [libc::SIGKILL, libc::SIGSTOP] {
        let e = signal::notify(&[libc::SIGTERM, sig]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains("cannot be caught"), "{e}");
    }
    let e = signal::notify(&[0]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("not a signal"), "{e}");
    assert!(signal::notify(&[1000]).is_err());
}
