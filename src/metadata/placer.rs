//! Where the replicas of new partitions go: Kafka's striped replica placer
//! (`StripedReplicaPlacer`) over the registered brokers, and the checks
//! Kafka's controller makes of a client's explicit assignments
//! (`ReplicationControlManager.createTopic`, `createPartitions`,
//! `validateManualPartitionAssignment`), with Kafka's error codes and texts.
//!
//! The placer stripes each partition's replicas over the racks (a broker
//! with no rack is a rack of its own name, none), one replica per rack
//! before any rack takes a second, round-robin within each rack, the leader
//! always on an unfenced broker and fenced brokers taken only when the
//! unfenced ones of a rack are used up. Each partition starts one rack and
//! one broker further on, so leaders spread; after as many partitions as
//! there are unfenced brokers, the racks and brokers are reshuffled so that
//! the same replica sets do not repeat. The random start and the shuffles
//! come from a seed the caller passes, through the same generator as
//! Kafka's placer tests (`MockRandom` under `java.util.Random.nextInt` and
//! `Collections.shuffle`), so Kafka's own expected placements check this one.
//!
//! Invariant: pure (no IO, no clock, no entropy of its own): the same
//! brokers, request and seed give the same assignment. Every partition it
//! returns has distinct replicas among the usable brokers and an active
//! leader first in its ISR; it never panics on a request. `controller.rs`
//! calls it for CreateTopics and CreatePartitions.

use std::collections::BTreeSet;
use std::fmt;

use kafka_protocol::error::ResponseError;

use super::controller::KafkaError;

/// A registered broker as placement sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementBroker {
    pub id: i32,
    pub rack: Option<String>,
    pub fenced: bool,
    /// A broker moving its leadership away takes no new replicas (Kafka's
    /// `usableBrokers` skips it) and joins no new ISR.
    pub in_controlled_shutdown: bool,
}

impl PlacementBroker {
    /// Kafka's `ClusterControlManager.isActive`: may lead and be in an ISR.
    fn active(&self) -> bool {
        !self.fenced && !self.in_controlled_shutdown
    }
}

/// One new partition: its replicas in order, its ISR (the active replicas)
/// and its leader (the first of the ISR), at leader and partition epoch 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPartition {
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub leader: i32,
}

/// Why the placer cannot place a replication factor, in Kafka's words
/// (`InvalidReplicationFactorException`'s messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlacementError {
    NotPositive {
        replication_factor: i32,
    },
    AllFenced,
    TooFewBrokers {
        replication_factor: i32,
        registered: usize,
    },
}

impl fmt::Display for PlacementError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlacementError::NotPositive { replication_factor } => write!(
                f,
                "Invalid replication factor {replication_factor}: the replication factor must be positive."
            ),
            PlacementError::AllFenced => write!(f, "All brokers are currently fenced."),
            PlacementError::TooFewBrokers {
                replication_factor,
                registered,
            } => write!(
                f,
                "The target replication factor of {replication_factor} cannot be reached because only {registered} broker(s) are registered."
            ),
        }
    }
}

/// The replicas of `partitions` new partitions of `replication_factor`
/// each, over the usable brokers (not in controlled shutdown), started
/// from `seed`. The caller draws a fresh seed per request, as Kafka's
/// controller draws from one `Random` for its life.
pub fn place(
    brokers: &[PlacementBroker],
    partitions: usize,
    replication_factor: i32,
    seed: u64,
) -> Result<Vec<Vec<i32>>, PlacementError> {
    let mut random = JavaRandom::new(seed);
    let usable = brokers
        .iter()
        .filter(|broker| !broker.in_controlled_shutdown);
    let mut racks = RackList::new(&mut random, usable);
    if replication_factor <= 0 {
        return Err(PlacementError::NotPositive { replication_factor });
    }
    if racks.unfenced == 0 {
        return Err(PlacementError::AllFenced);
    }
    if replication_factor as usize > racks.total {
        return Err(PlacementError::TooFewBrokers {
            replication_factor,
            registered: racks.total,
        });
    }
    let mut placements = Vec::with_capacity(partitions);
    for _ in 0..partitions {
        placements.push(racks.place(&mut random, replication_factor)?);
    }
    Ok(placements)
}

