//! The poller's waker: an eventfd in the epoll instance, level-triggered, that only a
//! blocking poll drains. Go: `netpollinit`'s `netpollEventFd`, `netpollBreak`, and
//! `netpoll`'s `delay != 0` test.
//!
//! Level-triggered so that a non-blocking poll cannot consume a wake-up meant for the
//! thread blocked in the poller. With an edge-triggered eventfd (mio's `Waker`), a
//! non-blocking `epoll_wait` that reaped the edge left the blocked thread asleep: the
//! kernel had woken it, but it found the ready list empty and went back to sleep in
//! `ep_poll`, and the wake-up (a timer due earlier, shutdown) was lost until its
//! timeout. The runtime polls without blocking while another M is blocked (its
//! `findRunnable`, step 5), so this is the waker's contract, not a corner.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// An eventfd registered in one epoll instance under a token.
pub(crate) struct Waker {
    fd: OwnedFd,
}

impl Waker {
    /// Creates the eventfd and adds it to `epfd` (level-triggered) under `token`.
    pub(crate) fn new(epfd: RawFd, token: u64) -> io::Result<Waker> {
        // SAFETY: eventfd takes no pointers; a non-negative result is a new descriptor
        // that nothing else owns.
        let raw = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh, open descriptor owned by nobody else (above).
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // EPOLLIN without EPOLLET: reported by every poll until `drain` reads it.
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: `epfd` is an open epoll descriptor (the caller's), `fd` is open and
        // `ev` is a valid event for the duration of the call.
        if unsafe { libc::epoll_ctl(epfd, libc::EPOLL_CTL_ADD, fd.as_raw_fd(), &mut ev) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Waker { fd })
    }

    /// Makes the eventfd readable (adds one to its counter). Go: `netpollBreak`.
    pub(crate) fn wake(&self) -> io::Result<()> {
        let one: u64 = 1;
        // SAFETY: writes the 8 bytes of `one`, which lives across the call, to our open
        // eventfd.
        let n = unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
        if n < 0 {
            let e = io::Error::last_os_error();
            // EAGAIN: the counter is at its maximum, so the eventfd is readable already.
            if e.kind() != io::ErrorKind::WouldBlock {
                return Err(e);
            }
        }
        Ok(())
    }

    /// Resets the counter, so that polls stop reporting the eventfd. Only a blocking
    /// poll calls it (Go reads `netpollEventFd` only when `delay != 0`).
    pub(crate) fn drain(&self) {
        let mut buf: u64 = 0;
        // SAFETY: reads at most 8 bytes into `buf`, which lives across the call, from
        // our open eventfd. EAGAIN (already drained) needs no handling: either way the
        // counter is zero now.
        let _ = unsafe { libc::read(self.fd.as_raw_fd(), (&mut buf as *mut u64).cast(), 8) };
    }
}
