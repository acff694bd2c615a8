use super::*;
use crate::metadata::image::{ApplyError, MetadataImage};
use crate::security::sasl::scram::credential_from_password;

const SHA256: i8 = 1;
const SHA512: i8 = 2;

fn credential(password: &str) -> ScramCredential {
    credential_from_password(SaslMechanism::ScramSha512, password, b"salt-salt", 4096)
}

fn upsert(name: &str, mechanism: i8, iterations: i32) -> ScramChange {
    ScramChange::Upsert {
        name: name.to_string(),
        mechanism,
        iterations,
        salt: b"salt-salt".to_vec(),
        salted_password: vec![7; 64],
    }
}

fn delete(name: &str, mechanism: i8) -> ScramChange {
    ScramChange::Delete {
        name: name.to_string(),
        mechanism,
    }
}

#[test]
fn credential_records_round_trip_and_have_kafkas_layout() {
    let record = MetadataRecord::UserScramCredential(UserScramCredentialRecord {
        name: "alice".to_string(),
        mechanism: SHA512,
        credential: credential("alice-secret"),
    });
    let bytes = record.encode();
    // Frame version 1, api key 11, version 0, then the compact name.
    assert_eq!(&bytes[..4], &[1, 11, 0, 6]);
    assert_eq!(&bytes[4..9], b"alice");
    assert_eq!(bytes[9], SHA512 as u8);
    assert_eq!(MetadataRecord::decode(&bytes).unwrap(), record);
    let removal = MetadataRecord::RemoveUserScramCredential(RemoveUserScramCredentialRecord {
        name: "alice".to_string(),
        mechanism: SHA256,
    });
    let bytes = removal.encode();
    assert_eq!(&bytes[..3], &[1, 22, 0]);
    assert_eq!(MetadataRecord::decode(&bytes).unwrap(), removal);
    for cut in 0..bytes.len() {
        assert!(
            MetadataRecord::decode(&bytes[..cut]).is_err(),
            "cut at {cut}"
        );
    }
}

#[test]
fn the_image_keeps_credentials_across_a_snapshot_and_refuses_unknown_removals() {
    let mut image = MetadataImage::default();
    let (records, results) = alter(
        &image.scram,
        &[upsert("alice", SHA512, 4096), upsert("bob", SHA256, 8192)],
    );
    assert!(
        results.iter().all(|(_, error)| error.is_none()),
        "{results:?}"
    );
    for record in &records {
        image.apply(record).unwrap();
    }
    assert!(image
        .scram
        .get("alice", SaslMechanism::ScramSha512)
        .is_some());
    assert!(image
        .scram
        .get("alice", SaslMechanism::ScramSha256)
        .is_none());
    assert_eq!(image.scram.users()["bob"], vec![(SHA256, 8192)]);
    let rebuilt = MetadataImage::replay(&image.snapshot_records()).unwrap();
    assert_eq!(rebuilt, image);
    let missing = MetadataRecord::RemoveUserScramCredential(RemoveUserScramCredentialRecord {
        name: "carol".to_string(),
        mechanism: SHA256,
    });
    let before = image.clone();
    assert_eq!(
        image.apply(&missing),
        Err(ApplyError::UnknownScramCredential {
            name: "carol".to_string(),
            mechanism: SHA256
        })
    );
    assert_eq!(image, before);
    let (records, _) = alter(&image.scram, &[delete("alice", SHA512)]);
    image.apply(&records[0]).unwrap();
    assert!(image
        .scram
        .get("alice", SaslMechanism::ScramSha512)
        .is_none());
}

#[test]
fn a_salted_password_is_stored_as_kafka_stores_it() {
    let salted = crate::security::sasl::scram::salted_password(
        SaslMechanism::ScramSha512,
        b"alice-secret",
        b"salt-salt",
        4096,
    );
    let change = ScramChange::Upsert {
        name: "alice".to_string(),
        mechanism: SHA512,
        iterations: 4096,
        salt: b"salt-salt".to_vec(),
        salted_password: salted,
    };
    let (records, _) = alter(&ScramCredentials::default(), &[change]);
    let MetadataRecord::UserScramCredential(record) = &records[0] else {
        panic!("{records:?}");
    };
    assert_eq!(record.credential, credential("alice-secret"));
}

#[test]
fn bad_changes_get_kafkas_errors() {
    let error = |results: &[ScramResult], name: &str| {
        results
            .iter()
            .find(|(user, _)| user == name)
            .and_then(|(_, error)| error.clone())
    };
    let (records, results) = alter(
        &ScramCredentials::default(),
        &[
            upsert("few", SHA256, 4095),
            upsert("many", SHA256, 16_385),
            upsert("odd", 3, 4096),
            upsert("", SHA256, 4096),
            delete("nobody", SHA256),
            upsert("twice", SHA256, 4096),
            upsert("twice", SHA512, 4096),
            delete("both", SHA256),
            upsert("both", SHA256, 4096),
            upsert("fine", SHA512, 16_384),
        ],
    );
    let expect = |name: &str, code: ResponseError, message: &str| {
        assert_eq!(
            error(&results, name),
            Some((code, message.to_string())),
            "{name}"
        );
    };
    expect(
        "few",
        ResponseError::UnacceptableCredential,
        "Too few iterations",
    );
    expect(
        "many",
        ResponseError::UnacceptableCredential,
        "Too many iterations",
    );
    expect(
        "odd",
        ResponseError::UnsupportedSaslMechanism,
        "Unknown SCRAM mechanism",
    );
    expect(
        "",
        ResponseError::UnacceptableCredential,
        "Username must not be empty",
    );
    expect(
        "nobody",
        ResponseError::ResourceNotFound,
        "Attempt to delete a user credential that does not exist",
    );
    let twice = "A user credential cannot be altered twice in the same request";
    expect("twice", ResponseError::DuplicateResource, twice);
    // The deletion of a missing credential fails first, as in Kafka.
    assert!(error(&results, "both").is_some());
    assert_eq!(error(&results, "fine"), None);
    assert_eq!(results.len(), 8, "{results:?}");
    assert_eq!(records.len(), 1, "only the good change is recorded");
}
