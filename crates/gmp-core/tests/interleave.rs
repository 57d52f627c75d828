//! Many coroutines resumed and dropped in proptest-generated orders, against a model.

use gmp_core::{Coroutine, Resume, StackPool};
use proptest::prelude::*;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

#[derive(Clone, Debug)]
enum Op {
    Resume(usize),
    Drop(usize),
}

#[derive(Clone, Debug)]
struct Spec {
    /// How many times the coroutine suspends before finishing.
    suspends: u32,
    /// Whether it panics instead of returning at the end.
    panics: bool,
}

fn spec() -> impl Strategy<Value = Spec> {
    (0u32..6, prop::bool::weighted(0.2)).prop_map(|(suspends, panics)| Spec { suspends, panics })
}

fn op(n: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        9 => (0..n).prop_map(Op::Resume),
        1 => (0..n).prop_map(Op::Drop),
    ]
}

fn scenario() -> impl Strategy<Value = (Vec<Spec>, Vec<Op>)> {
    prop::collection::vec(spec(), 1..10).prop_flat_map(|specs| {
        let n = specs.len();
        (Just(specs), prop::collection::vec(op(n), 0..80))
    })
}

struct Guard(Rc<Cell<u32>>);
impl Drop for Guard {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum ModelState {
    Running(u32), // steps done (suspensions so far)
    Done,
    Dropped,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn interleaved_coroutines_match_model((specs, ops) in scenario()) {
        let pool = StackPool::with_max_cached(64 * 1024, 4);
        let log: Rc<RefCell<Vec<(usize, u32)>>> = Rc::default();
        let drops = Rc::new(Cell::new(0u32));
        let mut cos: Vec<Option<Coroutine<u64>>> = specs
            .iter()
            .enumerate()
            .map(|(i, sp)| {
                let (log, drops, sp) = (log.clone(), drops.clone(), sp.clone());
                Some(Coroutine::new(pool.get().unwrap(), move |s| {
                    let _g = Guard(drops);
                    for step in 0..sp.suspends {
                        log.borrow_mut().push((i, step));
                        s.suspend();
                    }
                    log.borrow_mut().push((i, sp.suspends));
                    if sp.panics {
                        std::panic::panic_any(i);
                    }
                    i as u64 * 1000 + sp.suspends as u64
                }))
            })
            .collect();

        let mut model = vec![ModelState::Running(0); specs.len()];
        let mut model_log = Vec::new();
        let mut model_drops = 0u32;
        let mut started = vec![false; specs.len()];

        for op in ops {
            match op {
                Op::Resume(i) => {
                    let ModelState::Running(done) = model[i] else { continue };
                    started[i] = true;
                    model_log.push((i, done));
                    let co = cos[i].as_mut().unwrap();
                    let r = co.resume();
                    if done < specs[i].suspends {
                        prop_assert!(matches!(r, Resume::Suspended));
                        model[i] = ModelState::Running(done + 1);
                    } else {
                        model[i] = ModelState::Done;
                        model_drops += 1;
                        match r {
                            Resume::Returned(v) => {
                                prop_assert!(!specs[i].panics);
                                prop_assert_eq!(v, i as u64 * 1000 + specs[i].suspends as u64);
                            }
                            Resume::Panicked(p) => {
                                prop_assert!(specs[i].panics);
                                prop_assert_eq!(p.downcast_ref::<usize>(), Some(&i));
                            }
                            Resume::Suspended => prop_assert!(false, "should have finished"),
                        }
                        prop_assert!(co.is_finished());
                    }
                }
                Op::Drop(i) => {
                    if model[i] == ModelState::Dropped {
                        continue;
                    }
                    // A started, unfinished coroutine is unwound: its guard drops now.
                    if matches!(model[i], ModelState::Running(_)) && started[i] {
                        model_drops += 1;
                    }
                    model[i] = ModelState::Dropped;
                    let co = cos[i].take().unwrap();
                    pool.put(co.into_stack().unwrap());
                }
            }
            prop_assert_eq!(&*log.borrow(), &model_log);
            prop_assert_eq!(drops.get(), model_drops);
        }
        drop(cos);
        // Every coroutine that started has dropped its guard by now.
        prop_assert_eq!(drops.get() as usize, started.iter().filter(|s| **s).count());
    }
}
