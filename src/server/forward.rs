//! Kafka's forwarding (KIP-590): an admin request that changes the
//! cluster's metadata, reaching a node that is not the active controller,
//! travels to the controller in an Envelope over the CONTROLLER listener;
//! the controller runs it as if its client had sent it there and sends the
//! response back, which this node relays unchanged (its header is the
//! client's, correlation id included). So every admin tool works through
//! any bootstrap server.
//!
//! Broker side (`forward`): the frame goes whole, as Kafka sends it
//! (`request_data` is the request header and body), through the controller
//! channel on `CONTROLLER_SHARD`. When no controller answers within the
//! channel's bounds, or the Envelope comes back with an error, the request
//! is handled here instead, which answers NOT_CONTROLLER for each of its
//! items: a code Kafka's clients retry after refreshing their metadata, as
//! they retry the REQUEST_TIMED_OUT a Kafka broker gives in that case
//! (DescribeQuorum handled here answers from this node's own quorum
//! status: NOT_LEADER_OR_FOLLOWER unless it leads, retried as well).
//!
//! Controller side (`serve_envelope`): an Envelope is taken only while this
//! node leads the quorum (else NOT_CONTROLLER, which the sender's channel
//! follows to the new leader), and only for `FORWARDED_APIS`.
//!
//! Invariant: a request is forwarded at most once. A request that came in
//! an Envelope is never forwarded again (`ConnectionContext::forwarded`), so
//! two nodes that disagree on the leader cannot pass a request back and
//! forth.

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::rc::Rc;

use std::panic::{catch_unwind, AssertUnwindSafe};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, DefaultPrincipalData, EnvelopeRequest, EnvelopeResponse,
    RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};

use super::connection::{ConnectionContext, Port};
use super::handlers::{self, Response};
use crate::client::frame::encode_request;
use crate::protocol::frame::{self, SIZE_PREFIX_BYTES};
use crate::quorum::transport::decode_body;
use crate::security::acl::ANONYMOUS;
use crate::shard::messages::{NewTopic, ShardReply, ShardRequest};
use crate::shard::to_controller::{ENVELOPE_VERSION, FORWARD_TIMEOUT_MS};
use crate::shard::{Shard, CONTROLLER_SHARD};

/// The CreateTopics version a node sends for the topics it creates
/// itself: v5 and later answer with the topic's configs, which it ignores.
const CREATE_TOPICS_VERSION: i16 = 7;
/// The client id of those requests.
pub const AUTO_CREATE_CLIENT_ID: &str = "shoal-auto-create";
/// The one version of Kafka's `DefaultPrincipalData`.
const PRINCIPAL_DATA_VERSION: i16 = 0;

/// The requests a node that is not the controller forwards: those the
/// controller alone carries out, AlterUserScramCredentials,
/// AlterClientQuotas, CreateAcls, DeleteAcls, ElectLeaders,
/// AlterPartitionReassignments,
/// ListPartitionReassignments, and DescribeQuorum, which the quorum's
/// leader alone answers (Kafka's broker forwards it always,
/// `forwardToControllerOrFail`).
pub const FORWARDED_APIS: [ApiKey; 13] = [
    ApiKey::CreateTopics,
    ApiKey::DeleteTopics,
    ApiKey::CreatePartitions,
    ApiKey::AlterConfigs,
    ApiKey::IncrementalAlterConfigs,
    ApiKey::ElectLeaders,
    ApiKey::DescribeQuorum,
    ApiKey::AlterPartitionReassignments,
    ApiKey::ListPartitionReassignments,
    ApiKey::CreateAcls,
    ApiKey::DeleteAcls,
    ApiKey::AlterUserScramCredentials,
    ApiKey::AlterClientQuotas,
];

/// The forwarded APIs whose handlers forward them, after this node's own
/// checks (`forward_request`): a BROKER resource's change is checked by
/// the broker it names, which alone can load the files it gives, before
/// the controller commits it (Kafka's `ConfigAdminManager.preprocess`).
pub const CHECKED_BEFORE_FORWARDING: [ApiKey; 2] =
    [ApiKey::AlterConfigs, ApiKey::IncrementalAlterConfigs];

