//! Kafka requests the console's actions make in-process: encoded as a
//! client's, run through the Kafka API's own `handlers::dispatch` under a
//! connection context that carries the console user's principal, and
//! decoded back. So an action takes the path its Kafka API takes, checks
//! included: the same authorization, the same forwarding to the controller
//! (KIP-590) when this node is not it, the same group routing and
//! coordinator state machine.
//!
//! Invariant: one request per call, answered or refused with an HTTP
//! status; nothing is sent over a socket but what the handlers send.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::protocol::Request;
use serde_json::json;

use super::http::Response;
use crate::client::error::error_name;
use crate::client::frame::{decode_response, encode_request, split_response};
use crate::protocol::frame::SIZE_PREFIX_BYTES;
use crate::server::connection::{ConnectionContext, Port};
use crate::server::handlers::{self, Response as KafkaResponse};
use crate::shard::Shard;

/// The client id the console's requests carry (quotas and logs see it).
pub const CLIENT_ID: &str = "shoal-console";

/// The context a console request runs in: `principal` from `peer` on the
/// shared port, as a client of a PLAINTEXT listener would be but for the
/// principal its Basic credentials proved.
pub fn context(
    shard: &Rc<Shard>,
    principal: Rc<str>,
    peer: Option<SocketAddr>,
) -> ConnectionContext {
    ConnectionContext {
        shard: shard.clone(),
        peer,
        port: Port::Shared,
        forwarded: false,
        sasl: None,
        principal: RefCell::new(principal),
        advertised: None,
        throttle: Default::default(),
    }
}

/// `request` at `version` through the Kafka API's handler, its response;
/// a 500 when it does not come back whole (a bug, logged).
pub async fn call<Req: Request>(
    context: &ConnectionContext,
    version: i16,
    request: &Req,
) -> Result<Req::Response, Response> {
    let failed = |what: String| {
        log::error!("console: {what}");
        Err(Response::json(500, &json!({ "error": what })))
    };
    let frame = match encode_request(request, version, 0, CLIENT_ID) {
        Ok(frame) => frame.freeze().slice(SIZE_PREFIX_BYTES..),
        Err(error) => return failed(format!("cannot encode the request: {error:#}")),
    };
    let answer: Bytes = match handlers::dispatch(context, frame).await {
        Ok(KafkaResponse::Frame(framed)) if framed.len() >= SIZE_PREFIX_BYTES => {
            framed.slice(SIZE_PREFIX_BYTES..)
        }
        Ok(_) => return failed(format!("API key {} answered no frame", Req::KEY)),
        Err(error) => return failed(format!("API key {} refused: {error}", Req::KEY)),
    };
    let decoded = split_response::<Req>(answer, version, 0)
        .and_then(|body| decode_response::<Req>(body, version));
    match decoded {
        Ok(response) => Ok(response),
        Err(error) => failed(format!("the response does not decode: {error:#}")),
    }
}

/// A Kafka error as an HTTP answer: its status (`status`), Kafka's name
/// and the message, if any.
pub fn refusal(code: i16, message: Option<&str>) -> Response {
    let name = error_name(code);
    let message = message
        .filter(|message| !message.is_empty())
        .map_or_else(|| name.clone(), str::to_string);
    Response::json(status(code), &json!({ "error": name, "message": message }))
}

/// The HTTP status of a Kafka error: 403 for an authorization failure,
/// 404 for what does not exist, 409 for a conflict with the cluster's
/// state (a topic that exists, a group with members, another node's
/// partition), 429 for a quota, 503 for what a client would retry, 400
/// for the rest of what the request got wrong; 500 for the broker's own
/// failure.
pub fn status(code: i16) -> u16 {
    use ResponseError::*;
    match ResponseError::try_from_code(code) {
        Some(
            TopicAuthorizationFailed
            | GroupAuthorizationFailed
            | ClusterAuthorizationFailed
            | TransactionalIdAuthorizationFailed,
        ) => 403,
        Some(UnknownTopicOrPartition | GroupIdNotFound | UnknownTopicId) => 404,
        Some(
            TopicAlreadyExists | NonEmptyGroup | UnknownMemberId | IllegalGeneration
            | RebalanceInProgress | StaleMemberEpoch | FencedInstanceId | NotCoordinator
            | NotLeaderOrFollower | NotController,
        ) => 409,
        Some(ThrottlingQuotaExceeded) => 429,
        Some(
            CoordinatorNotAvailable
            | CoordinatorLoadInProgress
            | LeaderNotAvailable
            | RequestTimedOut
            | BrokerNotAvailable,
        ) => 503,
        Some(UnknownServerError) | None => 500,
        Some(_) => 400,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_errors_are_http_statuses_with_kafkas_names() {
        let answer = refusal(ResponseError::TopicAlreadyExists.code(), Some("exists"));
        assert_eq!(answer.status, 409);
        let body: serde_json::Value = serde_json::from_slice(&answer.body).expect("JSON");
        assert_eq!(body["error"], "TOPIC_ALREADY_EXISTS");
        assert_eq!(body["message"], "exists");
        assert_eq!(status(ResponseError::InvalidReplicationFactor.code()), 400);
        assert_eq!(status(ResponseError::TopicAuthorizationFailed.code()), 403);
        assert_eq!(status(ResponseError::NotCoordinator.code()), 409);
        assert_eq!(status(ResponseError::CoordinatorNotAvailable.code()), 503);
    }
}
