//! Stackful coroutines: a closure running on its own [`Stack`], which can suspend itself and
//! be resumed later, possibly from another thread.
//!
//! # Layout: nothing on the heap
//!
//! Creating a coroutine writes three things at the top of its stack and allocates nothing:
//!
//! ```text
//!   stack.top()
//!   | Header   switch slots (both saved stack pointers), the overflow-report info
//!   |          (label, size, bottom), the closure and result pointers, the unwind flag
//!   | F        the closure, moved here by `new`
//!   | initial  the hand-built context the first resume switches to (arch docs)
//!   |   ...    coroutine_main<F, R>: catch_unwind(|| f(&suspender)); the Suspender lives
//!   |          in this frame; then the user's frames
//!   v
//!   stack.bottom()
//! ```
//!
//! The [`Coroutine`] value itself holds the stack, a pointer to the header, and its state,
//! so it can be moved freely while the coroutine is suspended: everything the running
//! coroutine refers to is on its own stack. A parked coroutine whose frames are small
//! touches one page.
//!
//! # Life cycle
//!
//! `new` → *fresh* → `resume` → runs until `suspend` (*suspended*, `Resume::Suspended`) or
//! until the closure returns or panics (*finished*, `Resume::Returned` / `Resume::Panicked`).
//! The closure runs inside `catch_unwind` at the root of the coroutine stack: a panic never
//! unwinds across a switch. The result travels back by pointer: the root frame stores it
//! and switches out for the last time; the resumer moves it out of the dead stack.
//!
//! # Dropping
//!
//! - a fresh coroutine: the closure is dropped in place, never run;
//! - a suspended one: it is resumed with its *forced-unwind* flag set, which makes the
//!   pending `suspend()` panic with a private payload (raised with `resume_unwind`, so no
//!   panic message is printed). The stack unwinds, destructors run, the root catches it.
//!   While the flag is set `suspend()` never switches out: it panics again, or, called
//!   from a destructor during that unwinding, returns at once. Code that catches panics
//!   itself must rethrow this one: see [`is_forced_unwind`].
//! - a finished one: nothing left to do.
//!
//! # Threads
//!
//! `Coroutine` is `!Send`: the closure need not be `Send`, and while suspended its stack may
//! hold `Rc`s, `RefCell` borrows, `MutexGuard`s or references into thread-locals, all of
//! which would silently cross threads with it. A runtime that migrates coroutines between
//! threads (gmp-runtime) requires `Send` closures and wraps the coroutine in an
//! `unsafe impl Send` type, taking responsibility for thread-local state held across
//! suspension points (see why `spawn` is `unsafe` in the design). gmp-core itself tolerates
//! migration: nothing in it caches thread-local state across a switch on the coroutine's
//! side.

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::mem::{self, ManuallyDrop};
use std::panic::{self, AssertUnwindSafe};
use std::ptr::{self, addr_of, addr_of_mut, NonNull};
// A process-wide id counter: a `const`-initialised static, which loom's atomics cannot be;
// it orders nothing and no model needs to see it.
use std::sync::atomic::{AtomicU64, Ordering};

use crate::arch::{self, SwitchSlots};
use crate::overflow::{self, StackInfo};
use crate::sanitizer::Fiber;
use crate::stack::Stack;

/// `!Send`, `!Sync` (see the module docs); produces an `R` without owning one.
type NotSendProduces<R> = PhantomData<(*mut (), fn() -> R)>;

/// What a `Box<dyn Any + Send>` panic payload is called here.
type Payload = Box<dyn Any + Send + 'static>;

/// Value passed by a coroutine that suspends.
const OUTCOME_SUSPENDED: usize = 0;
/// Value passed by a coroutine that finished; the result is behind `Header::result`.
const OUTCOME_DONE: usize = 1;

/// `Header::forced_unwind` states.
const UNWIND_NONE: u8 = 0;
const UNWIND_REQUESTED: u8 = 1;
const UNWIND_RAISED: u8 = 2;

