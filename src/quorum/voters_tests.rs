//! Three voters' nodes in one process over their durable logs, their
//! messages carried between them in memory (the transport is tested on its
//! own, `transport_tests.rs`): an election, a commit every voter applies to
//! the same image, the status DescribeQuorum is answered from, and a new
//! leader once the first is cut off.

use std::collections::BTreeMap;

use raft::eraftpb::Message;

use super::describe::UNKNOWN;
use super::node::{QuorumSettings, TICK_MS};
use super::QuorumNode;
use crate::metadata::records::{MetadataRecord, TopicRecord};

const VOTERS: [i32; 3] = [1, 2, 3];
/// Ticks within which a quorum of three elects a leader: raft-rs draws each
/// voter's timeout from one to two election timeouts (10 ticks each here).
const ELECTION_TICKS_MAX: usize = 100;
const NOW_MS: i64 = 1_000;

struct Voters {
    nodes: BTreeMap<i32, QuorumNode>,
    /// Voters whose messages, both ways, are dropped.
    cut_off: Vec<i32>,
    _dirs: Vec<tempfile::TempDir>,
}

impl Voters {
    fn open() -> Voters {
        let mut dirs = Vec::new();
        let mut nodes = BTreeMap::new();
        for id in VOTERS {
            let dir = tempfile::tempdir().unwrap();
            let settings = QuorumSettings {
                node_id: id,
                voters: VOTERS.to_vec(),
                election_timeout_ms: 10 * TICK_MS,
                snapshot_bytes: u64::MAX,
            };
            assert!(!settings.sole_voter());
            nodes.insert(id, QuorumNode::open(dir.path(), settings).unwrap());
            dirs.push(dir);
        }
        Voters {
            nodes,
            cut_off: Vec::new(),
            _dirs: dirs,
        }
    }

    /// Runs every node's rounds and delivers their messages until none are
    /// left; returns each proposal applied, by node.
    fn settle(&mut self) -> BTreeMap<i32, Vec<(u64, u64)>> {
        let mut applied: BTreeMap<i32, Vec<(u64, u64)>> = BTreeMap::new();
        loop {
            let mut messages: Vec<Message> = Vec::new();
            for (&id, node) in self.nodes.iter_mut() {
                while let Some((round, persist)) = node.next_ready() {
                    persist.run(node.log()).unwrap();
                    let finished = node.finish(round).unwrap();
                    if let Some(commit) = finished.commit {
                        node.log().lock().set_commit(commit).unwrap();
                    }
                    node.advance_apply();
                    messages.extend(finished.messages);
                    applied.entry(id).or_default().extend(finished.applied);
                }
            }
            if messages.is_empty() {
                return applied;
            }
            for message in messages {
                let (from, to) = (
                    super::node::node_id(message.from),
                    super::node::node_id(message.to),
                );
                if self.cut_off.contains(&from) || self.cut_off.contains(&to) {
                    continue;
                }
                let _ = self.nodes.get_mut(&to).unwrap().step(message);
            }
        }
    }

    /// Ticks every node until exactly one of `among` leads with its term's
    /// entry committed; returns its id.
    fn elect(&mut self, among: &[i32]) -> i32 {
        for _ in 0..ELECTION_TICKS_MAX {
            for node in self.nodes.values_mut() {
                node.tick();
            }
            self.settle();
            let leaders: Vec<i32> = among
                .iter()
                .copied()
                .filter(|id| self.nodes[id].leads_committed())
                .collect();
            if let [leader] = leaders[..] {
                return leader;
            }
        }
        panic!("no leader among {among:?} in {ELECTION_TICKS_MAX} ticks");
    }
}

fn topic(name: &str, byte: u8) -> MetadataRecord {
    MetadataRecord::Topic(TopicRecord {
        name: name.into(),
        topic_id: uuid::Uuid::from_bytes([byte; 16]),
    })
}

