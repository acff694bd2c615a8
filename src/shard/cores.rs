//! Which cores the shards run on: the process's affinity mask, one shard
//! per usable core by default, each pinned to one core while there are
//! enough.

/// Cores this process may run on (its affinity mask), in ascending order.
pub fn allowed_cores() -> Vec<usize> {
    core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|core| core.id)
        .collect()
}

/// How many shards run when `--shards` is not given: one per core this
/// process may use.
pub fn default_shard_count() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// The core each of `count` shards is pinned to, in shard order: the first
/// `count` allowed cores. `None` when there are more shards than cores; the
/// shards then run unpinned.
pub fn shard_cores(count: usize) -> Option<Vec<usize>> {
    let cores = allowed_cores();
    (cores.len() >= count).then(|| cores[..count].to_vec())
}
