//! Persistence of cluster metadata in the data directory: `meta.properties`
//! (cluster id, node id and directory id, as Kafka writes it: by
//! `shoal storage format`, or by a plain `shoal serve` on first start) and
//! `shoal-topics.json` (the topic table). Written atomically: a temp file, fsync, rename, fsync of the
//! directory. Control plane only: these are small files written on admin
//! operations, never on produce or fetch.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use super::TopicMeta;

const TOPICS_FILE: &str = "shoal-topics.json";
/// What `shoal-topics.json` becomes once its topics are in the metadata log.
const TOPICS_FILE_MIGRATED: &str = "shoal-topics.json.migrated";
const META_PROPERTIES_FILE: &str = "meta.properties";

/// Version 1 of Kafka's `meta.properties`, the KRaft one.
const META_PROPERTIES_VERSION: u32 = 1;

/// A data directory's `meta.properties`, as Kafka's `MetaProperties`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaProperties {
    pub version: u32,
    pub cluster_id: Option<String>,
    pub node_id: Option<i32>,
    pub directory_id: Option<String>,
}

impl std::fmt::Display for MetaProperties {
    /// As Kafka's `MetaProperties.toString`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MetaProperties(version={}", self.version)?;
        if let Some(id) = &self.cluster_id {
            write!(f, ", clusterId={id}")?;
        }
        if let Some(id) = self.node_id {
            write!(f, ", nodeId={id}")?;
        }
        if let Some(id) = &self.directory_id {
            write!(f, ", directoryId={id}")?;
        }
        f.write_str(")")
    }
}

/// The path of `meta.properties` in a data directory.
pub fn meta_properties_path(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join(META_PROPERTIES_FILE)
}

/// Reads `meta.properties`; `None` when the directory has none.
pub fn read_meta_properties(data_dir: &Path) -> std::io::Result<Option<MetaProperties>> {
    let path = meta_properties_path(data_dir);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    let invalid = |what: String| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: {what}", path.display()),
        )
    };
    // A file without `version` is Kafka's version 0 (ZooKeeper mode).
    let mut meta = MetaProperties {
        version: 0,
        cluster_id: None,
        node_id: None,
        directory_id: None,
    };
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "version" => {
                meta.version = value
                    .parse()
                    .map_err(|_| invalid(format!("invalid version {value}")))?
            }
            "cluster.id" => meta.cluster_id = Some(value.to_string()),
            "node.id" | "broker.id" => {
                meta.node_id = Some(
                    value
                        .parse()
                        .map_err(|_| invalid(format!("invalid node.id {value}")))?,
                )
            }
            "directory.id" => meta.directory_id = Some(value.to_string()),
            _ => {}
        }
    }
    Ok(Some(meta))
}

/// Writes a freshly formatted directory's `meta.properties` (version 1,
/// the node id, a new directory id, the cluster id), as Kafka's storage
/// tool does; the directory is created if missing.
pub fn format_meta_properties(
    data_dir: &Path,
    cluster_id: &str,
    node_id: i32,
) -> std::io::Result<MetaProperties> {
    fs::create_dir_all(data_dir)?;
    let meta = MetaProperties {
        version: META_PROPERTIES_VERSION,
        cluster_id: Some(cluster_id.to_string()),
        node_id: Some(node_id),
        directory_id: Some(random_uuid()),
    };
    let text = format!(
        "#Written by shoal storage format\nversion={}\nnode.id={node_id}\ndirectory.id={}\ncluster.id={cluster_id}\n",
        meta.version,
        meta.directory_id.as_deref().unwrap_or_default()
    );
    write_atomically(data_dir, META_PROPERTIES_FILE, text.as_bytes())?;
    Ok(meta)
}

/// The cluster id of a formatted directory, checked as Kafka checks it at
/// start: `meta.properties` present, with a cluster id and this node's id.
pub fn formatted_cluster_id(data_dir: &Path, node_id: i32) -> anyhow::Result<String> {
    let path = meta_properties_path(data_dir);
    let Some(meta) = read_meta_properties(data_dir)? else {
        anyhow::bail!(
            "No `meta.properties` found in {} (have you run `shoal storage format` to format the directory?)",
            data_dir.display()
        );
    };
    let Some(cluster_id) = meta.cluster_id else {
        anyhow::bail!("Error: cluster ID not found in {}", data_dir.display());
    };
    match meta.node_id {
        None => anyhow::bail!("Error: node ID not found in {}", data_dir.display()),
        Some(stored) if stored != node_id => anyhow::bail!(
            "Stored node id {stored} doesn't match previous node id {node_id} in {}. If you moved your data, make sure your configured node id matches. If you intend to create a new node, you should remove all data in your data directories.",
            path.display()
        ),
        Some(_) => Ok(cluster_id),
    }
}

/// A new id as Kafka's `Uuid.randomUuid` makes one: 16 random bytes in
/// unpadded URL-safe base64, never starting with '-' (a command line would
/// take it for an option). A version 4 UUID never is one of Kafka's
/// reserved ids (all zero but the last byte), its version bits being set.
pub fn random_uuid() -> String {
    loop {
        let id = base64_url(uuid::Uuid::new_v4().as_bytes());
        if !id.starts_with('-') {
            return id;
        }
    }
}

/// Whether `text` is a Kafka id: unpadded URL-safe base64 of 16 bytes.
pub fn is_valid_uuid(text: &str) -> bool {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .is_ok_and(|bytes| bytes.len() == 16)
}