/// Whether `api_key`'s request, as `context` received it, goes to the
/// controller: a forwardable API, on a node that does not lead the quorum
/// (the view names another node, or none yet), not already forwarded.
pub fn forwards(context: &ConnectionContext, api_key: ApiKey) -> bool {
    if context.forwarded || !FORWARDED_APIS.contains(&api_key) {
        return false;
    }
    let view = context.shard.view();
    view.controller_node_id != view.node_id
}

/// Sends `frame` (a request header and body) to the controller and returns
/// its response frame, or `None` when it could not be forwarded (the
/// caller handles the request here).
pub async fn forward(context: &ConnectionContext, frame: &Bytes) -> Option<Response> {
    let envelope = EnvelopeRequest::default()
        .with_request_data(frame.clone())
        .with_request_principal(Some(principal_bytes(&context.principal.borrow())))
        .with_client_host_address(address_bytes(context.peer));
    let reply = context
        .shard
        .call(CONTROLLER_SHARD, ShardRequest::Forward(Box::new(envelope)))
        .await;
    let outcome = match reply {
        ShardReply::Forwarded(outcome) => outcome,
        _ => Err("the controller shard has no controller channel".to_string()),
    };
    match outcome {
        Ok(response) if response.error_code == 0 => match response.response_data {
            Some(data) => {
                let header = frame::parse_request_header(frame).ok();
                let asked = header.and_then(|(header, _)| {
                    let api_key = ApiKey::try_from(header.request_api_key).ok()?;
                    Some((api_key, header.request_api_version))
                });
                if let Some((api_key, version)) = asked {
                    super::throttle::relayed(context, api_key, version, &data);
                }
                Some(Response::Frame(sized(&data)))
            }
            None => {
                log::warn!("forwarded request: the controller's envelope holds no response");
                None
            }
        },
        Ok(response) => {
            log::debug!(
                "forwarded request refused by the controller: error {}",
                response.error_code
            );
            None
        }
        Err(error) => {
            log::debug!("request not forwarded: {error}");
            None
        }
    }
}

/// Sends `request` under the client's `header` to the controller, as the
/// handler of a `CHECKED_BEFORE_FORWARDING` API leaves it (what this node
/// refused taken out), and decodes the controller's response; None when
/// it could not be forwarded (the caller handles the request here).
pub async fn forward_request<Req: Request>(
    context: &ConnectionContext,
    header: &RequestHeader,
    request: &Req,
) -> Option<Req::Response> {
    let version = header.request_api_version;
    let api_key = ApiKey::try_from(Req::KEY).ok()?;
    let mut frame = BytesMut::new();
    let encoded = header
        .encode(&mut frame, api_key.request_header_version(version))
        .and_then(|()| request.encode(&mut frame, version));
    if let Err(error) = encoded {
        log::error!("{api_key:?} v{version}: cannot encode the request to forward: {error:#}");
        return None;
    }
    let Response::Frame(framed) = forward(context, &frame.freeze()).await? else {
        return None;
    };
    let mut data = framed.slice(SIZE_PREFIX_BYTES.min(framed.len())..);
    let decoded = ResponseHeader::decode(&mut data, api_key.response_header_version(version))
        .and_then(|_| Req::Response::decode(&mut data, version));
    match decoded {
        Ok(response) => Some(response),
        Err(error) => {
            log::warn!(
                "{api_key:?} v{version}: the controller's response does not decode: {error:#}"
            );
            None
        }
    }
}

/// Has the controller create `topics` (auto-created and internal topics),
/// here when this node leads the quorum, else through a CreateTopics
/// request forwarded as a client's would be (Kafka's brokers send one
/// from their AutoTopicCreationManager). The caller reads the outcome from
/// its view, which a forwarded creation reaches one install later: until
/// then its client is told to retry.
pub async fn create_topics(context: &ConnectionContext, topics: Vec<NewTopic>) {
    if !forwards(context, ApiKey::CreateTopics) {
        let reply = context
            .shard
            .call(CONTROLLER_SHARD, ShardRequest::CreateTopics(topics, None))
            .await;
        if let ShardReply::CreateTopics(results, _) = reply {
            for error in results.iter().filter_map(|result| result.as_ref().err()) {
                log::debug!("topic creation failed: {:?}", error.message);
            }
        }
        return;
    }
    let request = CreateTopicsRequest::default()
        .with_topics(topics.into_iter().map(creatable_topic).collect())
        .with_timeout_ms(FORWARD_TIMEOUT_MS as i32);
    let frame = match encode_request(&request, CREATE_TOPICS_VERSION, 0, AUTO_CREATE_CLIENT_ID) {
        Ok(frame) => frame.freeze().slice(SIZE_PREFIX_BYTES..),
        Err(error) => {
            log::error!("topic creation: {error:#}");
            return;
        }
    };
    if forward(context, &frame).await.is_none() {
        log::debug!("topic creation: not forwarded to the controller");
    }
}