/// Ids for coroutines that were not given one with [`Coroutine::set_label`].
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The per-coroutine record at the top of its stack. Accessed only through raw pointers,
/// by whichever side is running (the resumer while the coroutine is suspended, the
/// coroutine while it runs): never both at once.
#[repr(C, align(16))]
struct Header {
    slots: SwitchSlots,
    info: StackInfo,
    /// The closure, until the coroutine starts (or is dropped fresh).
    closure: *mut u8,
    /// Drops the closure in place (for a coroutine dropped before it started). Here
    /// rather than in [`Coroutine`], which every parked goroutine's G carries: the
    /// stack's top page is touched anyway.
    drop_closure: unsafe fn(*mut u8),
    /// Where the root frame left its `Result<R, Payload>` (valid after OUTCOME_DONE).
    result: *mut u8,
    /// `UNWIND_NONE`, or `UNWIND_REQUESTED` by `Drop` (or `into_stack`) before resuming a
    /// suspended coroutine for the last time, then `UNWIND_RAISED` once `suspend` raised
    /// the forced-unwind panic.
    forced_unwind: u8,
    /// Sanitizer/Valgrind bookkeeping of the switches (empty in a normal build).
    san: Fiber,
    /// The coroutine's own stack, kept on it rather than in [`Coroutine`] (which every
    /// goroutine's G carries; the top page is touched at every switch anyway), with
    /// `state`: a `Coroutine` is one pointer, and a G 32 bytes smaller. Moved out by
    /// `Drop` or `into_stack` before the stack is freed or reused.
    stack: ManuallyDrop<Stack>,
    /// Touched only by the resumer side: `resume`, `Drop`, the accessors.
    state: State,
}

/// The payload of the forced unwind that drops a suspended coroutine. Private: only
/// [`is_forced_unwind`] can recognise it.
struct ForcedUnwind(());

/// True if a panic payload is the forced unwind gmp-core uses to drop a suspended
/// coroutine.
///
/// Code running inside a coroutine that catches panics (a runtime wrapping a goroutine's
/// body in `catch_unwind`, say) must pass this payload on with
/// `std::panic::resume_unwind`, so that the unwinding reaches the coroutine's root:
///
/// ```
/// use gmp_core::{is_forced_unwind, Coroutine, Stack};
///
/// let mut co = Coroutine::new(Stack::new(64 * 1024)?, |s| {
///     let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| s.suspend()));
///     if let Err(p) = r {
///         if is_forced_unwind(&*p) {
///             std::panic::resume_unwind(p);
///         }
///     }
/// });
/// co.resume();
/// drop(co); // unwinds through the catch_unwind above
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn is_forced_unwind(payload: &(dyn Any + Send)) -> bool {
    payload.is::<ForcedUnwind>()
}

/// Sets the calling thread's floating-point control state (MXCSR and the x87 control
/// word) to the ABI's initial values, the state
/// [`Coroutine::resume_with_initial_fp`] expects of its caller. A new thread inherits
/// its creator's state, so a scheduler thread calls this once before its loop.
///
/// ```
/// gmp_core::coroutine::set_initial_fp_control();
/// ```
pub fn set_initial_fp_control() {
    arch::set_initial_fp_control();
}

/// What [`Coroutine::resume`] reports.
#[derive(Debug)]
pub enum Resume<R> {
    /// The coroutine called [`Suspender::suspend`]; resume it again to continue.
    Suspended,
    /// The closure returned this value; the coroutine is finished.
    Returned(R),
    /// The closure panicked with this payload (caught at the coroutine's root); the
    /// coroutine is finished.
    Panicked(Payload),
}

// A coroutine is one pointer, and `Option<Coroutine>` too (a goroutine's G holds one).
const _: () = assert!(mem::size_of::<Option<Coroutine<()>>>() == mem::size_of::<usize>());

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Fresh,
    Suspended,
    Finished,
}

