//! The waiters of one partition: [`Signal`] (a generation counter and the
//! wakers of the futures waiting for it to move) and [`Watermarks`], what
//! append acknowledgements and fetch long polls wait on.
//!
//! Invariant: a waiter is woken by the next `notify`, never by a timer or a
//! spin; the wakers list holds only live waiters (a future dropped before its
//! wake takes its entry out), so an idle partition holds none. Knows nothing
//! of segments or offsets beyond the two marks it carries: the durable end
//! (what this replica has made as durable as its flush policy asks) and the
//! high watermark (what is committed), `high watermark <= durable end`.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// A tiny waiter list: futures wait for the generation to move on. A waiter
/// dropped before it is woken (a fetch long poll that timed out) takes its
/// waker out, so an idle partition does not collect them.
#[derive(Default)]
pub(super) struct Signal {
    generation: Cell<u64>,
    next_key: Cell<u64>,
    pub(super) wakers: RefCell<Vec<(u64, Waker)>>,
}

impl Signal {
    pub(super) fn generation(&self) -> u64 {
        self.generation.get()
    }

    pub(super) fn notify(&self) {
        self.generation.set(self.generation.get() + 1);
        let wakers = std::mem::take(&mut *self.wakers.borrow_mut());
        for (_, waker) in wakers {
            waker.wake();
        }
    }

    /// Resolves at the first `notify` after the generation was `seen`.
    pub(super) fn changed(&self, seen: u64) -> Changed<'_> {
        Changed {
            signal: self,
            seen,
            key: None,
        }
    }
}

pub(super) struct Changed<'a> {
    signal: &'a Signal,
    seen: u64,
    /// Key of this waiter's entry in the list, once registered.
    key: Option<u64>,
}

impl Future for Changed<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let signal = self.signal;
        if signal.generation.get() != self.seen {
            return Poll::Ready(());
        }
        let mut wakers = signal.wakers.borrow_mut();
        let registered = self
            .key
            .and_then(|key| wakers.iter_mut().find(|(k, _)| *k == key));
        match registered {
            Some((_, waker)) => waker.clone_from(cx.waker()),
            None => {
                let key = signal.next_key.get();
                signal.next_key.set(key + 1);
                wakers.push((key, cx.waker().clone()));
                self.key = Some(key);
            }
        }
        Poll::Pending
    }
}

impl Drop for Changed<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            self.signal.wakers.borrow_mut().retain(|(k, _)| *k != key);
        }
    }
}

/// What long polls watch; shared so their futures do not borrow the log.
#[derive(Default)]
pub(super) struct Watermarks {
    /// What is committed: what consumers read below and `acks=all` waits
    /// for. Moves with `durable_end` unless `replicated`.
    pub(super) high_watermark: Cell<i64>,
    /// What this replica has written, and synced under `FlushPolicy::Sync`.
    pub(super) durable_end: Cell<i64>,
    /// The high watermark moves only through `advance_high_watermark`.
    pub(super) replicated: Cell<bool>,
    /// The checkpointed high watermark found at `open` (clamped into the
    /// recovered log), while nothing since has shown more to be committed:
    /// what a partition marked replicated starts from, and what checkpoints
    /// write until then.
    pub(super) recovered_high_watermark: Cell<Option<i64>>,
    pub(super) closed: Cell<bool>,
    /// Notified whenever a group is written, synced, or the log closes or fails.
    pub(super) progress: Signal,
}
