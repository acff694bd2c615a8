//! What a node asks of the active controller when it is not that
//! controller, from `CONTROLLER_SHARD`: admin requests forwarded in
//! Envelopes (`server::forward`) and blocks of producer ids for its shards
//! (AllocateProducerIds), over a `ControllerChannel` of its own, as Kafka's
//! forwarding manager has its own channel: a slow admin request never
//! holds up the broker's heartbeats, which go on another.
//!
//! The other way round, `controller_service` is what this node's
//! CONTROLLER listener serves other nodes beyond the quorum's own APIs.
//!
//! Invariant: every call is bounded by `FORWARD_TIMEOUT_MS`, and the
//! channel bounds the callers waiting for it.

use std::cell::RefCell;
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    AllocateProducerIdsRequest, ApiKey, BrokerId, EnvelopeRequest, EnvelopeResponse,
};

use super::brokers::BROKER_APIS;
use super::messages::KafkaError;
use super::producer_ids::unavailable;
use super::quorum::QuorumHandle;
use crate::config::BrokerConfig;
use crate::metadata::image::MetadataImage;
use crate::metadata::producer_ids::ProducerIdBlock;
use crate::quorum::authorize::{self, ClusterAuthorizer};
use crate::quorum::channel::{ChannelConfig, ControllerChannel, LeaderFn};
use crate::quorum::link::LinkSecurity;
use crate::quorum::transport::{ControllerApis, ControllerRequest, ControllerService};
use crate::security::acl::{self, AclIndex, Operation, Requester, ResourceType, CLUSTER_NAME};

/// How long a forwarded request may look for the controller, retries
/// included: well inside the 30 s `request.timeout.ms` of Kafka's clients,
/// so that the client hears an answer (NOT_CONTROLLER, which it retries)
/// before it gives up on this node, and longer than a quorum takes to
/// elect a new leader after losing one (an election timeout or two).
pub const FORWARD_TIMEOUT_MS: u64 = 10_000;

/// Envelope's only version.
pub const ENVELOPE_VERSION: i16 = 0;
/// AllocateProducerIds' only version.
pub const ALLOCATE_PRODUCER_IDS_VERSION: i16 = 0;

/// What a controller serves other nodes on its CONTROLLER listener beyond
/// the quorum's own APIs, with the versions: the brokers' lifecycle
/// (`brokers::BROKER_APIS`) and, once the controller shard is up
/// (`Shard::serve_controller_apis`), the server's Envelope and
/// AllocateProducerIds.
pub const CONTROLLER_SERVICE_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Envelope, ENVELOPE_VERSION, ENVELOPE_VERSION),
    (
        ApiKey::AllocateProducerIds,
        ALLOCATE_PRODUCER_IDS_VERSION,
        ALLOCATE_PRODUCER_IDS_VERSION,
    ),
    BROKER_APIS[0],
    BROKER_APIS[1],
    BROKER_APIS[2],
];
const _: () = assert!(
    BROKER_APIS.len() == 3,
    "CONTROLLER_SERVICE_APIS lists them all"
);

/// The server's handler of Envelope and AllocateProducerIds: none until
/// the server sets it, and such a request before then closes its
/// connection (the sender's channel tries again).
pub type LateApis = Rc<RefCell<Option<ControllerApis>>>;

/// The listener's service: the brokers' lifecycle requests to `brokers`,
/// the rest through `late`, every request (the quorum's own too)
/// authorized by `cluster_authorizer`.
pub fn controller_service(
    brokers: ControllerService,
    late: &LateApis,
    config: &Arc<BrokerConfig>,
    quorum: &QuorumHandle,
) -> ControllerService {
    let late = Rc::clone(late);
    ControllerService {
        apis: Rc::new(move |request: ControllerRequest| {
            if BROKER_APIS
                .iter()
                .any(|(key, _, _)| *key == request.api_key)
            {
                return (brokers.apis)(request);
            }
            let apis = late.borrow().clone();
            match apis {
                Some(apis) => apis(request),
                None => Box::pin(async { Err("the controller is starting".to_string()) }),
            }
        }),
        versions: CONTROLLER_SERVICE_APIS,
        authorize: cluster_authorizer(config, quorum),
    }
}