/// A stackful coroutine: a closure with its own stack. See the module docs.
///
/// ```
/// use gmp_core::{Coroutine, Resume, Stack};
///
/// let mut co = Coroutine::new(Stack::new(64 * 1024)?, |s| {
///     for _ in 0..3 {
///         s.suspend();
///     }
///     "done"
/// });
/// let mut suspensions = 0;
/// let v = loop {
///     match co.resume() {
///         Resume::Suspended => suspensions += 1,
///         Resume::Returned(v) => break v,
///         Resume::Panicked(p) => std::panic::resume_unwind(p),
///     }
/// };
/// assert_eq!((suspensions, v), (3, "done"));
/// let stack = co.into_stack(); // reuse it for the next coroutine
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Coroutine<R> {
    /// The header at the top of the coroutine's stack, which holds the stack itself
    /// (`Header::stack`), its state and its label.
    header: NonNull<Header>,
    // The label's name is owned through the header (`info.name_ptr`/`name_len`, a
    // leaked `Box<str>`), not by a field here: see `Header::drop_closure`.
    _marker: NotSendProduces<R>,
}

impl<R> Coroutine<R> {
    /// Creates a coroutine that will run `f` on `stack` when first resumed. Allocates
    /// nothing: `f` is moved to the top of the stack.
    ///
    /// The coroutine starts with the ABI's initial floating-point control state (MXCSR
    /// `0x1F80`, x87 control word `0x037F`), not its resumer's; from then on each side keeps
    /// its own across switches.
    ///
    /// # Panics
    ///
    /// If `f` is too big to leave at least half of the stack free.
    pub fn new<F>(stack: Stack, f: F) -> Coroutine<R>
    where
        F: FnOnce(&Suspender) -> R + 'static,
        R: 'static,
    {
        // SAFETY: `F` and `R` are 'static: they borrow nothing that could die first.
        unsafe { Self::new_unchecked(stack, f) }
    }

    /// Like [`new`](Self::new), without the `'static` bounds.
    ///
    /// # Safety
    ///
    /// Everything `f` (and `R`) borrows must outlive the coroutine's run *and* its drop:
    /// dropping a suspended coroutine runs the destructors on its stack, which may use
    /// those borrows.
    pub unsafe fn new_unchecked<F>(stack: Stack, f: F) -> Coroutine<R>
    where
        F: FnOnce(&Suspender) -> R,
    {
        let top = stack.top() as usize;
        let header_addr = (top - mem::size_of::<Header>()) & !15;
        let align = mem::align_of::<F>().max(16);
        let closure_addr = header_addr
            .checked_sub(mem::size_of::<F>())
            .map(|a| a & !(align - 1));
        let closure_addr = match closure_addr {
            Some(a) if top - a <= stack.size() / 2 => a,
            _ => panic!(
                "Coroutine::new: the closure ({} bytes, align {}) does not fit in half of a {}-byte stack; \
                 box it or use a bigger stack",
                mem::size_of::<F>(),
                mem::align_of::<F>(),
                stack.size()
            ),
        };
        let header = header_addr as *mut Header;
        let closure = closure_addr as *mut F;
        let (size, bottom) = (stack.size(), stack.bottom() as usize);
        let canary = stack.protection() == crate::stack::StackProtection::Canary;
        // SAFETY: both addresses lie in the top half of the stack's usable memory, which
        // we own (we hold the Stack) and nothing else uses; they are suitably aligned
        // and do not overlap (closure_addr + size_of F <= header_addr). The initial frame
        // goes right below the closure, 16-aligned (closure_addr is), inside the stack.
        unsafe {
            closure.write(f);
            header.write(Header {
                slots: SwitchSlots {
                    parent_sp: 0,
                    coroutine_sp: 0,
                },
                info: StackInfo {
                    // Relaxed: a unique number, no ordering with anything.
                    id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                    name_ptr: ptr::null(),
                    name_len: 0,
                    size,
                    bottom,
                    canary,
                },
                closure: closure.cast(),
                drop_closure: drop_closure::<F>,
                result: ptr::null_mut(),
                forced_unwind: UNWIND_NONE,
                san: Fiber::new(bottom, size),
                stack: ManuallyDrop::new(stack),
                state: State::Fresh,
            });
            let sp = arch::init_frame(closure_addr as *mut u8, header_addr, coroutine_main::<F, R>);
            (*header).slots.coroutine_sp = sp;
            // The userfaultfd handler reports an overflow of this stack with this label.
            (*header).stack.set_owner(addr_of!((*header).info));
        }
        Coroutine {
            // SAFETY: derived from the stack's top, never null.
            header: unsafe { NonNull::new_unchecked(header) },
            _marker: PhantomData,
        }
    }

