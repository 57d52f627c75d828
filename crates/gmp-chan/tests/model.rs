//! Random operation sequences against a sequential model of a FIFO queue with a capacity
//! (none: unbounded; zero: rendezvous), including cloning and dropping handles, which
//! disconnects the channel. Single-threaded, so every operation is non-blocking or has a
//! zero timeout, and the model's answer is exact.

use gmp_chan::{
    bounded, unbounded, Receiver, RecvTimeoutError, Select, SendTimeoutError, Sender, TryRecvError,
    TrySendError,
};
use proptest::prelude::*;
use std::collections::VecDeque;
use std::time::Duration;

#[derive(Debug, Clone)]
enum Op {
    TrySend(u16),
    SendTimeout(u16),
    TryRecv,
    RecvTimeout,
    TryIter,
    /// A biased `Select` with a receive (first) and a send (second) arm, `try_select`.
    SelectRecvOrSend(u16),
    Len,
    CloneSender,
    DropSender(usize),
    CloneReceiver,
    DropReceiver(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => any::<u16>().prop_map(Op::TrySend),
        2 => any::<u16>().prop_map(Op::SendTimeout),
        5 => Just(Op::TryRecv),
        2 => Just(Op::RecvTimeout),
        1 => Just(Op::TryIter),
        2 => any::<u16>().prop_map(Op::SelectRecvOrSend),
        2 => Just(Op::Len),
        1 => Just(Op::CloneSender),
        1 => any::<usize>().prop_map(Op::DropSender),
        1 => Just(Op::CloneReceiver),
        1 => any::<usize>().prop_map(Op::DropReceiver),
    ]
}

struct Model {
    queue: VecDeque<u16>,
    cap: Option<usize>,
    senders: usize,
    receivers: usize,
}

impl Model {
    fn has_room(&self) -> bool {
        self.cap.is_none_or(|c| self.queue.len() < c)
    }

    fn try_send(&mut self, v: u16) -> Result<(), TrySendError<u16>> {
        if self.receivers == 0 {
            Err(TrySendError::Disconnected(v))
        } else if self.has_room() {
            self.queue.push_back(v);
            Ok(())
        } else {
            Err(TrySendError::Full(v))
        }
    }

    fn try_recv(&mut self) -> Result<u16, TryRecvError> {
        match self.queue.pop_front() {
            Some(v) => Ok(v),
            None if self.senders == 0 => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        }
    }

    fn len(&self) -> usize {
        self.queue.len()
    }
}

fn run(cap: Option<usize>, ops: Vec<Op>) {
    let (s, r) = match cap {
        Some(c) => bounded(c),
        None => unbounded(),
    };
    let mut senders: Vec<Sender<u16>> = vec![s];
    let mut receivers: Vec<Receiver<u16>> = vec![r];
    let mut m = Model {
        queue: VecDeque::new(),
        cap,
        senders: 1,
        receivers: 1,
    };
    for op in ops {
        match op {
            Op::TrySend(v) => {
                if let Some(s) = senders.first() {
                    assert_eq!(s.try_send(v), m.try_send(v), "{op:?}");
                }
            }
            Op::SendTimeout(v) => {
                if let Some(s) = senders.last() {
                    let want = m.try_send(v).map_err(|e| match e {
                        TrySendError::Full(v) => SendTimeoutError::Timeout(v),
                        TrySendError::Disconnected(v) => SendTimeoutError::Disconnected(v),
                    });
                    assert_eq!(s.send_timeout(v, Duration::ZERO), want, "{op:?}");
                }
            }
            Op::TryRecv => {
                if let Some(r) = receivers.first() {
                    assert_eq!(r.try_recv(), m.try_recv(), "{op:?}");
                }
            }
            Op::RecvTimeout => {
                if let Some(r) = receivers.last() {
                    let want = m.try_recv().map_err(|e| match e {
                        TryRecvError::Empty => RecvTimeoutError::Timeout,
                        TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
                    });
                    assert_eq!(r.recv_timeout(Duration::ZERO), want, "{op:?}");
                }
            }
            Op::TryIter => {
                if let Some(r) = receivers.first() {
                    let got: Vec<u16> = r.try_iter().collect();
                    let want: Vec<u16> = m.queue.drain(..).collect();
                    assert_eq!(got, want);
                }
            }
            Op::SelectRecvOrSend(v) => {
                if let (Some(r), Some(s)) = (receivers.first(), senders.first()) {
                    let mut sel = Select::new_biased();
                    let ri = sel.recv(r);
                    let si = sel.send(s);
                    let recv_ready = !m.queue.is_empty() || m.senders == 0;
                    let send_ready = m.has_room() || m.receivers == 0;
                    match sel.try_select() {
                        Err(_) => assert!(!recv_ready && !send_ready, "select missed a ready op"),
                        Ok(oper) if oper.index() == ri => {
                            assert!(recv_ready);
                            assert_eq!(oper.recv(r).ok(), m.try_recv().ok());
                        }
                        Ok(oper) => {
                            assert_eq!(oper.index(), si);
                            assert!(!recv_ready && send_ready, "biased order violated");
                            assert_eq!(oper.send(s, v).is_ok(), m.try_send(v).is_ok());
                        }
                    }
                }
            }
            Op::Len => {
                for r in &receivers {
                    assert_eq!(r.len(), m.len());
                    assert_eq!(r.is_empty(), m.len() == 0);
                    assert_eq!(r.is_full(), !m.has_room());
                    assert_eq!(r.capacity(), cap);
                }
                for s in &senders {
                    assert_eq!(s.len(), m.len());
                    assert_eq!(s.is_full(), !m.has_room());
                }
            }
            Op::CloneSender => {
                if let Some(s) = senders.first() {
                    senders.push(s.clone());
                    m.senders += 1;
                }
            }
            Op::DropSender(i) => {
                if !senders.is_empty() {
                    senders.remove(i % senders.len());
                    m.senders -= 1;
                }
            }
            Op::CloneReceiver => {
                if let Some(r) = receivers.first() {
                    receivers.push(r.clone());
                    m.receivers += 1;
                }
            }
            Op::DropReceiver(i) => {
                if !receivers.is_empty() {
                    receivers.remove(i % receivers.len());
                    m.receivers -= 1;
                    if m.receivers == 0 && cap.is_none() {
                        // The unbounded flavour frees its queue when the last receiver
                        // goes (crossbeam-channel does too); a ring keeps it until freed.
                        m.queue.clear();
                    }
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn unbounded_matches_model(ops in prop::collection::vec(op(), 1..200)) {
        run(None, ops);
    }

    #[test]
    fn bounded_matches_model(cap in 1usize..6, ops in prop::collection::vec(op(), 1..200)) {
        run(Some(cap), ops);
    }

    #[test]
    fn zero_capacity_matches_model(ops in prop::collection::vec(op(), 1..100)) {
        run(Some(0), ops);
    }
}