/// Kafka's authorizer for the CONTROLLER listener (`quorum::authorize`):
/// `authorizer.class.name`, `super.users` and
/// `allow.everyone.if.no.acl.found` of `config`, with the ACLs of the
/// quorum's latest image (indexed again only when the image moves).
/// Without an authorizer every caller may do everything.
fn cluster_authorizer(config: &Arc<BrokerConfig>, quorum: &QuorumHandle) -> ClusterAuthorizer {
    if !config.authorizer.enabled {
        return authorize::allow_all();
    }
    let config = Arc::clone(config);
    let quorum = quorum.clone();
    let indexed: RefCell<Option<(Arc<MetadataImage>, Rc<AclIndex>)>> = RefCell::new(None);
    Rc::new(
        move |principal: &str, host: Option<IpAddr>, operation: Operation| {
            let image = quorum.latest().image;
            let acls = {
                let mut indexed = indexed.borrow_mut();
                match indexed.as_ref() {
                    Some((seen, acls)) if Arc::ptr_eq(seen, &image) => Rc::clone(acls),
                    _ => {
                        let acls = Rc::new(AclIndex::new(image.acls.clone()));
                        *indexed = Some((image, Rc::clone(&acls)));
                        acls
                    }
                }
            };
            let requester = Requester { principal, host };
            acl::authorize(
                &config.authorizer,
                &acls,
                requester,
                operation,
                ResourceType::Cluster,
                CLUSTER_NAME,
            )
        },
    )
}

pub struct ToController {
    channel: ControllerChannel,
}

impl ToController {
    /// The channel of node `config.node_id` to the voters of
    /// `controller.quorum.voters`; `leader` names the quorum leader this
    /// node knows.
    pub fn new(config: &BrokerConfig, leader: LeaderFn) -> Rc<ToController> {
        let channel = ControllerChannel::new(
            ChannelConfig {
                client_id: format!("broker-{}-forwarding", config.node_id),
                voters: config.cluster.quorum_voters.clone(),
                request_timeout_ms: FORWARD_TIMEOUT_MS,
                security: LinkSecurity::controller_or_plaintext(config),
            },
            leader,
        );
        Rc::new(ToController { channel })
    }

    /// Sends `envelope` to the active controller and returns its answer.
    pub async fn forward(&self, envelope: EnvelopeRequest) -> Result<EnvelopeResponse, String> {
        self.channel
            .call(envelope, ENVELOPE_VERSION)
            .await
            .map_err(|error| error.to_string())
    }

    /// A block of producer ids for broker `broker_id` at `broker_epoch`,
    /// committed by the active controller. Every failure is the retriable
    /// COORDINATOR_NOT_AVAILABLE InitProducerId answers while a Kafka
    /// broker's next block is on its way.
    pub async fn producer_ids(
        &self,
        broker_id: i32,
        broker_epoch: i64,
    ) -> Result<ProducerIdBlock, KafkaError> {
        let request = AllocateProducerIdsRequest::default()
            .with_broker_id(BrokerId(broker_id))
            .with_broker_epoch(broker_epoch);
        let response = self
            .channel
            .call(request, ALLOCATE_PRODUCER_IDS_VERSION)
            .await
            .map_err(|error| {
                unavailable(format!("no producer ids from the controller: {error}"))
            })?;
        if response.error_code != 0 {
            let error = ResponseError::try_from_code(response.error_code)
                .map(|error| format!("{error:?}"))
                .unwrap_or_else(|| response.error_code.to_string());
            return Err(unavailable(format!(
                "the controller refused a block of producer ids: {error}"
            )));
        }
        let next = response.producer_id_start.0;
        let end = i64::from(response.producer_id_len)
            .checked_add(next)
            .filter(|&end| next >= 0 && end > next)
            .ok_or_else(|| unavailable("the controller sent an empty block".into()))?;
        Ok(ProducerIdBlock { next, end })
    }
}
