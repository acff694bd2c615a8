//! The APIs shoal implements and the versions of each it accepts. ApiVersions
//! advertises exactly this table, the dispatcher refuses anything outside it,
//! and the round-trip tests walk every version in it.

use kafka_protocol::messages::ApiKey;

/// The DescribeQuorum versions served, on either listener (a broker
/// forwards it to the active controller, whose CONTROLLER listener
/// answers it): v2 (KIP-853, the voters' endpoints) is the newest
/// `kafka-protocol` 0.18 encodes.
pub const DESCRIBE_QUORUM_VERSIONS: (i16, i16) = (0, 2);

/// One implemented API and its inclusive version range.
#[derive(Debug, Clone, Copy)]
pub struct SupportedApi {
    pub key: ApiKey,
    pub min_version: i16,
    pub max_version: i16,
}

const fn api(key: ApiKey, min_version: i16, max_version: i16) -> SupportedApi {
    SupportedApi {
        key,
        min_version,
        max_version,
    }
}

/// Lower bounds are the oldest versions the Kafka clients in use still send;
/// upper bounds are the newest the `kafka-protocol` crate can encode (for
/// InitProducerId, v5: the crate knows responses up to v6 but requests only
/// up to v5).
pub const SUPPORTED_APIS: &[SupportedApi] = &[
    api(ApiKey::Produce, 3, 13),
    api(ApiKey::Fetch, 4, 18),
    api(ApiKey::ListOffsets, 1, 10),
    // Kafka 4 removed v0-v1 (KIP-896).
    api(ApiKey::OffsetForLeaderEpoch, 2, 4),
    api(ApiKey::Metadata, 0, 13),
    api(ApiKey::ApiVersions, 0, 4),
    api(ApiKey::CreateTopics, 2, 7),
    api(ApiKey::DeleteTopics, 1, 6),
    api(ApiKey::DescribeConfigs, 1, 4),
    api(ApiKey::DescribeCluster, 0, 2),
    api(ApiKey::DescribeTopicPartitions, 0, 0),
    // Forwarded to the active controller. v1: KIP-860's
    // AllowReplicationFactorChange.
    api(ApiKey::AlterPartitionReassignments, 0, 1),
    api(ApiKey::ListPartitionReassignments, 0, 0),
    // Forwarded to the active controller, which answers it at the versions
    // its CONTROLLER listener serves.
    api(
        ApiKey::DescribeQuorum,
        DESCRIBE_QUORUM_VERSIONS.0,
        DESCRIBE_QUORUM_VERSIONS.1,
    ),
    api(ApiKey::FindCoordinator, 0, 6),
    api(ApiKey::JoinGroup, 0, 9),
    api(ApiKey::SyncGroup, 0, 5),
    api(ApiKey::Heartbeat, 0, 4),
    api(ApiKey::LeaveGroup, 0, 5),
    api(ApiKey::OffsetCommit, 2, 9),
    api(ApiKey::OffsetFetch, 1, 9),
    api(ApiKey::TxnOffsetCommit, 0, 5),
    api(ApiKey::DescribeGroups, 0, 6),
    api(ApiKey::ListGroups, 0, 5),
    api(ApiKey::DeleteGroups, 0, 2),
    api(ApiKey::OffsetDelete, 0, 0),
    api(ApiKey::ConsumerGroupHeartbeat, 0, 1),
    api(ApiKey::ConsumerGroupDescribe, 0, 1),
    api(ApiKey::DeleteRecords, 0, 2),
    api(ApiKey::DescribeProducers, 0, 0),
    api(ApiKey::CreatePartitions, 0, 3),
    api(ApiKey::ElectLeaders, 0, 2),
    api(ApiKey::AlterConfigs, 0, 2),
    api(ApiKey::IncrementalAlterConfigs, 0, 1),
    api(ApiKey::DescribeLogDirs, 1, 4),
    api(ApiKey::InitProducerId, 0, 5),
    api(ApiKey::WriteTxnMarkers, 1, 1),
    api(ApiKey::AddPartitionsToTxn, 0, 5),
    api(ApiKey::AddOffsetsToTxn, 0, 4),
    // v5: transactions version 2 (KIP-890), an epoch bump at every EndTxn.
    api(ApiKey::EndTxn, 0, 5),
    api(ApiKey::DescribeTransactions, 0, 0),
    // v2's transactional id pattern (KIP-1152) is newer than Kafka 4's
    // brokers, which serve up to v1.
    api(ApiKey::ListTransactions, 0, 1),
    // Kafka 4 removed CreateAcls and DeleteAcls v0-v1 and DescribeAcls v0
    // (KIP-896); v1 is the oldest the crate knows, and librdkafka still
    // sends it.
    api(ApiKey::DescribeAcls, 1, 3),
    api(ApiKey::CreateAcls, 1, 3),
    api(ApiKey::DeleteAcls, 1, 3),
    // Advertised on SASL listeners only (`SASL_APIS`).
    api(ApiKey::SaslHandshake, 0, 1),
    api(ApiKey::SaslAuthenticate, 0, 2),
    // Forwarded to the active controller.
    api(ApiKey::AlterUserScramCredentials, 0, 0),
    api(ApiKey::DescribeUserScramCredentials, 0, 0),
    // Client quotas; AlterClientQuotas is forwarded to the active controller.
    api(ApiKey::DescribeClientQuotas, 0, 1),
    api(ApiKey::AlterClientQuotas, 0, 1),
];

/// The APIs ApiVersions lists only where the listener speaks SASL: a
/// client of a PLAINTEXT listener has nothing to authenticate with.
pub const SASL_APIS: [ApiKey; 2] = [ApiKey::SaslHandshake, ApiKey::SaslAuthenticate];

/// The supported range of `key`, if shoal implements it.
pub fn supported(key: ApiKey) -> Option<SupportedApi> {
    SUPPORTED_APIS.iter().copied().find(|api| api.key == key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_stays_inside_what_the_crate_can_encode() {
        for api in SUPPORTED_APIS {
            let crate_range = api.key.valid_versions();
            assert!(api.min_version <= api.max_version, "{:?}", api.key);
            assert!(api.min_version >= crate_range.min, "{:?}", api.key);
            assert!(api.max_version <= crate_range.max, "{:?}", api.key);
        }
    }
}
