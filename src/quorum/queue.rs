//! The transport's queues of Raft messages: bounded in count and bytes,
//! dropping the oldest at the bound. Raft tolerates loss and resends on
//! its own clock, and a newer message carries a newer term, commit index
//! or log position than an older one to the same node, so the oldest is
//! the one worth least. Drops are counted and logged once per burst.
//!
//! Pure: no IO, no clock.

use std::collections::VecDeque;

use log::{info, warn};

/// Counts drops and logs the first of each burst, and the burst's total
/// when messages flow again.
#[derive(Debug, Default)]
pub struct Drops {
    total: u64,
    in_burst: u64,
}

impl Drops {
    /// Counts `count` dropped messages; logs if a burst starts.
    pub fn dropped(&mut self, count: u64, what: &dyn Fn() -> String) {
        if self.in_burst == 0 {
            warn!("{}: dropping raft messages", what());
        }
        self.in_burst += count;
        self.total += count;
    }

    /// Messages went through: ends a burst of drops, logging its total.
    pub fn flowing(&mut self, what: &dyn Fn() -> String) {
        if self.in_burst > 0 {
            info!(
                "{}: {} raft messages dropped, flowing again",
                what(),
                self.in_burst
            );
            self.in_burst = 0;
        }
    }

    /// Messages dropped since the queue was made.
    pub fn total(&self) -> u64 {
        self.total
    }
}

/// A FIFO of at most `items_max` items and `bytes_max` bytes, each item
/// at most `item_bytes_max`.
#[derive(Debug)]
pub struct BoundedQueue<T> {
    items: VecDeque<(T, usize)>,
    bytes: usize,
    items_max: usize,
    bytes_max: usize,
    item_bytes_max: usize,
    /// What the log lines call this queue.
    name: String,
    pub drops: Drops,
}

impl<T> BoundedQueue<T> {
    pub fn new(name: String, items_max: usize, bytes_max: usize, item_bytes_max: usize) -> Self {
        assert!(items_max > 0 && item_bytes_max > 0 && item_bytes_max <= bytes_max);
        BoundedQueue {
            items: VecDeque::new(),
            bytes: 0,
            items_max,
            bytes_max,
            item_bytes_max,
            name,
            drops: Drops::default(),
        }
    }

    /// Queues `item` of `size_bytes`, dropping the oldest until both
    /// bounds hold. An item over `item_bytes_max` is dropped itself.
    pub fn push(&mut self, item: T, size_bytes: usize) {
        let name = &self.name;
        if size_bytes > self.item_bytes_max {
            self.drops.dropped(1, &|| {
                format!("{name}: a message of {size_bytes} bytes over the bound")
            });
            return;
        }
        while self.items.len() >= self.items_max || self.bytes + size_bytes > self.bytes_max {
            let Some((_, oldest_bytes)) = self.items.pop_front() else {
                break;
            };
            self.bytes -= oldest_bytes;
            self.drops.dropped(1, &|| format!("{name} full"));
        }
        self.bytes += size_bytes;
        self.items.push_back((item, size_bytes));
        assert!(self.items.len() <= self.items_max);
        assert!(self.bytes <= self.bytes_max);
    }

    /// The oldest item and its size.
    pub fn pop(&mut self) -> Option<(T, usize)> {
        let (item, size_bytes) = self.items.pop_front()?;
        self.bytes -= size_bytes;
        Some((item, size_bytes))
    }

    /// The size of the oldest item.
    pub fn front_bytes(&self) -> Option<usize> {
        self.items.front().map(|&(_, size_bytes)| size_bytes)
    }

    /// Items went through: ends a burst of drops.
    pub fn flowing(&mut self) {
        let name = &self.name;
        self.drops.flowing(&|| name.clone());
    }

    /// Counts `count` items lost after they left the queue.
    pub fn lost(&mut self, count: u64) {
        let name = &self.name;
        self.drops
            .dropped(count, &|| format!("{name}: a write failed"));
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_go_first_at_either_bound() {
        let mut queue = BoundedQueue::new("q".to_string(), 3, 100, 90);
        for n in 0..5 {
            queue.push(n, 10);
        }
        let state = |queue: &BoundedQueue<i32>| (queue.len(), queue.bytes(), queue.drops.total());
        assert_eq!(state(&queue), (3, 30, 2));
        // The count bound drops 2; 3, 4 and 5 fill the bytes exactly.
        queue.push(5, 80);
        assert_eq!(state(&queue), (3, 100, 3));
        // The byte bound drops 3 alone.
        queue.push(6, 10);
        assert_eq!(state(&queue), (3, 100, 4));
        // Over the item bound: dropped itself, the queue untouched.
        queue.push(7, 91);
        assert_eq!(state(&queue), (3, 100, 5));
        assert_eq!(queue.pop(), Some((4, 10)));
        assert_eq!(queue.front_bytes(), Some(80));
        assert_eq!(queue.pop(), Some((5, 80)));
        assert_eq!(queue.pop(), Some((6, 10)));
        assert!(queue.is_empty() && queue.bytes() == 0);
        assert_eq!(queue.pop(), None);
    }
}
