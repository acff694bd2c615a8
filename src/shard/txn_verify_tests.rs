//! The batching of verifications per coordinator node: one entry per
//! transactional id in a request (the same producer's verifications
//! merged, Kafka's rule between epochs), and each verification's answer
//! read back from the coordinator's response, a partition it does not
//! name left unverified.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{AddPartitionsToTxnResponse, TopicName, TransactionalId};
use kafka_protocol::protocol::StrBytes;

use super::*;

fn verification(id: &str, epoch: i16, add: bool, partitions: &[(&str, i32)]) -> Verification {
    Verification {
        transactional_id: id.to_string(),
        producer_id: 7,
        producer_epoch: epoch,
        add,
        partitions: partitions
            .iter()
            .map(|(topic, partition)| (topic.to_string(), *partition))
            .collect(),
    }
}

fn waiting(v: Verification) -> (Waiting, oneshot::Receiver<Verdicts>) {
    let (reply, answer) = oneshot::channel();
    (
        Waiting {
            verification: v,
            reply,
        },
        answer,
    )
}

fn answered(answer: &mut oneshot::Receiver<Verdicts>) -> Option<Verdicts> {
    answer.try_recv().ok().flatten()
}

#[test]
fn the_first_verification_for_a_node_starts_its_sender_and_the_rest_wait() {
    let verifier = TxnVerifier::default();
    let (a, mut a_answer) = waiting(verification("a", 1, false, &[("t", 0)]));
    let (b, _) = waiting(verification("b", 1, false, &[("t", 1)]));
    let (c, _) = waiting(verification("c", 1, false, &[("t", 2)]));
    assert!(verifier.join(2, a), "no request is out to node 2");
    assert!(!verifier.join(2, b), "joins node 2's batch");
    assert!(verifier.join(3, c), "node 3 has its own sender");
    let batch = verifier.take(2).expect("a and b wait");
    assert_eq!(batch.len(), 2);
    assert!(answered(&mut a_answer).is_none());
    assert!(verifier.take(2).is_none(), "nothing waits: node 2 idle");
    let (d, _) = waiting(verification("d", 1, false, &[("t", 3)]));
    assert!(verifier.join(2, d), "an idle node starts a sender again");
}

#[test]
fn one_id_is_one_transaction_in_the_request() {
    let verifier = TxnVerifier::default();
    let (a, _) = waiting(verification("a", 1, false, &[("t", 0), ("u", 1)]));
    let (again, _) = waiting(verification("a", 1, false, &[("t", 2), ("t", 0)]));
    let (b, _) = waiting(verification("b", 4, true, &[("t", 0)]));
    verifier.join(1, a);
    verifier.join(1, again);
    verifier.join(1, b);
    let batch = verifier.take(1).unwrap();
    assert_eq!(batch.len(), 3, "each keeps its own reply");
    let request = request_of(&batch);
    assert_eq!(request.transactions.len(), 2);
    let a = &request.transactions[0];
    assert_eq!(a.transactional_id.0.as_str(), "a");
    assert!(a.verify_only);
    let topics: Vec<(&str, Vec<i32>)> = a
        .topics
        .iter()
        .map(|t| (t.name.0.as_str(), t.partitions.clone()))
        .collect();
    assert_eq!(topics, vec![("t", vec![0, 2]), ("u", vec![1])]);
    let b = &request.transactions[1];
    assert!(!b.verify_only, "an add for transactions version 2");
    assert_eq!(b.producer_epoch, 4);
}

#[test]
fn a_newer_epoch_fences_the_waiting_one_and_an_older_is_fenced_at_once() {
    let verifier = TxnVerifier::default();
    let (old, mut old_answer) = waiting(verification("a", 1, false, &[("t", 0)]));
    let (new, mut new_answer) = waiting(verification("a", 2, false, &[("t", 1)]));
    let (stale, mut stale_answer) = waiting(verification("a", 1, false, &[("t", 2)]));
    verifier.join(1, old);
    verifier.join(1, new);
    assert_eq!(
        answered(&mut old_answer),
        Some(vec![Some(ResponseError::InvalidProducerEpoch)])
    );
    verifier.join(1, stale);
    assert_eq!(
        answered(&mut stale_answer),
        Some(vec![Some(ResponseError::InvalidProducerEpoch)])
    );
    let (retry, _) = waiting(verification("a", 2, true, &[("t", 1)]));
    verifier.join(1, retry);
    assert_eq!(
        answered(&mut new_answer),
        Some(vec![Some(ResponseError::NetworkException)]),
        "same epoch, another operation: the waiting one gives way"
    );
    assert_eq!(verifier.take(1).unwrap().len(), 1);
}

fn response(id: &str, codes: &[(&str, i32, i16)]) -> AddPartitionsToTxnResponse {
    let mut topics: Vec<AddPartitionsToTxnTopicResult> = Vec::new();
    for (topic, partition, code) in codes {
        let result = AddPartitionsToTxnPartitionResult::default()
            .with_partition_index(*partition)
            .with_partition_error_code(*code);
        match topics.iter_mut().find(|t| t.name.0.as_str() == *topic) {
            Some(t) => t.results_by_partition.push(result),
            None => topics.push(
                AddPartitionsToTxnTopicResult::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_results_by_partition(vec![result]),
            ),
        }
    }
    AddPartitionsToTxnResponse::default().with_results_by_transaction(vec![
        AddPartitionsToTxnResult::default()
            .with_transactional_id(TransactionalId(StrBytes::from_string(id.to_string())))
            .with_topic_results(topics),
    ])
}

#[test]
fn each_partition_reads_its_own_code_and_an_unnamed_one_is_not_verified() {
    let abortable = ResponseError::TransactionAbortable;
    let answer = response("a", &[("t", 0, 0), ("t", 2, abortable.code())]);
    let v = verification("a", 1, false, &[("t", 2), ("t", 0), ("t", 9)]);
    assert_eq!(
        verdicts(&v, &answer),
        vec![
            Some(abortable),
            None,
            Some(ResponseError::UnknownServerError)
        ]
    );
    let other = verification("b", 1, false, &[("t", 0)]);
    assert_eq!(
        verdicts(&other, &answer),
        vec![Some(ResponseError::UnknownServerError)]
    );
}

#[test]
fn a_top_level_error_answers_every_partition() {
    let v = verification("a", 1, false, &[("t", 0), ("t", 1)]);
    let refused = response("a", &[("t", 0, 0), ("t", 1, 0)])
        .with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    assert_eq!(
        verdicts(&v, &refused),
        vec![Some(ResponseError::InvalidTxnState); 2],
        "a producer never sees CLUSTER_AUTHORIZATION_FAILED"
    );
    let moved = response("a", &[]).with_error_code(ResponseError::NotCoordinator.code());
    assert_eq!(
        verdicts(&v, &moved),
        vec![Some(ResponseError::NotCoordinator); 2]
    );
}
