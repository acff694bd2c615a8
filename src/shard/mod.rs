//! Shards: one pinned OS thread per core, each running one glommio executor
//! with its own io_uring rings.
//!
//! Invariant: this is the only module that knows threads exist. Everything
//! else runs inside exactly one shard and reaches other shards only through
//! the messages defined here.

/// Locked memory each shard's executor registers with io_uring. glommio's
/// default is 10 MiB, larger than the 8 MiB `ulimit -l` common on servers and
/// containers; 2 MiB per shard keeps several shards inside it.
pub const SHARD_IO_MEMORY_BYTES: usize = 2 << 20;

/// Runs the future `make_future` builds to completion on a fresh single-shard executor. For tests
/// and the command-line tools, never for the broker's own shards.
pub fn block_on<M, F, T>(make_future: M) -> T
where
    M: FnOnce() -> F + Send + 'static,
    F: std::future::Future<Output = T> + 'static,
    T: Send + 'static,
{
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(SHARD_IO_MEMORY_BYTES)
        .spawn(make_future)
        .expect("spawn executor")
        .join()
        .expect("executor thread")
}