/// `topic` as CreateTopics carries it (its assignments left out: the
/// controller places the partitions).
pub fn creatable_topic(topic: NewTopic) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_string(topic.name)))
        .with_num_partitions(topic.partitions)
        .with_replication_factor(topic.replication_factor)
        .with_configs(
            topic
                .configs
                .into_iter()
                .map(|(name, value)| {
                    CreatableTopicConfig::default()
                        .with_name(StrBytes::from_string(name))
                        .with_value(Some(StrBytes::from_string(value)))
                })
                .collect(),
        )
}

/// Answers an Envelope the CONTROLLER listener received on `shard` (the
/// controller's): the embedded request run here, its response frame
/// wrapped in the Envelope response. An embedded request that does not
/// parse, or is not of `FORWARDED_APIS`, gets INVALID_REQUEST in the
/// Envelope; a malformed Envelope closes the connection (`Err`).
pub async fn serve_envelope(
    shard: Rc<Shard>,
    header: RequestHeader,
    mut body: Bytes,
) -> Result<Bytes, String> {
    let envelope: EnvelopeRequest = decode_body(&mut body, ApiKey::Envelope, ENVELOPE_VERSION)?;
    let answer = envelope_answer(shard, envelope).await;
    frame::encode_response(&header, ENVELOPE_VERSION, &answer)
}

async fn envelope_answer(shard: Rc<Shard>, envelope: EnvelopeRequest) -> EnvelopeResponse {
    let refuse = |error: ResponseError| EnvelopeResponse::default().with_error_code(error.code());
    if !shard.leads_quorum() {
        return refuse(ResponseError::NotController);
    }
    let embedded = envelope.request_data;
    let api_key = frame::parse_request_header(&embedded)
        .ok()
        .and_then(|(header, _)| ApiKey::try_from(header.request_api_key).ok());
    if !api_key.is_some_and(|api_key| FORWARDED_APIS.contains(&api_key)) {
        return refuse(ResponseError::InvalidRequest);
    }
    let Some(principal) = envelope_principal(envelope.request_principal.as_ref()) else {
        return refuse(ResponseError::PrincipalDeserializationFailure);
    };
    let context = ConnectionContext {
        shard,
        peer: client_address(&envelope.client_host_address),
        port: Port::Shared,
        forwarded: true,
        sasl: None,
        principal: RefCell::new(principal),
        advertised: None,
        throttle: Default::default(),
    };
    match handlers::dispatch(&context, embedded).await {
        Ok(Response::Frame(frame)) if frame.len() >= SIZE_PREFIX_BYTES => {
            EnvelopeResponse::default().with_response_data(Some(frame.slice(SIZE_PREFIX_BYTES..)))
        }
        Ok(_) => refuse(ResponseError::UnknownServerError),
        Err(error) => {
            log::warn!("forwarded request refused: {error}");
            refuse(ResponseError::InvalidRequest)
        }
    }
}

/// A response's header and body, framed with its size for the client.
fn sized(data: &Bytes) -> Bytes {
    let mut framed = BytesMut::with_capacity(SIZE_PREFIX_BYTES + data.len());
    framed.put_u32(data.len() as u32);
    framed.extend_from_slice(data);
    framed.freeze()
}

/// The client's IP address as Kafka puts it in an Envelope: the 4 or 16
/// bytes of `InetAddress.getAddress`.
fn address_bytes(peer: Option<SocketAddr>) -> Bytes {
    match peer.map(|peer| peer.ip()) {
        Some(IpAddr::V4(ip)) => Bytes::copy_from_slice(&ip.octets()),
        Some(IpAddr::V6(ip)) => Bytes::copy_from_slice(&ip.octets()),
        None => Bytes::new(),
    }
}