/// Reads the cluster id, creating `meta.properties` with a new one on first start.
pub fn load_or_create_cluster_id(data_dir: &Path, node_id: i32) -> std::io::Result<String> {
    let path = data_dir.join(META_PROPERTIES_FILE);
    if let Ok(text) = fs::read_to_string(&path) {
        for line in text.lines() {
            if let Some(id) = line.strip_prefix("cluster.id=") {
                return Ok(id.trim().to_string());
            }
        }
    }
    let id = base64_url(uuid::Uuid::new_v4().as_bytes());
    let text = format!("#shoal\nversion=1\ncluster.id={id}\nnode.id={node_id}\n");
    write_atomically(data_dir, META_PROPERTIES_FILE, text.as_bytes())?;
    Ok(id)
}

/// Loads the topic table of `shoal-topics.json`; None when there is none
/// (a new directory, or one already migrated).
pub fn load_topics(data_dir: &Path) -> std::io::Result<Option<BTreeMap<String, Arc<TopicMeta>>>> {
    let path = data_dir.join(TOPICS_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    let topics: Vec<TopicMeta> = serde_json::from_str(&text).map_err(|error| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: {error}", path.display()),
        )
    })?;
    Ok(Some(
        topics
            .into_iter()
            .map(|topic| (topic.name.clone(), Arc::new(topic)))
            .collect(),
    ))
}

/// Renames `shoal-topics.json` once its topics are committed to the
/// metadata log, durably: a later start must not migrate it again over
/// changes made since.
pub fn retire_topics_file(data_dir: &Path) -> std::io::Result<()> {
    fs::rename(
        data_dir.join(TOPICS_FILE),
        data_dir.join(TOPICS_FILE_MIGRATED),
    )?;
    fs::File::open(data_dir)?.sync_all()
}

pub(super) fn write_atomically(dir: &Path, name: &str, contents: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut file = fs::File::create(&tmp)?;
    file.write_all(contents)?;
    file.sync_data()?;
    fs::rename(&tmp, dir.join(name))?;
    fs::File::open(dir)?.sync_all()
}

/// Kafka prints cluster and topic ids as unpadded URL-safe base64.
pub fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_old_topic_table_is_read_then_retired() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load_topics(dir.path()).unwrap(), None);
        let mut topics = BTreeMap::new();
        let mut configs = BTreeMap::new();
        configs.insert("segment.bytes".to_string(), "1000".to_string());
        topics.insert(
            "a".to_string(),
            Arc::new(TopicMeta {
                name: "a".into(),
                id: uuid::Uuid::new_v4(),
                partitions: 3,
                configs,
                placement: vec![0, 1, 2],
                states: Vec::new(),
            }),
        );
        let list: Vec<&TopicMeta> = topics.values().map(|topic| topic.as_ref()).collect();
        let text = serde_json::to_vec(&list).unwrap();
        write_atomically(dir.path(), TOPICS_FILE, &text).unwrap();
        assert_eq!(load_topics(dir.path()).unwrap(), Some(topics));
        retire_topics_file(dir.path()).unwrap();
        assert_eq!(load_topics(dir.path()).unwrap(), None);
        assert!(dir.path().join(TOPICS_FILE_MIGRATED).exists());
        let id = load_or_create_cluster_id(dir.path(), 1).unwrap();
        assert_eq!(load_or_create_cluster_id(dir.path(), 1).unwrap(), id);
        assert_eq!(id.len(), 22);
    }

    #[test]
    fn formatted_storage_is_checked_as_kafka_checks_it() {
        let dir = tempfile::tempdir().unwrap();
        let error = formatted_cluster_id(dir.path(), 1).unwrap_err().to_string();
        assert!(error.contains("No `meta.properties` found"), "{error}");
        let cluster_id = random_uuid();
        let meta = format_meta_properties(dir.path(), &cluster_id, 3).unwrap();
        assert_eq!(
            read_meta_properties(dir.path()).unwrap(),
            Some(meta.clone())
        );
        assert_eq!(meta.version, 1);
        assert!(is_valid_uuid(meta.directory_id.as_deref().unwrap()));
        assert_eq!(formatted_cluster_id(dir.path(), 3).unwrap(), cluster_id);
        let error = formatted_cluster_id(dir.path(), 4).unwrap_err().to_string();
        assert!(
            error.contains("Stored node id 3 doesn't match previous node id 4"),
            "{error}"
        );
        // A plain node's file is read the same way.
        let plain = tempfile::tempdir().unwrap();
        let id = load_or_create_cluster_id(plain.path(), 2).unwrap();
        assert_eq!(formatted_cluster_id(plain.path(), 2).unwrap(), id);
    }

    #[test]
    fn random_uuids_are_kafka_ids() {
        for _ in 0..1000 {
            let id = random_uuid();
            assert_eq!(id.len(), 22);
            assert!(!id.starts_with('-'));
            assert!(is_valid_uuid(&id));
        }
        assert!(!is_valid_uuid("AAAA"));
        assert!(!is_valid_uuid("not base64 at all!!!!!"));
    }

    #[test]
    fn base64_url_matches_known_values() {
        assert_eq!(base64_url(b"foo"), "Zm9v");
        assert_eq!(base64_url(b"fo"), "Zm8");
        assert_eq!(base64_url(&[0xfb, 0xff]), "-_8");
    }
}
