//! Stray replicas: partition directories in the data directory that the
//! metadata does not assign to this node, left by a reassignment that moved
//! the replica away, or a topic deleted, while the node was down (a pure
//! broker catches up with the metadata before its shards start, so it
//! never opens them and no install deletes them), or by a crash between an
//! install and the deletion that follows it. Kafka's KRaft broker finds
//! them once it has caught up with the metadata log after a start
//! (`LogManager.isStrayKraftReplica`, KIP-858) and renames each to
//! `<topic>-<partition>.<id>-stray`; shoal renames and then deletes it, one
//! log line each (Kafka keeps the renamed directory for an operator).
//!
//! The sweep runs once per process, on `CONTROLLER_SHARD`, at the first
//! install of a view that holds this incarnation's broker registration: by
//! then the view holds everything committed before this node registered,
//! which is when it caught up. It runs inside that install, under the
//! controller's one-change-at-a-time permit, so no partition is being
//! opened or deleted meanwhile. A `-stray` directory left by a crash in
//! the middle of a sweep is deleted by the next.
//!
//! Invariant: only directories named as partitions (or `-stray` ones) are
//! touched, never the metadata log's; a directory of a partition the view
//! assigns to this node is never touched; each shard closes any log of a
//! stray before its directory goes.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::messages::{ShardRequest, TopicPartition};
use super::Shard;
use crate::metadata::ClusterView;
use crate::quorum::METADATA_LOG_DIR;

/// The suffix of a stray replica's directory once renamed (Kafka's
/// `StrayDirSuffix`).
const STRAY_SUFFIX: &str = "-stray";
/// The longest directory name most filesystems take; a renamed stray's
/// name is cut to fit it, as Kafka's `logDirNameWithSuffixCappedLength`.
const DIR_NAME_BYTES_MAX: usize = 255;

/// The (topic, partition) a directory name `<topic>-<partition>` stands
/// for; None for any other name (the metadata log's included).
pub fn partition_of(name: &str) -> Option<(&str, i32)> {
    if name == METADATA_LOG_DIR {
        return None;
    }
    let (topic, partition) = name.rsplit_once('-')?;
    let digits = !partition.is_empty() && partition.bytes().all(|b| b.is_ascii_digit());
    if topic.is_empty() || !digits {
        return None;
    }
    Some((topic, partition.parse().ok()?))
}

/// What a sweep does with the directories `names` of the data directory:
/// the partitions `hosts` does not give this node (to close, rename and
/// delete), and the `-stray` directories a former sweep left (to delete).
pub fn strays(
    names: &[String],
    hosts: impl Fn(&str, i32) -> bool,
) -> (Vec<TopicPartition>, Vec<&str>) {
    let partitions = names
        .iter()
        .filter_map(|name| partition_of(name))
        .filter(|(topic, partition)| !hosts(topic, *partition))
        .map(|(topic, partition)| TopicPartition::new(topic, partition))
        .collect();
    let leftovers = names
        .iter()
        .filter(|name| name.ends_with(STRAY_SUFFIX))
        .map(String::as_str)
        .collect();
    (partitions, leftovers)
}

/// The sweep (see the module doc) against `view`, from `CONTROLLER_SHARD`.
pub async fn sweep(shard: &Rc<Shard>, view: &ClusterView) {
    let data_dir = shard.config.data_dir.clone();
    let listing = data_dir.clone();
    let names = glommio::executor()
        .spawn_blocking(move || directory_names(&listing))
        .await;
    let hosts = |topic: &str, partition: i32| {
        view.topic(topic)
            .is_some_and(|meta| partition < meta.partitions && view.hosts(meta, partition))
    };
    let (partitions, leftovers) = strays(&names, hosts);
    if partitions.is_empty() && leftovers.is_empty() {
        return;
    }
    // No shard keeps a log of one open (none should: belt and braces).
    shard
        .broadcast(|| ShardRequest::DeletePartitions(partitions.clone()))
        .await;
    let doomed: Vec<String> = partitions
        .iter()
        .map(TopicPartition::dir_name)
        .chain(leftovers.iter().map(|name| name.to_string()))
        .collect();
    glommio::executor()
        .spawn_blocking(move || {
            for name in doomed {
                remove(&data_dir, &name);
            }
        })
        .await;
}