/// CreateTopics without assignments: `partitions` partitions placed over
/// the brokers, each with its ISR and leader; Kafka's error text.
pub fn place_new_topic(
    brokers: &[PlacementBroker],
    partitions: usize,
    replication_factor: i16,
    seed: u64,
) -> Result<Vec<NewPartition>, KafkaError> {
    let placements =
        place(brokers, partitions, replication_factor.into(), seed).map_err(|error| {
            KafkaError::with_message(
                ResponseError::InvalidReplicationFactor,
                format!("Unable to replicate the partition {replication_factor} time(s): {error}"),
            )
        })?;
    Ok(placements
        .into_iter()
        .map(|replicas| new_partition(brokers, replicas))
        .collect())
}

/// CreatePartitions without assignments: `additional` partitions of the
/// topic's replication factor; the placer's own text, as Kafka answers it.
pub fn place_new_partitions(
    brokers: &[PlacementBroker],
    additional: usize,
    replication_factor: i16,
    seed: u64,
) -> Result<Vec<NewPartition>, KafkaError> {
    let placements =
        place(brokers, additional, replication_factor.into(), seed).map_err(|error| {
            KafkaError::with_message(ResponseError::InvalidReplicationFactor, error.to_string())
        })?;
    Ok(placements
        .into_iter()
        .map(|replicas| new_partition(brokers, replicas))
        .collect())
}

/// CreateTopics with `assignments` (partition index, broker ids): Kafka's
/// checks in Kafka's order; the partitions by index from 0.
pub fn check_topic_assignments(
    brokers: &[PlacementBroker],
    partitions: i32,
    replication_factor: i16,
    assignments: &[(i32, Vec<i32>)],
) -> Result<Vec<NewPartition>, KafkaError> {
    if replication_factor != -1 {
        return Err(KafkaError::with_message(
            ResponseError::InvalidRequest,
            "A manual partition assignment was specified, but replication factor was not set to -1."
                .to_string(),
        ));
    }
    if partitions != -1 {
        return Err(KafkaError::with_message(
            ResponseError::InvalidRequest,
            "A manual partition assignment was specified, but numPartitions was not set to -1."
                .to_string(),
        ));
    }
    let mut placed = std::collections::BTreeMap::new();
    let mut first_size = None;
    for (index, replicas) in assignments {
        if placed.contains_key(index) {
            return Err(invalid_assignment(format!(
                "Found multiple manual partition assignments for partition {index}"
            )));
        }
        check_assignment(brokers, replicas, first_size)?;
        first_size = Some(replicas.len());
        placed.insert(*index, active_partition(brokers, replicas, *index)?);
    }
    // Consecutive from 0: the n indexes are exactly 0..n.
    if (0..placed.len()).any(|index| !placed.contains_key(&(index as i32))) {
        return Err(invalid_assignment(
            "partitions should be a consecutive 0-based integer sequence".to_string(),
        ));
    }
    Ok(placed.into_values().collect())
}

/// CreatePartitions with `assignments` for the partitions from
/// `first_partition` on: one per added partition, each of the topic's
/// replication factor.
pub fn check_added_assignments(
    brokers: &[PlacementBroker],
    first_partition: i32,
    additional: usize,
    replication_factor: i16,
    assignments: &[Vec<i32>],
) -> Result<Vec<NewPartition>, KafkaError> {
    if assignments.len() != additional {
        return Err(invalid_assignment(format!(
            "Attempted to add {additional} additional partition(s), but only {} assignment(s) were specified.",
            assignments.len()
        )));
    }
    let size = usize::try_from(replication_factor).unwrap_or(0);
    let mut placed = Vec::with_capacity(assignments.len());
    for (index, replicas) in (first_partition..).zip(assignments) {
        check_assignment(brokers, replicas, Some(size))?;
        placed.push(active_partition(brokers, replicas, index)?);
    }
    Ok(placed)
}

fn invalid_assignment(message: String) -> KafkaError {
    KafkaError::with_message(ResponseError::InvalidReplicaAssignment, message)
}