/// The client's principal as Kafka puts it in an Envelope: its
/// `DefaultPrincipalData` (type, name), version 0, prefixed by that
/// version as a 16-bit integer (`DefaultKafkaPrincipalBuilder.serialize`).
fn principal_bytes(principal: &str) -> Bytes {
    let (kind, name) = principal.split_once(':').unwrap_or(("User", principal));
    let data = DefaultPrincipalData::default()
        .with_type(StrBytes::from_string(kind.to_string()))
        .with_name(StrBytes::from_string(name.to_string()));
    let mut buf = BytesMut::new();
    buf.put_i16(PRINCIPAL_DATA_VERSION);
    match data.encode(&mut buf, PRINCIPAL_DATA_VERSION) {
        Ok(()) => buf.freeze(),
        // Two strings always encode; if not, the controller refuses it.
        Err(_) => Bytes::new(),
    }
}

/// The principal an Envelope carries (`User:ANONYMOUS` when it carries
/// none), or None when its bytes do not decode.
fn envelope_principal(bytes: Option<&Bytes>) -> Option<Rc<str>> {
    let Some(bytes) = bytes else {
        return Some(Rc::from(ANONYMOUS));
    };
    let mut bytes = bytes.clone();
    if bytes.len() < 2 || bytes.get_i16() != PRINCIPAL_DATA_VERSION {
        return None;
    }
    let data = catch_unwind(AssertUnwindSafe(|| {
        DefaultPrincipalData::decode(&mut bytes, PRINCIPAL_DATA_VERSION)
    }))
    .ok()?
    .ok()?;
    Some(Rc::from(format!(
        "{}:{}",
        data._type.as_str(),
        data.name.as_str()
    )))
}

/// The client's address an Envelope carries (port 0: Kafka sends none).
fn client_address(bytes: &[u8]) -> Option<SocketAddr> {
    let ip = match bytes.len() {
        4 => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => return None,
    };
    Some(SocketAddr::new(ip, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_addresses_travel_as_kafka_encodes_them() {
        let v4: SocketAddr = "10.1.2.3:5555".parse().unwrap();
        let v6: SocketAddr = "[fe80::1]:5555".parse().unwrap();
        for peer in [v4, v6] {
            let bytes = address_bytes(Some(peer));
            assert_eq!(client_address(&bytes), Some(SocketAddr::new(peer.ip(), 0)));
        }
        assert_eq!(address_bytes(None), Bytes::new());
        assert_eq!(client_address(&[1, 2, 3]), None);
    }

    #[test]
    fn every_forwarded_api_is_advertised_at_the_controllers_versions() {
        use crate::protocol::versions;
        use crate::quorum::describe;
        for api_key in FORWARDED_APIS {
            assert!(versions::supported(api_key).is_some(), "{api_key:?}");
        }
        // DescribeQuorum reaches a controller's Raft status whole: the
        // broker listener takes exactly the versions the controller answers.
        let broker = versions::supported(ApiKey::DescribeQuorum)
            .map(|api| (api.min_version, api.max_version));
        assert_eq!(broker, describe::served_versions(ApiKey::DescribeQuorum));
    }

    #[test]
    fn principals_travel_as_kafkas_default_principal_data() {
        let bytes = principal_bytes("User:alice");
        assert_eq!(&bytes[..2], &[0, 0], "the version first");
        assert_eq!(
            envelope_principal(Some(&bytes)).as_deref(),
            Some("User:alice")
        );
        assert_eq!(envelope_principal(None).as_deref(), Some(ANONYMOUS));
        for cut in 0..bytes.len() {
            assert_eq!(envelope_principal(Some(&bytes.slice(..cut))), None);
        }
    }

    #[test]
    fn a_response_is_framed_with_its_size() {
        let framed = sized(&Bytes::from_static(b"abc"));
        assert_eq!(&framed[..], &[0, 0, 0, 3, b'a', b'b', b'c']);
    }

    #[test]
    fn the_envelope_round_trips_at_its_one_version() {
        let envelope = EnvelopeRequest::default()
            .with_request_data(Bytes::from_static(b"frame"))
            .with_client_host_address(Bytes::from_static(&[127, 0, 0, 1]));
        let mut encoded = BytesMut::new();
        envelope.encode(&mut encoded, ENVELOPE_VERSION).unwrap();
        let decoded = EnvelopeRequest::decode(&mut encoded.freeze(), ENVELOPE_VERSION).unwrap();
        assert_eq!(decoded, envelope);
    }
}
