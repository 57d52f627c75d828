//! The `select!` and `select_biased!` macros.
//!
//! The syntax is crossbeam-channel's: a list of arms, each `recv(r) -> pat => body`,
//! `send(s, msg) -> pat => body`, `default => body` or `default(timeout) => body`; a body
//! is an expression followed by a comma, or a block (comma optional); the last comma is
//! optional.
//!
//! Expansion happens in two stages, both `macro_rules!` token munchers:
//!
//! 1. `@parse`/`@body`/`@file` turn the arms into a normalized list,
//!    `(index label recv (r) (pat) {body})` and `(index label send (s) (msg) (pat) {body})`,
//!    plus at most one default, rejecting anything else with a `compile_error!` that names
//!    the problem.
//! 2. One `match (&r0, &s1, ..)` evaluates each channel expression once, in order, and
//!    keeps temporaries such as `&never()` or `after(d)` alive until the select completes;
//!    an array of `SelectArm`s is built on the stack and the blocking, non-blocking or
//!    timed select runs. `@complete` is one flat `match` on the chosen index that finishes
//!    the operation and runs its body. Expansion depth grows by two per arm only, so 32
//!    arms stay well inside the default recursion limit. The bodies are expanded inline, not in closures, so `break`, `continue`,
//!    `return` and `?` act on the surrounding code. A send's message expression is
//!    evaluated only if that send is chosen.

