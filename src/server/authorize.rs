//! The checks handlers make, one line each, by Kafka's authorization
//! matrix (`KafkaApis`: which operation on which resource each API
//! needs). Each asks `security::acl` with the broker's authorizer config,
//! the shard's view of the ACLs, and the connection's principal and
//! address.
//!
//! With no authorizer configured (`authorizer.class.name` unset, Kafka's
//! default) every check is one branch and allows. Inter-broker requests
//! (replica fetches, WriteTxnMarkers, AddPartitionsToTxn from a broker)
//! are checked as CLUSTER_ACTION on the principal of the connection: the
//! broker's own user where the inter-broker listener has SASL (or its
//! certificate's mapped name with mutual TLS; `quorum::link` logs in), so
//! `super.users=User:<broker>` lets brokers replicate; on a PLAINTEXT
//! inter-broker listener it is `User:ANONYMOUS`. The CONTROLLER
//! listener's checks (BrokerHeartbeat, Envelope, the quorum's own) are
//! `quorum::authorize`'s, on the same authorizer config.
//!
//! Invariant: no check allocates; each reads one `Rc` of the shard's view.

use kafka_protocol::error::ResponseError;

use super::connection::ConnectionContext;
use crate::config::AuthorizerConfig;
use crate::metadata::records::{CONFIG_RESOURCE_GROUP, CONFIG_RESOURCE_TOPIC};
use crate::security::acl::{self, AclIndex, Operation, Requester, ResourceType, CLUSTER_NAME};
use crate::shard::messages::KafkaError;

/// Whether the client of `context` may do `operation` on the resource
/// `name` of `resource_type`.
pub fn allowed(
    context: &ConnectionContext,
    operation: Operation,
    resource_type: ResourceType,
    name: &str,
) -> bool {
    decide(context, |config, acls, requester| {
        acl::authorize(config, acls, requester, operation, resource_type, name)
    })
}

/// `question` asked of the authorizer for the connection's principal and
/// address; allowed without asking when no authorizer is configured.
fn decide(
    context: &ConnectionContext,
    question: impl FnOnce(&AuthorizerConfig, &AclIndex, Requester<'_>) -> bool,
) -> bool {
    let config = &context.shard.config.authorizer;
    if !config.enabled {
        return true;
    }
    let view = context.shard.view();
    let principal = context.principal.borrow().clone();
    question(config, &view.acls, requester(context, &principal))
}

/// `operation` on the topic `name`.
pub fn topic(context: &ConnectionContext, operation: Operation, name: &str) -> bool {
    allowed(context, operation, ResourceType::Topic, name)
}

/// `operation` on the group `name`.
pub fn group(context: &ConnectionContext, operation: Operation, name: &str) -> bool {
    allowed(context, operation, ResourceType::Group, name)
}

/// `operation` on the transactional id `id`.
pub fn transactional_id(context: &ConnectionContext, operation: Operation, id: &str) -> bool {
    allowed(context, operation, ResourceType::TransactionalId, id)
}

/// `operation` on the cluster.
pub fn cluster(context: &ConnectionContext, operation: Operation) -> bool {
    allowed(context, operation, ResourceType::Cluster, CLUSTER_NAME)
}

/// `operation` on some resource of `resource_type` (Kafka's
/// `authorizeByResourceType`).
pub fn any_of_type(
    context: &ConnectionContext,
    operation: Operation,
    resource_type: ResourceType,
) -> bool {
    decide(context, |config, acls, requester| {
        acl::authorize_by_resource_type(config, acls, requester, operation, resource_type)
    })
}

/// Whether an authorizer is configured (the ACL APIs answer
/// SECURITY_DISABLED without one).
pub fn enabled(context: &ConnectionContext) -> bool {
    context.shard.config.authorizer.enabled
}

fn requester<'a>(context: &ConnectionContext, principal: &'a str) -> Requester<'a> {
    Requester {
        principal,
        host: context.peer.map(|peer| peer.ip()),
    }
}

/// TOPIC_AUTHORIZATION_FAILED.
pub fn topic_denied() -> KafkaError {
    KafkaError::new(ResponseError::TopicAuthorizationFailed)
}

/// GROUP_AUTHORIZATION_FAILED.
pub fn group_denied() -> KafkaError {
    KafkaError::new(ResponseError::GroupAuthorizationFailed)
}

/// CLUSTER_AUTHORIZATION_FAILED.
pub fn cluster_denied() -> KafkaError {
    KafkaError::new(ResponseError::ClusterAuthorizationFailed)
}

/// TRANSACTIONAL_ID_AUTHORIZATION_FAILED.
pub fn transactional_id_denied() -> KafkaError {
    KafkaError::new(ResponseError::TransactionalIdAuthorizationFailed)
}

/// The `authorizedOperations` bitfield of the resource: of `all` (the
/// operations Kafka defines on its type, bit n for code n), those the
/// principal may do; `all` when nothing is checked.
pub fn operations(
    context: &ConnectionContext,
    resource_type: ResourceType,
    name: &str,
    all: i32,
) -> i32 {
    if !enabled(context) {
        return all;
    }
    Operation::ALL_VALUES
        .iter()
        .filter(|operation| all & (1 << operation.code()) != 0)
        .filter(|operation| allowed(context, **operation, resource_type, name))
        .fold(0, |field, operation| field | (1 << operation.code()))
}

/// Whether the principal may do `operation` (DESCRIBE_CONFIGS or
/// ALTER_CONFIGS) on the config resource of `resource_type` (Kafka's
/// `ConfigResource.Type` code) named `name`: a topic's on the topic, a
/// group's on the group, a broker's and any other on the cluster; the
/// error to answer if not.
pub fn config_resource(
    context: &ConnectionContext,
    resource_type: i8,
    name: &str,
    operation: Operation,
) -> Option<KafkaError> {
    match resource_type {
        CONFIG_RESOURCE_TOPIC => (!topic(context, operation, name)).then(topic_denied),
        CONFIG_RESOURCE_GROUP => (!group(context, operation, name)).then(group_denied),
        _ => (!cluster(context, operation)).then(cluster_denied),
    }
}
