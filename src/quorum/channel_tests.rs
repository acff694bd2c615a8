//! The controller channel against real CONTROLLER listeners (the
//! transport with a hook) on loopback: it finds the voter that answers as
//! the controller past one that refuses and one that is down, keeps it,
//! and gives up within its time when none answers.

use std::net::TcpListener as StdListener;
use std::rc::Rc;
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, BrokerHeartbeatRequest, BrokerHeartbeatResponse};

use super::channel::{ChannelConfig, ChannelError, ControllerChannel};
use super::describe::QuorumStatus;
use super::transport::{
    decode_body, ControllerRequest, ControllerService, StatusFn, Transport, TransportConfig,
};
use crate::config::Voter;
use crate::protocol::frame;
use crate::shard::block_on;

/// A hook answering BrokerHeartbeat with `error` and the broker epoch
/// echoed back as `throttle_time_ms`.
fn answering(error: ResponseError) -> ControllerService {
    ControllerService {
        apis: Rc::new(move |request: ControllerRequest| {
            Box::pin(async move {
                let ControllerRequest {
                    header,
                    api_key,
                    version,
                    mut body,
                } = request;
                let heartbeat: BrokerHeartbeatRequest = decode_body(&mut body, api_key, version)?;
                let answer = BrokerHeartbeatResponse::default()
                    .with_error_code(if error == ResponseError::UnknownServerError {
                        0
                    } else {
                        error.code()
                    })
                    .with_throttle_time_ms(heartbeat.broker_epoch as i32);
                frame::encode_response(&header, version, &answer)
            })
        }),
        versions: &[(ApiKey::BrokerHeartbeat, 0, 1)],
        authorize: crate::quorum::authorize::allow_all(),
    }
}

fn transport(
    voters: &[Voter],
    id: i32,
    listener: StdListener,
    service: ControllerService,
) -> Transport {
    let config = TransportConfig {
        local_id: id,
        cluster_id: "c".to_string(),
        listener_name: "CONTROLLER".to_string(),
        voters: voters.to_vec(),
        gate: Default::default(),
        peers: Default::default(),
    };
    let status: StatusFn = Rc::new(move || QuorumStatus {
        local_id: id,
        leader_id: -1,
        epoch: 0,
        high_watermark: -1,
        voters: Vec::new(),
        observers: Vec::new(),
    });
    Transport::start(config, listener, status, service)
        .expect("transport")
        .0
}

fn voter(id: i32, listener: &StdListener) -> Voter {
    Voter {
        id,
        host: "127.0.0.1".to_string(),
        port: listener.local_addr().expect("address").port(),
    }
}

#[test]
fn the_channel_finds_the_controller_past_a_refusal_and_a_dead_voter() {
    block_on(|| async {
        let listeners: Vec<StdListener> = (0..3)
            .map(|_| StdListener::bind("127.0.0.1:0").expect("bind"))
            .collect();
        let voters: Vec<Voter> = listeners
            .iter()
            .enumerate()
            .map(|(at, listener)| voter(at as i32 + 1, listener))
            .collect();
        let mut listeners = listeners.into_iter();
        let one = listeners.next().expect("1");
        let dead = listeners.next().expect("2");
        let three = listeners.next().expect("3");
        drop(dead);
        let _refusing = transport(&voters, 1, one, answering(ResponseError::NotController));
        let _controller = transport(
            &voters,
            3,
            three,
            answering(ResponseError::UnknownServerError),
        );
        let config = ChannelConfig {
            client_id: "broker-9".to_string(),
            voters: voters.clone(),
            request_timeout_ms: 10_000,
            security: Default::default(),
        };
        let channel = ControllerChannel::new(config, Rc::new(|| None));
        let request = BrokerHeartbeatRequest::default().with_broker_epoch(7);
        let answer = channel.call(request.clone(), 1).await.expect("an answer");
        assert_eq!((answer.error_code, answer.throttle_time_ms), (0, 7));
        assert_eq!(channel.controller_id(), Some(3));
        // Kept: the next call goes straight to voter 3.
        let answer = channel
            .call(request.with_broker_epoch(8), 0)
            .await
            .expect("an answer");
        assert_eq!(answer.throttle_time_ms, 8);
        assert_eq!(channel.controller_id(), Some(3));
    });
}

#[test]
fn a_call_no_controller_answers_times_out_within_its_time() {
    block_on(|| async {
        let listener = StdListener::bind("127.0.0.1:0").expect("bind");
        let voters = vec![voter(1, &listener)];
        let _refusing = transport(
            &voters,
            1,
            listener,
            answering(ResponseError::NotController),
        );
        let config = ChannelConfig {
            client_id: "broker-9".to_string(),
            voters,
            request_timeout_ms: 500,
            security: Default::default(),
        };
        // The leader hint names the refusing voter: it is asked again and
        // again until the time runs out.
        let channel = ControllerChannel::new(config, Rc::new(|| Some(1)));
        let started = Instant::now();
        let refused = channel.call(BrokerHeartbeatRequest::default(), 1).await;
        assert_eq!(
            refused,
            Err(ChannelError::TimedOut("NOT_CONTROLLER".to_string()))
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(channel.controller_id(), None);
    });
}