/// Kafka's `validateManualPartitionAssignment`: not empty, registered
/// brokers, each once, as many as the partitions before it.
fn check_assignment(
    brokers: &[PlacementBroker],
    replicas: &[i32],
    replication_factor: Option<usize>,
) -> Result<(), KafkaError> {
    if replicas.is_empty() {
        return Err(invalid_assignment(
            "The manual partition assignment includes an empty replica list.".to_string(),
        ));
    }
    let mut sorted = replicas.to_vec();
    sorted.sort_unstable();
    let mut previous = None;
    for &broker in &sorted {
        if !brokers.iter().any(|registered| registered.id == broker) {
            return Err(invalid_assignment(format!(
                "The manual partition assignment includes broker {broker}, but no such broker is registered."
            )));
        }
        if previous == Some(broker) {
            return Err(invalid_assignment(format!(
                "The manual partition assignment includes the broker {broker} more than once."
            )));
        }
        previous = Some(broker);
    }
    match replication_factor {
        Some(size) if size != sorted.len() => Err(invalid_assignment(format!(
            "The manual partition assignment includes a partition with {} replica(s), but this is not consistent with previous partitions, which have {size} replica(s).",
            sorted.len()
        ))),
        _ => Ok(()),
    }
}

/// An assigned partition, refused when none of its replicas is active.
fn active_partition(
    brokers: &[PlacementBroker],
    replicas: &[i32],
    index: i32,
) -> Result<NewPartition, KafkaError> {
    let partition = new_partition(brokers, replicas.to_vec());
    if partition.isr.is_empty() {
        return Err(invalid_assignment(format!(
            "All brokers specified in the manual partition assignment for partition {index} are fenced or in controlled shutdown."
        )));
    }
    Ok(partition)
}

/// The ISR is the active replicas in replica order; the leader is its
/// first (Kafka's `buildPartitionRegistration`). An empty ISR (only for
/// an assignment, checked by the caller) has no leader.
fn new_partition(brokers: &[PlacementBroker], replicas: Vec<i32>) -> NewPartition {
    let active: BTreeSet<i32> = brokers
        .iter()
        .filter(|broker| broker.active())
        .map(|broker| broker.id)
        .collect();
    let isr: Vec<i32> = replicas
        .iter()
        .copied()
        .filter(|id| active.contains(id))
        .collect();
    NewPartition {
        leader: isr.first().copied().unwrap_or(super::records::NO_LEADER),
        replicas,
        isr,
    }
}

/// `java.util.Random`'s `nextInt(bound)` and `Collections.shuffle` over
/// the 64-bit linear congruential generator of Kafka's `MockRandom`.
struct JavaRandom {
    state: u64,
}

impl JavaRandom {
    fn new(seed: u64) -> JavaRandom {
        JavaRandom { state: seed }
    }

    fn next(&mut self, bits: u32) -> i32 {
        self.state = self
            .state
            .wrapping_mul(2_862_933_555_777_941_757)
            .wrapping_add(3_037_000_493);
        (self.state >> (64 - bits)) as i32
    }

    /// Uniform in `0..bound` (`bound` > 0): Java's rejection of the top
    /// partial range, so each value is equally likely.
    fn below(&mut self, bound: usize) -> usize {
        let bound = i32::try_from(bound).unwrap_or(i32::MAX);
        let mut bits = self.next(31);
        let max = bound - 1;
        if bound & max == 0 {
            return ((i64::from(bound) * i64::from(bits)) >> 31) as usize;
        }
        loop {
            let value = bits % bound;
            if bits.wrapping_sub(value).wrapping_add(max) >= 0 {
                return value as usize;
            }
            bits = self.next(31);
        }
    }

    fn shuffle(&mut self, items: &mut [i32]) {
        for len in (2..=items.len()).rev() {
            let other = self.below(len);
            items.swap(len - 1, other);
        }
    }

    fn shuffle_indexes(&mut self, items: &mut [usize]) {
        for len in (2..=items.len()).rev() {
            let other = self.below(len);
            items.swap(len - 1, other);
        }
    }
}

/// Brokers taken round-robin from a moving start, each at most once per
/// partition. A list is fresh when first used for a new partition: its
/// start moves one on and none of it is taken yet.
#[derive(Debug, Default)]
struct BrokerList {
    brokers: Vec<i32>,
    taken: usize,
    start: usize,
    /// The partition this list last served; Kafka numbers these within a
    /// shuffle round, so a list untouched for a whole round could look
    /// used up; a number that never repeats makes every list fresh.
    partition: u64,
}

impl BrokerList {
    fn initialize(&mut self, random: &mut JavaRandom) {
        if !self.brokers.is_empty() {
            self.brokers.sort_unstable();
            self.start = random.below(self.brokers.len());
        }
    }