/// Internals of [`select!`](crate::select!); not part of the API.
#[doc(hidden)]
#[macro_export]
macro_rules! __gmp_select {
    // Entry: the 32 labels name the bound channel of each operation (and bound their
    // number, as crossbeam-channel does).
    (@start $biased:tt $($tokens:tt)*) => {
        $crate::__gmp_select!(
            @parse $biased [] []
            [
                (0usize _gmp_op0) (1usize _gmp_op1) (2usize _gmp_op2) (3usize _gmp_op3)
                (4usize _gmp_op4) (5usize _gmp_op5) (6usize _gmp_op6) (7usize _gmp_op7)
                (8usize _gmp_op8) (9usize _gmp_op9) (10usize _gmp_op10) (11usize _gmp_op11)
                (12usize _gmp_op12) (13usize _gmp_op13) (14usize _gmp_op14)
                (15usize _gmp_op15) (16usize _gmp_op16) (17usize _gmp_op17)
                (18usize _gmp_op18) (19usize _gmp_op19) (20usize _gmp_op20)
                (21usize _gmp_op21) (22usize _gmp_op22) (23usize _gmp_op23)
                (24usize _gmp_op24) (25usize _gmp_op25) (26usize _gmp_op26)
                (27usize _gmp_op27) (28usize _gmp_op28) (29usize _gmp_op29)
                (30usize _gmp_op30) (31usize _gmp_op31)
            ]
            $($tokens)*
        )
    };

    // ---- Stage 1: parse the arms. ----

    // Nothing left: stage 2.
    (@parse $biased:tt [] [] $labels:tt) => {
        ::core::compile_error!("empty `select!` block")
    };
    (@parse $biased:tt [$(($i:tt $var:ident $kind:ident ($ch:expr) $($x:tt)*))*] $default:tt
        $labels:tt) => {
        // Each channel expression is evaluated once, in order; borrowing it in the
        // scrutinee keeps temporaries (`&never()`, `after(d)`) alive until the end.
        match ($(&$ch,)*) {
            ($($var,)*) => {
                $(let $var: &$crate::__gmp_select!(@type $kind) = $var;)*
                let _gmp_arms: &mut [$crate::internal::SelectArm<'_>] =
                    &mut [$($crate::internal::SelectArm::$kind($var, $i)),*];
                $crate::__gmp_select!(@run $biased _gmp_arms $default [$(($i $var $kind $($x)*))*])
            }
        }
    };

    // recv(r) -> pat => body
    (@parse $biased:tt $arms:tt $default:tt $labels:tt
        recv($r:expr $(,)?) -> $res:pat => $($rest:tt)*) => {
        $crate::__gmp_select!(@body $biased $arms $default $labels (op recv ($r) ($res)) $($rest)*)
    };
    // send(s, msg) -> pat => body
    (@parse $biased:tt $arms:tt $default:tt $labels:tt
        send($s:expr, $m:expr $(,)?) -> $res:pat => $($rest:tt)*) => {
        $crate::__gmp_select!(
            @body $biased $arms $default $labels (op send ($s) ($m) ($res)) $($rest)*
        )
    };
    // default => body, default() => body
    (@parse $biased:tt $arms:tt [] $labels:tt default $(())? => $($rest:tt)*) => {
        $crate::__gmp_select!(@body $biased $arms [] $labels (default) $($rest)*)
    };
    // default(timeout) => body
    (@parse $biased:tt $arms:tt [] $labels:tt default($t:expr $(,)?) => $($rest:tt)*) => {
        $crate::__gmp_select!(@body $biased $arms [] $labels (timeout ($t)) $($rest)*)
    };
    // Errors.
    (@parse $biased:tt $arms:tt [$($default:tt)+] $labels:tt default $($rest:tt)*) => {
        ::core::compile_error!("there can be only one `default` case in a `select!` block")
    };
    (@parse $biased:tt $arms:tt $default:tt $labels:tt recv($($args:tt)*) => $($rest:tt)*) => {
        ::core::compile_error!("expected `->` after `recv(..)`, found `=>`")
    };
    (@parse $biased:tt $arms:tt $default:tt $labels:tt send($($args:tt)*) => $($rest:tt)*) => {
        ::core::compile_error!("expected `->` after `send(..)`, found `=>`")
    };
    (@parse $biased:tt $arms:tt $default:tt $labels:tt default $(($($a:tt)*))? -> $($rest:tt)*) => {
        ::core::compile_error!("expected `=>` after `default`, found `->`")
    };
    (@parse $biased:tt $arms:tt $default:tt $labels:tt recv $($rest:tt)*) => {
        ::core::compile_error!("invalid `recv` arm: expected `recv(receiver) -> pattern => body`")
    };
    (@parse $biased:tt $arms:tt $default:tt $labels:tt send $($rest:tt)*) => {
        ::core::compile_error!(
            "invalid `send` arm: expected `send(sender, message) -> pattern => body`"
        )
    };
    (@parse $biased:tt $arms:tt $default:tt $labels:tt $($rest:tt)+) => {
        ::core::compile_error!(::core::concat!(
            "expected one of `recv`, `send` or `default` in `select!`, found `",
            ::core::stringify!($($rest)+),
            "`"
        ))
    };

    // The body of an arm: a block (comma optional) or an expression (comma required
    // unless it is the last arm). An operation takes the next label; a default is filed
    // apart.
    (@body $biased:tt $arms:tt $default:tt $labels:tt $head:tt { $($b:tt)* }, $($rest:tt)*) => {
        $crate::__gmp_select!(@file $biased $arms $default $labels $head { $($b)* } $($rest)*)
    };
    (@body $biased:tt $arms:tt $default:tt $labels:tt $head:tt $b:expr, $($rest:tt)*) => {
        $crate::__gmp_select!(@file $biased $arms $default $labels $head { $b } $($rest)*)
    };
    (@body $biased:tt $arms:tt $default:tt $labels:tt $head:tt { $($b:tt)* } $($rest:tt)*) => {
        $crate::__gmp_select!(@file $biased $arms $default $labels $head { $($b)* } $($rest)*)
    };
    (@body $biased:tt $arms:tt $default:tt $labels:tt $head:tt $b:expr) => {
        $crate::__gmp_select!(@file $biased $arms $default $labels $head { $b })
    };
    (@body $biased:tt $arms:tt $default:tt $labels:tt $head:tt $($rest:tt)*) => {
        ::core::compile_error!(::core::concat!(
            "expected an expression followed by `,` or a block after `=>` in `select!`, found `",
            ::core::stringify!($($rest)*),
            "`"
        ))
    };

    (@file $biased:tt [$($arms:tt)*] $default:tt [($i:tt $var:ident) $($labels:tt)*]
        (op $($head:tt)*) $body:tt $($rest:tt)*) => {
        $crate::__gmp_select!(
            @parse $biased [$($arms)* ($i $var $($head)* $body)] $default [$($labels)*] $($rest)*
        )
    };
    (@file $biased:tt $arms:tt $default:tt [] (op $($head:tt)*) $($rest:tt)*) => {
        ::core::compile_error!("too many operations in a `select!` block (at most 32)")
    };
    (@file $biased:tt $arms:tt [] $labels:tt $head:tt $body:tt $($rest:tt)*) => {
        $crate::__gmp_select!(@parse $biased $arms [$head $body] $labels $($rest)*)
    };

    // ---- Stage 2: select, then complete the chosen operation. ----

    (@type recv) => { $crate::Receiver<_> };
    (@type send) => { $crate::Sender<_> };

    (@run $biased:tt $arms:ident [] $bound:tt) => {{
        let _gmp_oper = $crate::internal::select($arms, $biased);
        $crate::__gmp_select!(@complete _gmp_oper $bound)
    }};
    (@run $biased:tt $arms:ident [(default) $body:tt] $bound:tt) => {
        match $crate::internal::try_select($arms, $biased) {
            ::core::option::Option::None => $body,
            ::core::option::Option::Some(_gmp_oper) => {
                $crate::__gmp_select!(@complete _gmp_oper $bound)
            }
        }
    };
    (@run $biased:tt $arms:ident [(timeout ($t:expr)) $body:tt] $bound:tt) => {
        match $crate::internal::select_timeout($arms, $t, $biased) {
            ::core::option::Option::None => $body,
            ::core::option::Option::Some(_gmp_oper) => {
                $crate::__gmp_select!(@complete _gmp_oper $bound)
            }
        }
    };

    (@complete $oper:ident [$(($i:tt $var:ident $kind:ident $($x:tt)*))*]) => {
        match $oper.index() {
            $($i => $crate::__gmp_select!(@finish $oper $var $kind $($x)*),)*
            _ => ::core::unreachable!("gmp_chan: select! chose an operation it does not know"),
        }
    };
    (@finish $oper:ident $var:ident recv ($res:pat) $body:tt) => {{
        let _gmp_res = $oper.recv($var);
        let $res = _gmp_res;
        $body
    }};
    (@finish $oper:ident $var:ident send ($m:expr) ($res:pat) $body:tt) => {{
        let _gmp_res = $oper.send($var, $m);
        let $res = _gmp_res;
        $body
    }};
}

/// Waits on several channel operations and runs the arm of the one that completes.
///
/// Arms:
///
/// - `recv(r) -> res => body`: receive from `r` (a `Receiver` or a reference to one);
///   `res` is a pattern bound to the `Result<T, RecvError>`;
/// - `send(s, msg) -> res => body`: send `msg` on `s`; `res` is bound to the
///   `Result<(), SendError<T>>`; `msg` is evaluated only if this arm is chosen;
/// - `default => body`: run if no operation is ready now (makes the select non-blocking);
/// - `default(timeout) => body`: run if none becomes ready within the `Duration`.
///
/// An operation is ready if it would not block, including when it would fail because
/// the channel is disconnected. If several are ready, one is chosen uniformly at random
/// (Go's `select`); see [`select_biased!`](crate::select_biased!) for first-listed-wins. Bodies run in the
/// enclosing function: `break`, `continue`, `return` and `?` work as usual. Blocking parks
/// the current goroutine, or the thread outside a goroutine.
///
/// ```
/// use gmp_chan::{select, unbounded};
/// use std::time::Duration;
///
/// let (s1, r1) = unbounded();
/// let (s2, r2) = unbounded();
/// s1.send(10).unwrap();
///
/// // Both arms are ready; a random one runs.
/// select! {
///     recv(r1) -> msg => assert_eq!(msg, Ok(10)),
///     send(s2, 20) -> res => {
///         assert_eq!(res, Ok(()));
///         assert_eq!(r2.recv(), Ok(20));
///     }
/// }
///
/// // Nothing ready: the default arm runs after the timeout.
/// let (_s3, r3) = unbounded::<i32>();
/// let timed_out = select! {
///     recv(r3) -> _ => false,
///     default(Duration::from_millis(10)) => true,
/// };
/// assert!(timed_out);
/// ```
#[macro_export]
macro_rules! select {
    ($($tokens:tt)*) => {
        $crate::__gmp_select!(@start false $($tokens)*)
    };
}

/// Like [`select!`](crate::select!), but when several operations are ready the first listed wins.
///
/// ```
/// use gmp_chan::{select_biased, unbounded};
///
/// let (s1, r1) = unbounded();
/// let (s2, r2) = unbounded();
/// s1.send(1).unwrap();
/// s2.send(2).unwrap();
/// for _ in 0..10 {
///     select_biased! {
///         recv(r1) -> msg => { assert_eq!(msg, Ok(1)); s1.send(1).unwrap(); }
///         recv(r2) -> _ => panic!("r1 is always ready and listed first"),
///     }
/// }
/// ```
#[macro_export]
macro_rules! select_biased {
    ($($tokens:tt)*) => {
        $crate::__gmp_select!(@start true $($tokens)*)
    };
}

/// crossbeam-channel's internal macro name, kept so that code which calls it directly
/// (crossbeam-channel's own `mpsc` test shim does) compiles unchanged; not part of the
/// API. Selection is unbiased.
#[doc(hidden)]
#[macro_export]
macro_rules! crossbeam_channel_internal {
    ($($tokens:tt)*) => {
        $crate::__gmp_select!(@start false $($tokens)*)
    };
}