#[test]
fn three_voters_elect_one_leader_commit_alike_and_replace_a_leader_cut_off() {
    let mut voters = Voters::open();
    for node in voters.nodes.values() {
        let status = node.status(NOW_MS, |_| (NOW_MS, NOW_MS));
        assert_eq!(status.leader_id, UNKNOWN, "no leader before any election");
        assert_eq!(status.high_watermark, i64::from(UNKNOWN));
        let ids: Vec<i32> = status.voters.iter().map(|voter| voter.id).collect();
        assert_eq!(ids, VOTERS, "the log was bootstrapped with every voter");
    }
    let first = voters.elect(&VOTERS);
    let proposed = voters
        .nodes
        .get_mut(&first)
        .unwrap()
        .propose(&[topic("a", 1)])
        .unwrap();
    let applied = voters.settle();
    assert!(applied[&first].contains(&proposed));
    // Followers learn the commit with the leader's next message.
    voters.nodes.get_mut(&first).unwrap().tick();
    voters.nodes.get_mut(&first).unwrap().tick();
    voters.settle();
    let image = voters.nodes[&first].image().clone();
    assert!(image.topic_by_name("a").is_some());
    for (id, node) in &voters.nodes {
        assert_eq!(node.image(), &image, "voter {id} applied the same records");
        assert_eq!(node.leader_id(), first);
        assert_eq!(node.is_leader(), *id == first);
    }

    // The leader's status: every voter caught up to the commit, the
    // follower contact times as the driver reports them; a follower's
    // status knows its leader but not the others' logs.
    let leader = &voters.nodes[&first];
    let status = leader.status(NOW_MS, |id| (i64::from(id), i64::from(id) * 10));
    assert_eq!(status.local_id, first);
    assert_eq!(status.epoch, leader.term() as i32);
    assert_eq!(status.high_watermark, leader.applied() as i64);
    for voter in &status.voters {
        assert_eq!(voter.log_end_offset, status.high_watermark, "{voter:?}");
        if voter.id != first {
            assert_eq!(voter.last_fetch_timestamp_ms, i64::from(voter.id));
            assert_eq!(voter.last_caught_up_timestamp_ms, i64::from(voter.id) * 10);
        }
    }
    let follower = VOTERS.iter().copied().find(|&id| id != first).unwrap();
    let status = voters.nodes[&follower].status(NOW_MS, |_| (NOW_MS, NOW_MS));
    assert_eq!(status.leader_id, first);
    for voter in status.voters.iter().filter(|voter| voter.id != follower) {
        assert_eq!(voter.log_end_offset, i64::from(UNKNOWN));
        assert_eq!(voter.last_fetch_timestamp_ms, i64::from(UNKNOWN));
    }

    // Cut off, the leader commits nothing and steps down (check quorum);
    // the two others elect a new leader in a later term, which commits.
    let first_term = voters.nodes[&first].term();
    voters.cut_off.push(first);
    let stranded = voters
        .nodes
        .get_mut(&first)
        .unwrap()
        .propose(&[topic("lost", 2)])
        .unwrap();
    let rest: Vec<i32> = VOTERS.iter().copied().filter(|&id| id != first).collect();
    let second = voters.elect(&rest);
    assert!(voters.nodes[&second].term() > first_term);
    // It steps down within two election timeouts: the first check after
    // the cut still sees the others' messages from before it.
    for _ in 0..ELECTION_TICKS_MAX {
        if !voters.nodes[&first].is_leader() {
            break;
        }
        voters.nodes.get_mut(&first).unwrap().tick();
        voters.settle();
    }
    assert!(
        !voters.nodes[&first].is_leader(),
        "a leader cut off steps down"
    );
    let proposed = voters
        .nodes
        .get_mut(&second)
        .unwrap()
        .propose(&[topic("b", 3)])
        .unwrap();
    assert!(voters.settle()[&second].contains(&proposed));

    // Healed, the old leader follows and its unreplicated entry is gone.
    voters.cut_off.clear();
    for _ in 0..ELECTION_TICKS_MAX {
        for node in voters.nodes.values_mut() {
            node.tick();
        }
        let applied = voters.settle();
        assert!(
            !applied
                .get(&first)
                .is_some_and(|applied| applied.contains(&stranded)),
            "an entry of a leader cut off never commits"
        );
        if voters.nodes[&first].image() == voters.nodes[&second].image() {
            break;
        }
    }
    let image = voters.nodes[&second].image().clone();
    assert!(image.topic_by_name("b").is_some() && image.topic_by_name("lost").is_none());
    for (id, node) in &voters.nodes {
        assert_eq!(node.image(), &image, "voter {id} converged");
        assert_eq!(node.leader_id(), second);
    }
}