    fn next(&mut self, partition: u64) -> Option<i32> {
        let len = self.brokers.len();
        if len == 0 {
            return None;
        }
        if self.partition != partition {
            self.partition = partition;
            self.taken = 0;
            self.start = (self.start + 1) % len;
        }
        if self.taken >= len {
            return None;
        }
        let broker = self.brokers[(self.taken + self.start) % len];
        self.taken += 1;
        Some(broker)
    }
}

#[derive(Debug, Default)]
struct Rack {
    name: Option<String>,
    unfenced: BrokerList,
    fenced: BrokerList,
}

impl Rack {
    /// Unfenced brokers first; fenced ones once those are used up.
    fn next(&mut self, partition: u64) -> Option<i32> {
        self.unfenced
            .next(partition)
            .or_else(|| self.fenced.next(partition))
    }
}

/// The racks of the usable brokers, sorted by name (no rack first), and
/// the rotation that stripes partitions over them.
struct RackList {
    racks: Vec<Rack>,
    /// The rack visiting order: indexes into `racks`, reshuffled each round.
    order: Vec<usize>,
    total: usize,
    unfenced: usize,
    /// Where the next partition starts in `order`.
    start: usize,
    /// Partitions placed since the last shuffle (Kafka's epoch).
    placed_in_round: usize,
    /// Partitions placed in all: the number a `BrokerList` is fresh for.
    partition: u64,
}