/// The names of the directories in `data_dir` (none if it cannot be read).
fn directory_names(data_dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|entry| entry.path().is_dir())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Renames a stray's directory `<name>.<id>-stray` (a leftover keeps its
/// name), then deletes it, with one log line.
fn remove(data_dir: &Path, name: &str) {
    let path = data_dir.join(name);
    if !path.exists() {
        return;
    }
    let renamed: PathBuf = match name.ends_with(STRAY_SUFFIX) {
        true => path,
        false => {
            let id = uuid::Uuid::new_v4().simple().to_string();
            let room = DIR_NAME_BYTES_MAX - 1 - id.len() - STRAY_SUFFIX.len();
            let prefix: String = name.chars().take(room).collect();
            let renamed = data_dir.join(format!("{prefix}.{id}{STRAY_SUFFIX}"));
            if let Err(error) = std::fs::rename(&path, &renamed) {
                log::error!("stray replica {name}: cannot rename it: {error}");
                return;
            }
            renamed
        }
    };
    match std::fs::remove_dir_all(&renamed) {
        Ok(()) => log::warn!(
            "stray replica {name}: not assigned to this node by the metadata; deleted ({})",
            renamed.display()
        ),
        Err(error) => log::error!(
            "stray replica {name}: cannot delete {}: {error}",
            renamed.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_directories_are_told_from_other_names() {
        assert_eq!(partition_of("orders-0"), Some(("orders", 0)));
        assert_eq!(partition_of("my-topic-12"), Some(("my-topic", 12)));
        assert_eq!(
            partition_of("__consumer_offsets-49"),
            Some(("__consumer_offsets", 49))
        );
        for other in [
            METADATA_LOG_DIR,
            "orders",
            "orders-",
            "-3",
            "orders-x1",
            "orders-0.5f0c1d2e3a4b4c5d8e9f0a1b2c3d4e5f-stray",
            "orders-99999999999",
        ] {
            assert_eq!(partition_of(other), None, "{other}");
        }
    }

    #[test]
    fn a_sweep_takes_the_unassigned_partitions_and_the_leftover_strays_only() {
        let names: Vec<String> = [
            "kept-0",
            "moved-0",
            "kept-1",
            "deleted-3",
            METADATA_LOG_DIR,
            "moved-0.abc-stray",
            "lost+found",
        ]
        .iter()
        .map(|name| name.to_string())
        .collect();
        let hosts = |topic: &str, _partition: i32| topic == "kept";
        let (partitions, leftovers) = strays(&names, hosts);
        assert_eq!(
            partitions,
            vec![
                TopicPartition::new("moved", 0),
                TopicPartition::new("deleted", 3)
            ]
        );
        assert_eq!(leftovers, vec!["moved-0.abc-stray"]);
        let all_hosted = strays(&names[..3], |_, _| true);
        assert!(all_hosted.0.is_empty() && all_hosted.1.is_empty());
    }

    #[test]
    fn removing_a_stray_renames_then_deletes_it_and_leaves_the_rest() {
        let root = tempfile::tempdir().unwrap();
        for name in ["moved-0", "kept-0", "old-0.abc-stray"] {
            std::fs::create_dir(root.path().join(name)).unwrap();
            std::fs::write(
                root.path().join(name).join("00000000000000000000.log"),
                b"x",
            )
            .unwrap();
        }
        remove(root.path(), "moved-0");
        remove(root.path(), "old-0.abc-stray");
        remove(root.path(), "gone-0");
        assert_eq!(directory_names(root.path()), vec!["kept-0".to_string()]);
    }
}