    /// Sets the id and name that a stack-overflow report of this coroutine prints:
    /// `goroutine <id> ('<name>') has overflowed its stack (<size> bytes)`, with
    /// `<unnamed>` for `None`. Without a label the id is a per-process creation counter.
    pub fn set_label(&mut self, id: u64, name: Option<&str>) {
        self.free_name();
        let (p, len) = match name {
            Some(n) => {
                let len = n.len();
                (Box::into_raw(Box::<str>::from(n)) as *const u8, len)
            }
            None => (ptr::null(), 0),
        };
        let h = self.header.as_ptr();
        // SAFETY: the coroutine is not running (we hold `&mut self`), so the resumer side
        // owns the header. The name's bytes are leaked here and freed by the next
        // `set_label` or the coroutine's end (`free_name`).
        unsafe {
            (*h).info.id = id;
            (*h).info.name_ptr = p;
            (*h).info.name_len = len;
        }
    }

    /// Frees the name `set_label` leaked into the header, and forgets it.
    fn free_name(&mut self) {
        let h = self.header.as_ptr();
        // SAFETY: the coroutine is not running (`&mut self`): the resumer side owns the
        // header. A non-null `name_ptr` was made by `set_label` from a `Box<str>` of
        // `name_len` bytes and is freed once: it is reset to null here.
        unsafe {
            let (p, len) = ((*h).info.name_ptr, (*h).info.name_len);
            if !p.is_null() {
                (*h).info.name_ptr = ptr::null();
                (*h).info.name_len = 0;
                drop(Box::from_raw(
                    ptr::slice_from_raw_parts_mut(p.cast_mut(), len) as *mut str,
                ));
            }
        }
    }

    /// The id printed in an overflow report (see [`set_label`](Self::set_label)).
    pub fn id(&self) -> u64 {
        // SAFETY: the header is valid while `self` is, and not being written (`&self`).
        unsafe { (*self.header.as_ptr()).info.id }
    }

    /// The name set with [`set_label`](Self::set_label).
    pub fn name(&self) -> Option<&str> {
        let h = self.header.as_ptr();
        // SAFETY: the header is valid while `self` is; its name, when set, is the UTF-8
        // of a `Box<str>` that lives until `set_label` or the end of the coroutine, both
        // of which need `&mut self`, so it outlives the returned borrow of `self`.
        unsafe {
            let (p, len) = ((*h).info.name_ptr, (*h).info.name_len);
            (!p.is_null())
                .then(|| std::str::from_utf8_unchecked(std::slice::from_raw_parts(p, len)))
        }
    }

    /// Runs the coroutine until it suspends, returns or panics.
    ///
    /// # Panics
    ///
    /// If the coroutine has already finished. (Aborts the process, after printing the
    /// overflow message, if the coroutine's canary shows its stack overflowed.)
    #[inline]
    pub fn resume(&mut self) -> Resume<R> {
        self.resume_inner::<false>()
    }

