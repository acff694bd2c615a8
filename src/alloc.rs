//! The process allocator: the system allocator, except that very large
//! requests are served by `mmap(MAP_NORESERVE)`.
//!
//! Why: the `kafka-protocol` crate sizes a decoded array from the length on
//! the wire before checking the bytes exist, so a 4-byte body claiming
//! 2^31 elements asks for ~150 GB. malloc refuses, and Rust aborts the whole
//! process on a failed allocation: one hostile client would stop the broker.
//! A `MAP_NORESERVE` mapping of that size succeeds without committing memory;
//! the decoder then runs out of input after a few elements, fails, and the
//! connection is closed. Pages are committed only when written, and the
//! decoder writes at most what the frame (bounded by
//! `socket.request.max.bytes`) can describe.
//!
//! The broker also sets how the system allocator (glibc's malloc) gives
//! memory back to the OS: see [`keep_freed_memory`].
//!
//! Invariant: small allocations (nearly all) go straight to the system
//! allocator; only requests of `LARGE_ALLOCATION_BYTES` or more are mapped.

use std::alloc::{GlobalAlloc, Layout, System};

/// Requests of this size or more are mapped rather than malloc'd. Above any
/// buffer the broker itself sizes on purpose in normal operation.
pub const LARGE_ALLOCATION_BYTES: usize = 256 << 20;
/// mmap returns page-aligned memory; larger alignments go to the system allocator.
const PAGE_BYTES: usize = 4096;

/// Buffers under this size come from malloc's heaps and are reused after a
/// free; larger ones are mapped and unmapped each time. glibc's largest
/// accepted value (half its 64 MiB per-thread heap), and above every buffer
/// the hot paths size: fetch reads, responses, the 16 MiB group-commit write.
const MALLOC_MMAP_THRESHOLD_BYTES: libc::c_int = 32 << 20;
/// Free memory at the top of a heap that malloc keeps instead of handing it
/// back to the OS. Above a per-thread heap's 64 MiB, so a shard's heap stays
/// at its high-water mark, which the broker's own bounds on buffers limit.
const MALLOC_TRIM_THRESHOLD_BYTES: libc::c_int = 128 << 20;

/// Makes glibc's malloc keep and reuse the memory the broker frees.
///
/// By default it unmaps every buffer over 128 KiB when it is freed, then
/// adjusts that threshold and trims heap tops past twice it: the megabytes
/// a large consume reads and sends per fetch went back to the OS and came
/// back as fresh zero-filled pages, a page fault per 4 KiB on the shard's
/// reactor. That was the largest cost of serving a consume from segment
/// files (page clearing and faults, about 40% of the broker's CPU) and what
/// held shards in reactor stalls (perf/run's W3). The cost: a shard keeps
/// the memory of its busiest moment.
pub fn keep_freed_memory() {
    #[cfg(target_env = "gnu")]
    for (parameter, name, value) in [
        (
            libc::M_MMAP_THRESHOLD,
            "M_MMAP_THRESHOLD",
            MALLOC_MMAP_THRESHOLD_BYTES,
        ),
        (
            libc::M_TRIM_THRESHOLD,
            "M_TRIM_THRESHOLD",
            MALLOC_TRIM_THRESHOLD_BYTES,
        ),
    ] {
        // SAFETY: mallopt only sets one of malloc's parameters.
        if unsafe { libc::mallopt(parameter, value) } == 0 {
            log::warn!("malloc refused {name}={value}: freed memory goes back to the OS");
        }
    }
}

pub struct ReservingAllocator;

fn is_mapped(layout: &Layout) -> bool {
    layout.size() >= LARGE_ALLOCATION_BYTES && layout.align() <= PAGE_BYTES
}

/// A fresh anonymous private mapping of `size` bytes, committed only when
/// written (`MAP_NORESERVE`); null when the kernel refuses it. Also the
/// fatal handler's alternate signal stacks (`fatal::on_this_thread`).
///
/// # Safety
/// The caller unmaps it with the same `size`, or keeps it for good.
pub(crate) unsafe fn map(size: usize) -> *mut u8 {
    // SAFETY: an anonymous private mapping; no file, no fixed address.
    let pointer = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if pointer == libc::MAP_FAILED {
        std::ptr::null_mut()
    } else {
        pointer.cast()
    }
}

// SAFETY: every pointer handed out is either the system allocator's (and
// returned to it) or a fresh mapping of at least `layout.size()` bytes
// (and unmapped with that same size, which the caller must pass back).
unsafe impl GlobalAlloc for ReservingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_mapped(&layout) {
            unsafe { map(layout.size()) }
        } else {
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_mapped(&layout) {
            // Anonymous mappings are zero-filled.
            unsafe { map(layout.size()) }
        } else {
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        if is_mapped(&layout) {
            unsafe { libc::munmap(pointer.cast(), layout.size()) };
        } else {
            unsafe { System.dealloc(pointer, layout) }
        }
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if !is_mapped(&layout) && !is_mapped(&new_layout) {
            return unsafe { System.realloc(pointer, layout, new_size) };
        }
        let fresh = unsafe { self.alloc(new_layout) };
        if !fresh.is_null() {
            unsafe {
                std::ptr::copy_nonoverlapping(pointer, fresh, layout.size().min(new_size));
                self.dealloc(pointer, layout);
            }
        }
        fresh
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use kafka_protocol::messages::MetadataRequest;
    use kafka_protocol::protocol::Decodable;

    #[test]
    fn a_lying_array_length_is_an_error_not_an_abort() {
        let mut body = Bytes::from_static(&[0x7f, 0xff, 0xff, 0xff]);
        assert!(MetadataRequest::decode(&mut body, 0).is_err());
    }

    #[test]
    fn large_buffers_work_and_are_zeroed() {
        let mut buffer = vec![0u8; super::LARGE_ALLOCATION_BYTES + 1];
        assert_eq!(buffer[12345], 0);
        buffer[super::LARGE_ALLOCATION_BYTES] = 7;
        buffer.resize(super::LARGE_ALLOCATION_BYTES * 2, 1);
        assert_eq!(buffer[super::LARGE_ALLOCATION_BYTES], 7);
        buffer.truncate(10);
        buffer.shrink_to_fit();
        assert_eq!(buffer, vec![0u8; 10]);
    }
}