impl RackList {
    fn new<'a>(
        random: &mut JavaRandom,
        brokers: impl Iterator<Item = &'a PlacementBroker>,
    ) -> RackList {
        let mut racks: Vec<Rack> = Vec::new();
        let (mut total, mut unfenced) = (0, 0);
        for broker in brokers {
            let rack = match racks.iter().position(|rack| rack.name == broker.rack) {
                Some(index) => &mut racks[index],
                None => {
                    racks.push(Rack {
                        name: broker.rack.clone(),
                        ..Rack::default()
                    });
                    let last = racks.len() - 1;
                    &mut racks[last]
                }
            };
            if broker.fenced {
                rack.fenced.brokers.push(broker.id);
            } else {
                rack.unfenced.brokers.push(broker.id);
                unfenced += 1;
            }
            total += 1;
        }
        racks.sort_by(|a, b| a.name.cmp(&b.name));
        for rack in &mut racks {
            rack.fenced.initialize(random);
            rack.unfenced.initialize(random);
        }
        let start = if racks.is_empty() {
            0
        } else {
            random.below(racks.len())
        };
        RackList {
            order: (0..racks.len()).collect(),
            racks,
            total,
            unfenced,
            start,
            placed_in_round: 0,
            partition: 0,
        }
    }

    /// One partition's replicas, leader first. The caller checked that
    /// there is an unfenced broker and at least `replication_factor`
    /// brokers, so every search below finds one within a lap of the racks.
    fn place(
        &mut self,
        random: &mut JavaRandom,
        replication_factor: i32,
    ) -> Result<Vec<i32>, PlacementError> {
        // With one unfenced broker a new round would never end.
        if self.placed_in_round == self.unfenced && self.unfenced > 1 {
            self.shuffle(random);
            self.placed_in_round = 0;
        }
        let laps = self.order.len();
        if self.start >= laps {
            self.start = 0;
        }
        let partition = self.partition;
        let mut replicas = Vec::with_capacity(usize::try_from(replication_factor).unwrap_or(0));
        let mut leader_rack = self.start;
        let leader = (0..laps).find_map(|_| {
            let found = self.racks[self.order[leader_rack]].unfenced.next(partition);
            if found.is_none() {
                leader_rack = (leader_rack + 1) % laps;
            }
            found
        });
        replicas.push(leader.ok_or(PlacementError::AllFenced)?);
        // The leader's rack is passed over once, so it comes last.
        let mut skip = Some(leader_rack);
        let mut rack = self.start;
        for _ in 1..replication_factor {
            let replica = (0..=laps).find_map(|_| {
                let found = if skip == Some(rack) {
                    skip = None;
                    None
                } else {
                    self.racks[self.order[rack]].next(partition)
                };
                rack = (rack + 1) % laps;
                found
            });
            replicas.push(replica.ok_or(PlacementError::TooFewBrokers {
                replication_factor,
                registered: self.total,
            })?);
        }
        self.placed_in_round += 1;
        self.start += 1;
        self.partition += 1;
        Ok(replicas)
    }

    fn shuffle(&mut self, random: &mut JavaRandom) {
        random.shuffle_indexes(&mut self.order);
        for rack in &mut self.racks {
            random.shuffle(&mut rack.fenced.brokers);
            random.shuffle(&mut rack.unfenced.brokers);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// The seed of Kafka's `MockRandom()`, so Kafka's expected placements
    /// apply unchanged.
    const KAFKA_TEST_SEED: u64 = 17;

    fn broker(id: i32, rack: Option<&str>, fenced: bool) -> PlacementBroker {
        PlacementBroker {
            id,
            rack: rack.map(str::to_string),
            fenced,
            in_controlled_shutdown: false,
        }
    }

    fn racked(brokers: &[(i32, &str, bool)]) -> Vec<PlacementBroker> {
        brokers
            .iter()
            .map(|&(id, rack, fenced)| broker(id, Some(rack), fenced))
            .collect()
    }

    fn unracked(brokers: &[(i32, bool)]) -> Vec<PlacementBroker> {
        brokers
            .iter()
            .map(|&(id, fenced)| broker(id, None, fenced))
            .collect()
    }

    #[test]
    fn a_broker_list_rotates_its_start_for_each_partition() {
        let mut list = BrokerList {
            brokers: vec![0, 1, 2, 3],
            ..BrokerList::default()
        };
        let take = |list: &mut BrokerList, partition| -> Vec<Option<i32>> {
            (0..6).map(|_| list.next(partition)).collect()
        };
        assert_eq!(
            take(&mut list, 0),
            [Some(0), Some(1), Some(2), Some(3), None, None]
        );
        assert_eq!(
            take(&mut list, 1),
            [Some(1), Some(2), Some(3), Some(0), None, None]
        );
        assert_eq!(BrokerList::default().next(1), None);
    }

    #[test]
    fn kafka_placements_on_one_rack_avoid_fenced_brokers_while_they_can() {
        let brokers = unracked(&[(3, false), (1, true), (0, false), (4, false), (2, false)]);
        assert_eq!(
            place(&brokers, 5, 4, KAFKA_TEST_SEED),
            Ok(vec![
                vec![3, 4, 0, 2],
                vec![4, 0, 2, 3],
                vec![0, 2, 3, 4],
                vec![2, 3, 4, 0],
                vec![0, 4, 3, 2],
            ])
        );
        let brokers = unracked(&[(3, false), (1, true), (2, false)]);
        assert_eq!(
            place(&brokers, 4, 3, KAFKA_TEST_SEED),
            Ok(vec![
                vec![3, 2, 1],
                vec![2, 3, 1],
                vec![3, 2, 1],
                vec![2, 3, 1]
            ])
        );
        let brokers = unracked(&[(0, false), (1, true)]);
        assert_eq!(
            place(&brokers, 3, 1, KAFKA_TEST_SEED),
            Ok(vec![vec![0], vec![0], vec![0]])
        );
        let brokers = unracked(&[(0, false), (3, false), (2, false), (1, false)]);
        assert_eq!(
            place(&brokers, 5, 3, KAFKA_TEST_SEED),
            Ok(vec![
                vec![2, 3, 0],
                vec![3, 0, 1],
                vec![0, 1, 2],
                vec![1, 2, 3],
                vec![1, 0, 2]
            ])
        );
    }

    #[test]
    fn kafka_placements_over_racks() {
        let brokers = racked(&[
            (11, "1", false),
            (10, "1", false),
            (30, "3", false),
            (31, "3", false),
            (21, "2", false),
            (20, "2", true),
        ]);
        assert_eq!(
            place(&brokers, 3, 4, KAFKA_TEST_SEED),
            Ok(vec![
                vec![11, 21, 31, 10],
                vec![21, 30, 10, 20],
                vec![31, 11, 21, 30]
            ])
        );
        let brokers = racked(&[
            (11, "1", false),
            (10, "1", false),
            (30, "3", true),
            (31, "3", true),
            (20, "2", true),
            (21, "2", true),
            (41, "4", false),
            (40, "4", true),
        ]);
        assert_eq!(
            place(&brokers, 3, 4, KAFKA_TEST_SEED),
            Ok(vec![
                vec![41, 11, 21, 30],
                vec![10, 20, 31, 41],
                vec![41, 21, 30, 11]
            ])
        );
    }

    #[test]
    fn kafka_spread_of_replica_pairs() {
        let brokers = unracked(&[(0, false), (1, false), (2, false), (3, false)]);
        let mut counts: BTreeMap<Vec<i32>, usize> = BTreeMap::new();
        for replicas in place(&brokers, 200, 2, KAFKA_TEST_SEED).unwrap() {
            *counts.entry(replicas).or_default() += 1;
        }
        let expected = [
            ([0, 1], 14),
            ([0, 2], 22),
            ([0, 3], 14),
            ([1, 0], 17),
            ([1, 2], 17),
            ([1, 3], 16),
            ([2, 0], 13),
            ([2, 1], 17),
            ([2, 3], 20),
            ([3, 0], 20),
            ([3, 1], 19),
            ([3, 2], 11),
        ];
        let expected: BTreeMap<Vec<i32>, usize> = expected
            .iter()
            .map(|(pair, count)| (pair.to_vec(), *count))
            .collect();
        assert_eq!(counts, expected);
    }

    #[test]
    fn replication_factors_kafka_refuses() {
        let two = racked(&[(11, "1", false), (10, "1", false)]);
        let fenced = racked(&[(11, "1", true), (10, "1", true)]);
        for (brokers, factor, message) in [
            (&two, 0, "Invalid replication factor 0: the replication factor must be positive."),
            (&two, -1, "Invalid replication factor -1: the replication factor must be positive."),
            (&fenced, 1, "All brokers are currently fenced."),
            (
                &two,
                3,
                "The target replication factor of 3 cannot be reached because only 2 broker(s) are registered.",
            ),
        ] {
            let error = place(brokers, 1, factor, KAFKA_TEST_SEED).unwrap_err();
            assert_eq!(error.to_string(), message);
        }
        let error = place_new_topic(&two, 1, 3, 1).unwrap_err();
        assert_eq!(error.code, ResponseError::InvalidReplicationFactor.code());
        assert_eq!(
            error.message.as_deref(),
            Some("Unable to replicate the partition 3 time(s): The target replication factor of 3 cannot be reached because only 2 broker(s) are registered.")
        );
        let error = place_new_partitions(&fenced, 2, 1, 1).unwrap_err();
        assert_eq!(
            error.message.as_deref(),
            Some("All brokers are currently fenced.")
        );
    }

    #[test]
    fn brokers_in_controlled_shutdown_take_no_replicas_and_join_no_isr() {
        let mut brokers = unracked(&[(1, false), (2, false), (3, true)]);
        brokers[0].in_controlled_shutdown = true;
        let error = place(&brokers, 1, 3, 5).unwrap_err();
        assert_eq!(
            error,
            PlacementError::TooFewBrokers {
                replication_factor: 3,
                registered: 2
            }
        );
        for partition in place_new_topic(&brokers, 4, 2, 5).unwrap() {
            assert_eq!(partition.replicas, vec![2, 3]);
            assert_eq!((partition.isr, partition.leader), (vec![2], 2));
        }
        let assigned = check_topic_assignments(&brokers, -1, -1, &[(0, vec![1, 3, 2])]).unwrap();
        assert_eq!(
            assigned,
            vec![NewPartition {
                replicas: vec![1, 3, 2],
                isr: vec![2],
                leader: 2
            }]
        );
    }

    fn message(result: Result<Vec<NewPartition>, KafkaError>) -> (i16, String) {
        let error = result.unwrap_err();
        (error.code, error.message.unwrap_or_default())
    }

    #[test]
    fn explicit_topic_assignments_are_checked_as_kafka_does() {
        let brokers = unracked(&[(1, false), (2, false), (3, true)]);
        let invalid = ResponseError::InvalidReplicaAssignment.code();
        let request = ResponseError::InvalidRequest.code();
        for ((partitions, factor, assignments), expected) in [
            (
                (-1, 2, vec![(0, vec![1])]),
                (request, "A manual partition assignment was specified, but replication factor was not set to -1."),
            ),
            (
                (3, -1, vec![(0, vec![1])]),
                (request, "A manual partition assignment was specified, but numPartitions was not set to -1."),
            ),
            (
                (-1, -1, vec![(0, vec![1]), (0, vec![2])]),
                (invalid, "Found multiple manual partition assignments for partition 0"),
            ),
            (
                (-1, -1, vec![(0, vec![])]),
                (invalid, "The manual partition assignment includes an empty replica list."),
            ),
            (
                (-1, -1, vec![(0, vec![1, 7])]),
                (invalid, "The manual partition assignment includes broker 7, but no such broker is registered."),
            ),
            (
                (-1, -1, vec![(0, vec![2, 1, 2])]),
                (invalid, "The manual partition assignment includes the broker 2 more than once."),
            ),
            (
                (-1, -1, vec![(0, vec![1, 2]), (1, vec![3])]),
                (invalid, "The manual partition assignment includes a partition with 1 replica(s), but this is not consistent with previous partitions, which have 2 replica(s)."),
            ),
            (
                (-1, -1, vec![(0, vec![3])]),
                (invalid, "All brokers specified in the manual partition assignment for partition 0 are fenced or in controlled shutdown."),
            ),
            (
                (-1, -1, vec![(0, vec![1]), (2, vec![2])]),
                (invalid, "partitions should be a consecutive 0-based integer sequence"),
            ),
        ] {
            let result = check_topic_assignments(&brokers, partitions, factor, &assignments);
            assert_eq!(message(result), (expected.0, expected.1.to_string()));
        }
        let placed =
            check_topic_assignments(&brokers, -1, -1, &[(1, vec![3, 2]), (0, vec![1, 3])]).unwrap();
        assert_eq!(
            placed,
            vec![
                NewPartition {
                    replicas: vec![1, 3],
                    isr: vec![1],
                    leader: 1
                },
                NewPartition {
                    replicas: vec![3, 2],
                    isr: vec![2],
                    leader: 2
                }
            ]
        );
    }

    #[test]
    fn explicit_added_partitions_are_checked_as_kafka_does() {
        let brokers = unracked(&[(1, false), (2, false), (3, true)]);
        let invalid = ResponseError::InvalidReplicaAssignment.code();
        assert_eq!(
            message(check_added_assignments(&brokers, 2, 2, 2, &[vec![1, 2]])),
            (
                invalid,
                "Attempted to add 2 additional partition(s), but only 1 assignment(s) were specified."
                    .to_string()
            )
        );
        assert_eq!(
            message(check_added_assignments(&brokers, 2, 1, 2, &[vec![1]])),
            (invalid, "The manual partition assignment includes a partition with 1 replica(s), but this is not consistent with previous partitions, which have 2 replica(s).".to_string())
        );
        assert_eq!(
            message(check_added_assignments(&brokers, 2, 2, 1, &[vec![1], vec![3]])),
            (invalid, "All brokers specified in the manual partition assignment for partition 3 are fenced or in controlled shutdown.".to_string())
        );
        let added = check_added_assignments(&brokers, 2, 2, 2, &[vec![3, 1], vec![2, 1]]).unwrap();
        assert_eq!(
            added.iter().map(|p| p.leader).collect::<Vec<_>>(),
            vec![1, 2]
        );
    }

    /// Brokers with ids from 0, each in one of `racks` racks (none when
    /// `racks` is 0), some fenced.
    fn cluster() -> impl Strategy<Value = Vec<PlacementBroker>> {
        (0..4usize, prop::collection::vec(any::<(u8, bool)>(), 1..10)).prop_map(
            |(racks, brokers)| {
                brokers
                    .into_iter()
                    .enumerate()
                    .map(|(id, (rack, fenced))| PlacementBroker {
                        id: id as i32,
                        rack: (racks > 0).then(|| format!("r{}", usize::from(rack) % racks)),
                        fenced,
                        in_controlled_shutdown: false,
                    })
                    .collect()
            },
        )
    }

    fn rack_of(brokers: &[PlacementBroker], id: i32) -> Option<String> {
        brokers
            .iter()
            .find(|b| b.id == id)
            .and_then(|b| b.rack.clone())
    }

    proptest! {
        #[test]
        fn every_partition_has_distinct_usable_replicas_led_by_an_unfenced_broker(
            brokers in cluster(),
            partitions in 1..40usize,
            factor in 1..5i32,
            seed in any::<u64>(),
        ) {
            let unfenced = brokers.iter().filter(|b| !b.fenced).count();
            let result = place(&brokers, partitions, factor, seed);
            if unfenced == 0 {
                prop_assert_eq!(result, Err(PlacementError::AllFenced));
                return Ok(());
            }
            if factor as usize > brokers.len() {
                let too_few = matches!(result, Err(PlacementError::TooFewBrokers { .. }));
                prop_assert!(too_few);
                return Ok(());
            }
            let placements = result.unwrap();
            prop_assert_eq!(placements.len(), partitions);
            for replicas in &placements {
                prop_assert_eq!(replicas.len(), factor as usize);
                let distinct: BTreeSet<i32> = replicas.iter().copied().collect();
                prop_assert_eq!(distinct.len(), replicas.len());
                let leader = brokers.iter().find(|b| b.id == replicas[0]).unwrap();
                prop_assert!(!leader.fenced);
                // A fenced broker only once its rack's unfenced brokers are all in.
                for fenced in brokers.iter().filter(|b| b.fenced && replicas.contains(&b.id)) {
                    prop_assert!(brokers
                        .iter()
                        .filter(|b| !b.fenced && b.rack == fenced.rack)
                        .all(|b| replicas.contains(&b.id)));
                }
            }
        }

        #[test]
        fn with_enough_racks_no_partition_has_two_replicas_in_one_rack(
            brokers in cluster(),
            partitions in 1..40usize,
            factor in 1..5i32,
            seed in any::<u64>(),
        ) {
            let racks: BTreeSet<Option<String>> = brokers.iter().map(|b| b.rack.clone()).collect();
            prop_assume!(factor as usize <= racks.len());
            prop_assume!(brokers.iter().any(|b| !b.fenced));
            for replicas in place(&brokers, partitions, factor, seed).unwrap() {
                let used: BTreeSet<Option<String>> =
                    replicas.iter().map(|&id| rack_of(&brokers, id)).collect();
                prop_assert_eq!(used.len(), replicas.len());
            }
        }

        #[test]
        fn leaders_spread_evenly_over_one_rack_of_unfenced_brokers(
            brokers in 1..10i32,
            partitions in 1..60usize,
            factor in 1..4i32,
            seed in any::<u64>(),
        ) {
            prop_assume!(factor <= brokers);
            let cluster: Vec<PlacementBroker> = (0..brokers).map(|id| broker(id, None, false)).collect();
            let mut leaders = vec![0usize; brokers as usize];
            for replicas in place(&cluster, partitions, factor, seed).unwrap() {
                prop_assert!(replicas.iter().all(|&id| (0..brokers).contains(&id)));
                leaders[replicas[0] as usize] += 1;
            }
            let (least, most) = (leaders.iter().min().unwrap(), leaders.iter().max().unwrap());
            prop_assert!(most - least <= 1, "{:?}", leaders);
        }

        /// Over racks Kafka's placer spreads leaders over the racks, not
        /// over each rack's brokers (a rack's start also moves for the
        /// followers it gives), as Kafka's does.
        #[test]
        fn leaders_spread_evenly_over_racks_of_one_size(
            racks in 2..5usize,
            per_rack in 1..4usize,
            partitions in 1..60usize,
            factor in 1..4i32,
            seed in any::<u64>(),
        ) {
            prop_assume!(factor as usize <= racks * per_rack);
            let cluster: Vec<PlacementBroker> = (0..racks * per_rack)
                .map(|id| broker(id as i32, Some(&format!("r{}", id % racks)), false))
                .collect();
            let mut leaders = vec![0usize; racks];
            for replicas in place(&cluster, partitions, factor, seed).unwrap() {
                leaders[replicas[0] as usize % racks] += 1;
            }
            let (least, most) = (leaders.iter().min().unwrap(), leaders.iter().max().unwrap());
            prop_assert!(most - least <= 1, "{:?}", leaders);
        }

        #[test]
        fn the_same_brokers_and_seed_give_the_same_placement_in_any_order(
            brokers in cluster(),
            partitions in 1..20usize,
            factor in 1..4i32,
            seed in any::<u64>(),
        ) {
            let mut reversed = brokers.clone();
            reversed.reverse();
            prop_assert_eq!(
                place(&brokers, partitions, factor, seed),
                place(&reversed, partitions, factor, seed)
            );
        }
    }
}