    /// As [`resume`](Self::resume), for a resumer that runs with the ABI's initial
    /// floating-point control state (MXCSR `0x1F80`, x87 control word `0x037F`: what
    /// Rust code assumes, and what a scheduler loop sets once): the switch in does not
    /// save the resumer's MXCSR and control word, and the switch back sets both to
    /// those initial values. The coroutine's own control state is preserved across
    /// its suspensions exactly as by `resume`.
    ///
    /// Saving MXCSR (`stmxcsr`) is the slowest instruction of a switch on some CPUs
    /// (about 4 ns of an 11 ns round trip on AMD Zen); a scheduler that resumes
    /// coroutines in a loop pays it for nothing, since its own state never changes.
    /// A resumer that had changed its control state gets the initial one back: a
    /// change of state (no undefined behaviour), which is why this is a separate call.
    ///
    /// ```
    /// use gmp_core::coroutine::{Coroutine, Resume};
    /// use gmp_core::stack::Stack;
    ///
    /// let mut co = Coroutine::new(Stack::new(64 * 1024)?, |s| {
    ///     s.suspend();
    ///     7
    /// });
    /// assert!(matches!(co.resume_with_initial_fp(), Resume::Suspended));
    /// assert!(matches!(co.resume_with_initial_fp(), Resume::Returned(7)));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Panics
    ///
    /// As [`resume`](Self::resume).
    #[inline]
    pub fn resume_with_initial_fp(&mut self) -> Resume<R> {
        self.resume_inner::<true>()
    }

    /// The coroutine's state (in its header).
    #[inline(always)]
    fn state(&self) -> State {
        // SAFETY: the header is valid while `self` is; the state is only touched by the
        // resumer side, which `&self` is (the coroutine is not running).
        unsafe { (*self.header.as_ptr()).state }
    }

    #[inline(always)]
    fn set_state(&mut self, state: State) {
        // SAFETY: as in `state`, with `&mut self`.
        unsafe { (*self.header.as_ptr()).state = state }
    }

    /// Moves the stack out of the header: the last use of the header, which lives on
    /// that stack.
    ///
    /// # Safety
    ///
    /// Called once, by `Drop` or `into_stack`, after the coroutine finished and its
    /// name was freed; the header is not used afterwards.
    unsafe fn take_stack(&mut self) -> Stack {
        // SAFETY: the caller's contract: the descriptor is read out exactly once, and
        // nothing reads the header after it.
        unsafe { ManuallyDrop::take(&mut (*self.header.as_ptr()).stack) }
    }

    #[inline(always)]
    fn resume_inner<const INITIAL_FP: bool>(&mut self) -> Resume<R> {
        if self.state() == State::Finished {
            already_finished();
        }
        self.set_state(State::Suspended);
        if self.switch_in::<INITIAL_FP>() == OUTCOME_SUSPENDED {
            return Resume::Suspended;
        }
        self.set_state(State::Finished);
        match self.take_result() {
            Ok(v) => Resume::Returned(v),
            Err(p) => Resume::Panicked(p),
        }
    }

    /// True once the closure has returned or panicked.
    pub fn is_finished(&self) -> bool {
        self.state() == State::Finished
    }

    /// True while the coroutine has started and not finished.
    pub fn is_suspended(&self) -> bool {
        self.state() == State::Suspended
    }

    /// Finishes the coroutine as `Drop` does (dropping an unstarted closure, or unwinding a
    /// suspended coroutine) and returns its stack for reuse, e.g. by a
    /// [`StackPool`](crate::stack::StackPool). Always `Some` in this implementation: every
    /// path leaves the stack reusable; the `Option` leaves room for stacks that a future
    /// check finds unfit for reuse.
    pub fn into_stack(mut self) -> Option<Stack> {
        self.finish_for_drop();
        self.free_name();
        // SAFETY: finished, name freed; `self` is forgotten right after, so the stack is
        // taken exactly once and the header not used again.
        let stack = unsafe { self.take_stack() };
        mem::forget(self);
        Some(stack)
    }

    /// The usable size of the coroutine's stack.
    pub fn stack_size(&self) -> usize {
        self.stack().size()
    }

    /// The coroutine's stack (for inspection: its bounds and protection).
    pub fn stack(&self) -> &Stack {
        // SAFETY: the header (and the descriptor in it) is valid while `self` is, and
        // only `Drop`/`into_stack` (which need `self` by value or `&mut`) move it out.
        unsafe { &(*self.header.as_ptr()).stack }
    }

