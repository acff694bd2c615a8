//! One piece of a response on its way to the socket: bytes in memory, or
//! bytes that stay in a file until the kernel sends them. The file kind is
//! a type parameter, supplied by the layer that owns files
//! (`log::FileRange`); this layer needs only its length, to frame it.
//!
//! Invariant: as the module's: nothing here opens, reads or sends a file.
//! A chunk's length never changes, so a size prefix counted over a list of
//! chunks stays true until the last byte is sent.

use bytes::Bytes;

/// What this layer asks of a file piece: how many bytes it sends.
pub trait FileChunk {
    fn byte_len(&self) -> usize;
}

/// The file kind of a response that has none (encoders' tests, benches).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoFile {}

impl FileChunk for NoFile {
    fn byte_len(&self) -> usize {
        match *self {}
    }
}

/// A piece of a response frame.
#[derive(Debug, Clone)]
pub enum Chunk<F> {
    /// Bytes in memory: fixed fields, or record batches shared with the log.
    Memory(Bytes),
    /// Record batches the kernel sends straight from a file.
    File(F),
}

impl<F: FileChunk> Chunk<F> {
    pub fn len(&self) -> usize {
        match self {
            Chunk::Memory(bytes) => bytes.len(),
            Chunk::File(file) => file.byte_len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<F> Chunk<F> {
    /// The bytes, when the chunk is in memory.
    pub fn memory(&self) -> Option<&Bytes> {
        match self {
            Chunk::Memory(bytes) => Some(bytes),
            Chunk::File(_) => None,
        }
    }
}

impl<F> From<Bytes> for Chunk<F> {
    fn from(bytes: Bytes) -> Self {
        Chunk::Memory(bytes)
    }
}

/// Total bytes of `chunks`.
pub fn total_len<F: FileChunk>(chunks: &[Chunk<F>]) -> usize {
    chunks.iter().map(Chunk::len).sum()
}
