//! Persistence of cluster metadata in the data directory: `meta.properties`
//! (cluster id and node id, as Kafka writes it) and `shoal-topics.json` (the
//! topic table). Written atomically: a temp file, fsync, rename, fsync of the
//! directory. Control plane only: these are small files written on admin
//! operations, never on produce or fetch.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use super::TopicMeta;

const TOPICS_FILE: &str = "shoal-topics.json";
const META_PROPERTIES_FILE: &str = "meta.properties";

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

/// Loads the topic table; an absent file is an empty table.
pub fn load_topics(data_dir: &Path) -> std::io::Result<BTreeMap<String, Arc<TopicMeta>>> {
    let path = data_dir.join(TOPICS_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(error) => return Err(error),
    };
    let topics: Vec<TopicMeta> = serde_json::from_str(&text).map_err(|error| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: {error}", path.display()),
        )
    })?;
    Ok(topics
        .into_iter()
        .map(|topic| (topic.name.clone(), Arc::new(topic)))
        .collect())
}

/// Replaces the topic table on disk.
pub fn save_topics(
    data_dir: &Path,
    topics: &BTreeMap<String, Arc<TopicMeta>>,
) -> std::io::Result<()> {
    let list: Vec<&TopicMeta> = topics.values().map(|topic| topic.as_ref()).collect();
    let text = serde_json::to_vec_pretty(&list).map_err(std::io::Error::other)?;
    write_atomically(data_dir, TOPICS_FILE, &text)
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
    fn topics_survive_a_save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load_topics(dir.path()).unwrap().is_empty());
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
            }),
        );
        save_topics(dir.path(), &topics).unwrap();
        assert_eq!(load_topics(dir.path()).unwrap(), topics);
        let id = load_or_create_cluster_id(dir.path(), 1).unwrap();
        assert_eq!(load_or_create_cluster_id(dir.path(), 1).unwrap(), id);
        assert_eq!(id.len(), 22);
    }

    #[test]
    fn base64_url_matches_known_values() {
        assert_eq!(base64_url(b"foo"), "Zm9v");
        assert_eq!(base64_url(b"fo"), "Zm8");
        assert_eq!(base64_url(&[0xfb, 0xff]), "-_8");
    }
}