    /// Switches into the coroutine; returns the outcome it switched out with.
    /// With `INITIAL_FP`, the resumer's FP control state is not saved: see
    /// [`resume_with_initial_fp`](Self::resume_with_initial_fp).
    #[inline(always)]
    fn switch_in<const INITIAL_FP: bool>(&mut self) -> usize {
        let h = self.header.as_ptr();
        // SAFETY: `h` is this coroutine's header. The state machine guarantees the context
        // in `coroutine_sp` is fresh or suspended and not resumed since; `&mut self`
        // gives us exclusive access; the stack stays mapped (we own it) until the
        // coroutine switches back.
        unsafe {
            let info = addr_of!((*h).info);
            let prev = overflow::enter(info);
            let san = Fiber::before_resume(addr_of_mut!((*h).san));
            let v = if INITIAL_FP {
                arch::resume_switch_initial_fp(addr_of_mut!((*h).slots))
            } else {
                arch::resume_switch(addr_of_mut!((*h).slots))
            };
            Fiber::after_resume(san);
            overflow::leave(prev);
            if (*h).info.canary {
                overflow::check_canary(info);
            }
            v
        }
    }

    fn take_result(&mut self) -> Result<R, Payload> {
        // SAFETY: after OUTCOME_DONE the root frame left an initialised Result<R, Payload>
        // at `result` and will never touch it again (the coroutine is finished); we
        // move it out exactly once (the state is now Finished).
        unsafe { ptr::read((*self.header.as_ptr()).result.cast::<Result<R, Payload>>()) }
    }

    /// Brings the coroutine to `Finished` without running the rest of its closure.
    fn finish_for_drop(&mut self) {
        match self.state() {
            State::Finished => {}
            State::Fresh => {
                self.set_state(State::Finished);
                // SAFETY: a fresh coroutine's closure is initialised at `closure` and was
                // never moved out; the state change makes this the only drop.
                unsafe {
                    let h = self.header.as_ptr();
                    ((*h).drop_closure)((*h).closure)
                };
            }
            State::Suspended => {
                // SAFETY: the coroutine is suspended: the resumer side owns the header.
                unsafe { (*self.header.as_ptr()).forced_unwind = UNWIND_REQUESTED };
                // While the flag is set, `suspend` never switches out, so one resume
                // runs the coroutine to its end.
                while self.switch_in::<false>() == OUTCOME_SUSPENDED {}
                self.set_state(State::Finished);
                // The forced-unwind payload, a value returned by code that caught the
                // unwinding, or another panic: all are dropped here.
                drop(self.take_result());
            }
        }
        // SAFETY: the coroutine is finished (or never started) and this runs once (from
        // `drop` or `into_stack`).
        unsafe { Fiber::destroy(addr_of_mut!((*self.header.as_ptr()).san)) };
    }
}

impl<R> Drop for Coroutine<R> {
    fn drop(&mut self) {
        self.finish_for_drop();
        // Before the stack goes: the header that records the name lives on it.
        self.free_name();
        // SAFETY: finished, name freed, once (`into_stack` forgets `self`); the stack
        // is dropped after its descriptor left the header.
        drop(unsafe { self.take_stack() });
    }
}

impl<R> fmt::Debug for Coroutine<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Coroutine")
            .field("id", &self.id())
            .field("name", &self.name())
            .field("state", &self.state())
            .field("stack", self.stack())
            .finish()
    }
}

#[cold]
#[inline(never)]
fn already_finished() -> ! {
    panic!(
        "Coroutine::resume: the coroutine has already finished (it returned or panicked); \
         create a new one"
    )
}

/// # Safety
///
/// `p` must point to an initialised `F` that is not used afterwards.
unsafe fn drop_closure<F>(p: *mut u8) {
    // SAFETY: guaranteed by the caller.
    unsafe { ptr::drop_in_place(p.cast::<F>()) }
}

