//! What appended batches lie in, and who pays for keeping it: a body the
//! log keeps as a slice of a request keeps the request frame's whole
//! allocation alive, however little of it the body is. One frame holds
//! batches for many partitions, so it is charged once per shard, to the
//! shard's `FrameBudget`, by the first partition that slices it; the
//! others slice it for free. Each slice (in a tail cache, in the writer's
//! queue) holds a handle to its `PinnedFrame`, and the last handle dropped
//! gives the frame's bytes back. When the budget has no room for a frame,
//! its batches are copied as they would be without slicing: the bound
//! costs a copy (about 0.2 µs per 4 KiB, benches/log.rs), never a refusal.
//!
//! Invariant: a budget's charge is the sum of the allocations of its
//! charged frames that still have a handle, and never exceeds its
//! capacity; a frame is charged at most once. Single-threaded: a budget
//! and its frames live on one shard (`Rc`, `Cell`).

use std::cell::Cell;
use std::rc::Rc;

/// What the request frames a shard's logs keep alive past their requests
/// may hold allocated at most: the tails of 16 partitions at the default
/// `tail_cache_bytes` (4 MiB). W1 (8 partitions, a 16 KiB batch for each
/// in a frame of 128 KiB) fills its tails with 256 frames' bodies, 32 MiB
/// of frames, on one shard or spread over two, so it is sliced
/// throughout; partitions whose slices linger (an idle tail keeps its last
/// frames) cost later frames a copy once this is spent, never memory.
pub const SHARD_PINNED_FRAME_BYTES_MAX: usize = 64 << 20;

/// One shard's allowance for pinned frames.
pub struct FrameBudget {
    capacity_bytes: usize,
    charged_bytes: Cell<usize>,
}

impl FrameBudget {
    pub fn new(capacity_bytes: usize) -> Rc<FrameBudget> {
        Rc::new(FrameBudget {
            capacity_bytes,
            charged_bytes: Cell::new(0),
        })
    }

    /// The allocations of the frames charged and still held.
    pub fn charged_bytes(&self) -> usize {
        self.charged_bytes.get()
    }
}

/// A request frame's allocation, as the slices of it are charged.
pub struct PinnedFrame {
    budget: Rc<FrameBudget>,
    /// At least what the frame's allocation is (`frame_allocation_bytes_max`).
    allocation_bytes: usize,
    charged: Cell<bool>,
}

impl PinnedFrame {
    /// A frame of `allocation_bytes`, charged to `budget` once sliced.
    pub fn new(budget: &Rc<FrameBudget>, allocation_bytes: usize) -> Rc<PinnedFrame> {
        Rc::new(PinnedFrame {
            budget: budget.clone(),
            allocation_bytes,
            charged: Cell::new(false),
        })
    }

    /// Whether a slice may keep the frame alive: it is charged already, or
    /// its budget has room for it and it is charged now.
    pub(crate) fn charge(&self) -> bool {
        if self.charged.get() {
            return true;
        }
        let charged_bytes = self.budget.charged_bytes.get();
        let room = self.budget.capacity_bytes - charged_bytes;
        if self.allocation_bytes > room {
            return false;
        }
        self.budget
            .charged_bytes
            .set(charged_bytes + self.allocation_bytes);
        self.charged.set(true);
        true
    }
}

impl Drop for PinnedFrame {
    fn drop(&mut self) {
        if self.charged.get() {
            let charged_bytes = self.budget.charged_bytes.get();
            assert!(charged_bytes >= self.allocation_bytes);
            self.budget
                .charged_bytes
                .set(charged_bytes - self.allocation_bytes);
        }
    }
}

/// The memory appended batches lie in, as a slice of it is paid for.
#[derive(Clone)]
pub enum Backing {
    /// A buffer of the batches' own size (the log's own callers'): a slice
    /// keeps just that buffer, and its partition's tail charges it whole.
    Own,
    /// A request frame that several partitions may slice: charged once to
    /// its shard's budget, and each tail charges only the bodies it holds.
    Frame(Rc<PinnedFrame>),
}
