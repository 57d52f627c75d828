//! A goroutine's name and the place that spawned it, in one word of its G.
//!
//! Every G carries both (a dump prints them: `goroutine 7 ['worker'] …` and
//! `created by src/main.rs:12`), parked ones included, and few goroutines are named. So
//! the word of an unnamed goroutine is its `&'static Location`, and that of a named one
//! points to a box holding both, the two told apart by the low bit (both are at least
//! 2-byte aligned). Set when the G is made or reused, before anyone else can see it, and
//! never changed while it is shared: read from any thread without synchronisation.

use std::panic::Location;
use std::ptr;

/// See the module docs.
pub(crate) struct Origin(*const ());

/// What a named goroutine's word points to.
struct Named {
    name: Box<str>,
    created_by: Option<&'static Location<'static>>,
}

/// The low bit of a named goroutine's word.
const NAMED: usize = 1;

const _: () = assert!(
    std::mem::align_of::<Location<'static>>() > NAMED && std::mem::align_of::<Named>() > NAMED
);

impl Origin {
    /// A goroutine named `name` (if any), spawned at `created_by` (if known).
    pub(crate) fn new(
        name: Option<String>,
        created_by: Option<&'static Location<'static>>,
    ) -> Origin {
        match name {
            Some(name) => {
                let named = Box::new(Named {
                    name: name.into_boxed_str(),
                    created_by,
                });
                Origin(
                    Box::into_raw(named)
                        .cast::<()>()
                        .cast_const()
                        .map_addr(|a| a | NAMED),
                )
            }
            None => Origin(created_by.map_or(ptr::null(), |l| ptr::from_ref(l).cast())),
        }
    }

    fn named(&self) -> Option<&Named> {
        if self.0.addr() & NAMED == 0 {
            return None;
        }
        // SAFETY: a tagged word is the box `new` made, alive until our `Drop`, and never
        // written while shared (module docs).
        Some(unsafe { &*self.0.map_addr(|a| a & !NAMED).cast::<Named>() })
    }

    /// The goroutine's name, if it was given one.
    pub(crate) fn name(&self) -> Option<&str> {
        self.named().map(|n| &*n.name)
    }

    /// Where the goroutine was spawned, if known.
    pub(crate) fn created_by(&self) -> Option<&'static Location<'static>> {
        if let Some(n) = self.named() {
            return n.created_by;
        }
        if self.0.is_null() {
            return None;
        }
        // SAFETY: an untagged, non-null word is the `&'static Location` `new` stored.
        Some(unsafe { &*self.0.cast::<Location<'static>>() })
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        if self.0.addr() & NAMED != 0 {
            // SAFETY: the box `new` made, freed once, here.
            drop(unsafe {
                Box::from_raw(self.0.map_addr(|a| a & !NAMED).cast::<Named>().cast_mut())
            });
        }
    }
}

// SAFETY: the word is a `&'static Location` (`Sync`) or an owned box of a string and
// one (`Send + Sync`), never written while shared.
unsafe impl Send for Origin {}
// SAFETY: as above; `&Origin` only reads.
unsafe impl Sync for Origin {}

impl std::fmt::Debug for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Origin")
            .field("name", &self.name())
            .field("created_by", &self.created_by())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_places_round_trip() {
        let here = Location::caller();
        let unnamed = Origin::new(None, Some(here));
        assert_eq!(unnamed.name(), None);
        assert_eq!(unnamed.created_by(), Some(here));
        let named = Origin::new(Some("worker".into()), Some(here));
        assert_eq!(named.name(), Some("worker"));
        assert_eq!(named.created_by(), Some(here));
        let bare = Origin::new(None, None);
        assert_eq!((bare.name(), bare.created_by()), (None, None));
        let named_only = Origin::new(Some(String::new()), None);
        assert_eq!(
            (named_only.name(), named_only.created_by()),
            (Some(""), None)
        );
    }
}