/// The root of every coroutine stack, entered through the trampoline on the first resume.
///
/// # Safety
///
/// `header` is the address of this coroutine's `Header`, whose `closure` holds an
/// initialised `F`, as set up by `new_unchecked` for these `F` and `R`.
unsafe extern "C" fn coroutine_main<F, R>(header: usize) -> !
where
    F: FnOnce(&Suspender) -> R,
{
    let h = header as *mut Header;
    // SAFETY: we run on this coroutine's stack, just switched in.
    unsafe { Fiber::arrived(addr_of_mut!((*h).san)) };
    // SAFETY: see the function's contract. The closure is moved onto this frame exactly
    // once; the resumer will not drop it (its state is no longer Fresh).
    let f = unsafe { ptr::read((*h).closure.cast::<F>()) };
    let suspender = Suspender {
        header: h,
        _not_send: PhantomData,
    };
    let mut result: ManuallyDrop<Result<R, Payload>> =
        ManuallyDrop::new(panic::catch_unwind(AssertUnwindSafe(|| f(&suspender))));
    // SAFETY: `result` stays valid on this frame, which is never popped: the final switch
    // never returns. The resumer moves the result out exactly once (`take_result`).
    unsafe {
        (*h).result = addr_of_mut!(result).cast();
        Fiber::leaving(addr_of_mut!((*h).san), true);
        arch::final_switch(addr_of_mut!((*h).slots), OUTCOME_DONE)
    }
}

/// The handle through which a running coroutine suspends itself. It lives on the
/// coroutine's own stack and is lent to the closure for the whole run.
///
/// `!Send` and `!Sync`: it belongs to one coroutine; calling it from anywhere but that
/// coroutine's own stack is undefined behaviour that its lifetime rules out in safe code.
pub struct Suspender {
    header: *mut Header,
    _not_send: PhantomData<*mut ()>,
}

impl Suspender {
    /// Switches back to whoever called [`Coroutine::resume`], which returns
    /// [`Resume::Suspended`]; returns when the coroutine is resumed again, possibly on
    /// another thread.
    ///
    /// If the coroutine is being dropped, it does not return but unwinds the coroutine's
    /// stack (see [`is_forced_unwind`]); from a destructor running during that unwinding
    /// it returns at once.
    #[inline]
    pub fn suspend(&self) {
        let h = self.header;
        // SAFETY: we are running on this coroutine's stack (only its closure can reach
        // `&self`), so the coroutine side owns the header and `slots` holds the current
        // resumer's context.
        unsafe {
            if (*h).forced_unwind != UNWIND_NONE {
                forced_unwind(h);
                return;
            }
            Fiber::leaving(addr_of_mut!((*h).san), false);
            arch::suspend_switch(addr_of_mut!((*h).slots), OUTCOME_SUSPENDED);
            Fiber::arrived(addr_of_mut!((*h).san));
            if (*h).forced_unwind != UNWIND_NONE {
                forced_unwind(h);
            }
        }
    }
}

/// Raises the forced unwind, unless this coroutine's forced unwind is already in progress
/// (then the caller is a destructor run by that unwinding: it simply continues).
///
/// The state lives in the header rather than in `std::thread::panicking()`: the thread may
/// be panicking for reasons of its own (a coroutine dropped while its owner unwinds), and
/// the coroutine must still unwind rather than carry on. `panicking()` only tells a
/// destructor of ours apart from code that caught the forced unwind and swallowed it (that
/// code gets it again). Never inlined: it reads a thread-local after a switch, which may
/// have moved us to another thread.
///
/// # Safety
///
/// `h` is the running coroutine's header.
#[cold]
#[inline(never)]
unsafe fn forced_unwind(h: *mut Header) {
    // SAFETY: the running coroutine owns its header (caller).
    unsafe {
        if (*h).forced_unwind == UNWIND_RAISED && std::thread::panicking() {
            return;
        }
        (*h).forced_unwind = UNWIND_RAISED;
    }
    panic::resume_unwind(Box::new(ForcedUnwind(())));
}

impl fmt::Debug for Suspender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // SAFETY: the header outlives the Suspender (both belong to the running coroutine).
        let id = unsafe { (*self.header).info.id };
        f.debug_struct("Suspender").field("coroutine", &id).finish()
    }
}
