use super::*;
use crate::metadata::image::{ApplyError, MetadataImage};

fn entity(parts: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
    parts
        .iter()
        .map(|(entity_type, name)| (entity_type.to_string(), name.map(str::to_string)))
        .collect()
}

fn set(parts: &[(&str, Option<&str>)], ops: &[(&str, Option<f64>)]) -> QuotaAlteration {
    QuotaAlteration {
        entity: entity(parts),
        ops: ops
            .iter()
            .map(|(key, value)| (key.to_string(), *value))
            .collect(),
    }
}

/// Applies what `alterations` make of `image`'s quotas; the results.
fn alter_image(image: &mut MetadataImage, alterations: &[QuotaAlteration]) -> Vec<QuotaResult> {
    let (records, results) = alter(&image.quotas, alterations);
    for record in &records {
        image.apply(record).expect("apply");
    }
    results
}

fn message(result: &QuotaResult) -> &str {
    result.as_ref().map_or("", |(_, message)| message.as_str())
}

#[test]
fn quota_records_round_trip_with_kafkas_layout() {
    let record = MetadataRecord::ClientQuota(ClientQuotaRecord {
        entity: entity(&[("user", Some("alice")), ("client-id", None)]),
        key: PRODUCER_BYTE_RATE.to_string(),
        value: QuotaValue(1024.0),
        remove: false,
    });
    let bytes = record.encode();
    // Frame version 1, api key 14, version 0, two entity parts, "user".
    assert_eq!(&bytes[..4], &[1, 14, 0, 3]);
    assert_eq!(&bytes[4..9], b"\x05user");
    assert_eq!(MetadataRecord::decode(&bytes).expect("decode"), record);
    for cut in 0..bytes.len() {
        assert!(
            MetadataRecord::decode(&bytes[..cut]).is_err(),
            "cut at {cut}"
        );
    }
}

#[test]
fn the_image_sets_removes_and_rebuilds_quotas() {
    let mut image = MetadataImage::default();
    let results = alter_image(
        &mut image,
        &[
            set(
                &[("user", Some("alice"))],
                &[(PRODUCER_BYTE_RATE, Some(1024.0))],
            ),
            set(&[("ip", None)], &[(CONNECTION_CREATION_RATE, Some(5.0))]),
        ],
    );
    assert_eq!(results, vec![None, None]);
    let alice = QuotaEntity {
        user: Some(Some("alice".to_string())),
        ..QuotaEntity::default()
    };
    assert_eq!(image.quotas.get(&alice, PRODUCER_BYTE_RATE), Some(1024.0));
    assert!(image.quotas.has_key(CONNECTION_CREATION_RATE));
    assert!(!image.quotas.has_key(CONSUMER_BYTE_RATE));
    let rebuilt = MetadataImage::replay(&image.snapshot_records()).expect("replay");
    assert_eq!(rebuilt, image);
    // The same value again makes no record; a removal of what is not set
    // makes none either.
    let unchanged = set(
        &[("user", Some("alice"))],
        &[(PRODUCER_BYTE_RATE, Some(1024.0))],
    );
    let absent = set(&[("user", Some("alice"))], &[(CONSUMER_BYTE_RATE, None)]);
    assert!(alter(&image.quotas, &[unchanged, absent]).0.is_empty());
    let removal = set(&[("user", Some("alice"))], &[(PRODUCER_BYTE_RATE, None)]);
    assert_eq!(alter_image(&mut image, &[removal]), vec![None]);
    assert_eq!(image.quotas.get(&alice, PRODUCER_BYTE_RATE), None);
    assert!(!image.quotas.has_key(PRODUCER_BYTE_RATE));
    assert_eq!(image.quotas.entries().count(), 1, "alice has no quota left");
    let bad = MetadataRecord::ClientQuota(ClientQuotaRecord {
        entity: entity(&[("group", Some("g"))]),
        key: PRODUCER_BYTE_RATE.to_string(),
        value: QuotaValue(1.0),
        remove: false,
    });
    let before = image.clone();
    assert!(matches!(
        image.apply(&bad),
        Err(ApplyError::InvalidQuotaEntity(_))
    ));
    assert_eq!(image, before);
}

#[test]
fn entities_keys_and_values_are_checked_as_kafka_checks_them() {
    let cases: Vec<(QuotaAlteration, &str)> = vec![
        (set(&[], &[]), "Invalid empty client quota entity"),
        (
            set(&[("group", Some("g"))], &[]),
            "Unhandled client quota entity type: group",
        ),
        (
            set(&[("user", Some("a")), ("user", Some("b"))], &[]),
            "Invalid client quota entity, duplicate entity entry user",
        ),
        (set(&[("user", Some(""))], &[]), "Empty user not supported"),
        (
            set(&[("ip", None), ("user", None)], &[]),
            "Invalid quota entity combination, IP entity should not be combined with User or ClientId",
        ),
        (
            set(&[("ip", Some("not-an-ip"))], &[]),
            "not-an-ip is not a valid IP or resolvable host.",
        ),
        (
            set(&[("user", None)], &[("bogus", Some(1.0))]),
            "Invalid configuration key bogus",
        ),
        (
            set(&[("user", None)], &[(CONNECTION_CREATION_RATE, Some(1.0))]),
            "Invalid configuration key connection_creation_rate",
        ),
        (
            set(&[("ip", None)], &[(PRODUCER_BYTE_RATE, Some(1.0))]),
            "Invalid configuration key producer_byte_rate",
        ),
        (
            set(&[("client-id", None)], &[(CONSUMER_BYTE_RATE, Some(0.0))]),
            "Quota consumer_byte_rate must be greater than 0",
        ),
        (
            set(&[("client-id", None)], &[(PRODUCER_BYTE_RATE, Some(10.5))]),
            "producer_byte_rate cannot be a fractional value.",
        ),
        (
            set(&[("ip", None)], &[(CONNECTION_CREATION_RATE, Some(3e9))]),
            "Proposed value for connection_creation_rate is too large for an INT.",
        ),
        (
            set(
                &[("user", None)],
                &[(REQUEST_PERCENTAGE, Some(1.0)), (REQUEST_PERCENTAGE, None)],
            ),
            "Duplicate quota key request_percentage not updating quota for this entity",
        ),
    ];
    for (alteration, expected) in cases {
        let (records, results) = alter(&ClientQuotas::default(), std::slice::from_ref(&alteration));
        assert!(records.is_empty(), "{alteration:?}");
        let (error, text) = results[0].clone().expect("refused");
        assert_eq!(error, ResponseError::InvalidRequest, "{alteration:?}");
        assert!(text.starts_with(expected), "{text} is not {expected}");
    }
    // A fractional request percentage and a controller mutation rate are
    // doubles; an entity with an error does not stop the others.
    let good = set(
        &[("user", Some("a")), ("client-id", Some("c"))],
        &[
            (REQUEST_PERCENTAGE, Some(12.5)),
            (CONTROLLER_MUTATION_RATE, Some(0.5)),
        ],
    );
    let bad = set(&[("user", Some("b"))], &[(PRODUCER_BYTE_RATE, Some(-1.0))]);
    let (records, results) = alter(&ClientQuotas::default(), &[good, bad]);
    assert_eq!(records.len(), 2);
    assert_eq!(results[0], None);
    assert_eq!(
        message(&results[1]),
        "Quota producer_byte_rate must be greater than 0"
    );
}

#[test]
fn an_entity_named_twice_is_refused_both_times() {
    let once = set(&[("user", Some("a"))], &[(PRODUCER_BYTE_RATE, Some(1.0))]);
    let twice = set(&[("user", Some("a"))], &[(CONSUMER_BYTE_RATE, Some(1.0))]);
    let other = set(&[("user", Some("b"))], &[(CONSUMER_BYTE_RATE, Some(1.0))]);
    let (records, results) = alter(&ClientQuotas::default(), &[once, twice, other]);
    assert_eq!(records.len(), 1, "only b's");
    assert!(message(&results[0]).starts_with("Ignoring duplicate entity"));
    assert!(message(&results[1]).starts_with("Ignoring duplicate entity"));
    assert_eq!(results[2], None);
}

fn component(entity_type: &str, match_type: i8, matched: Option<&str>) -> FilterComponent {
    FilterComponent {
        entity_type: entity_type.to_string(),
        match_type,
        matched: matched.map(str::to_string),
    }
}

/// The entities `describe` matches, as their (type, name) parts.
fn described(
    quotas: &ClientQuotas,
    components: &[FilterComponent],
    strict: bool,
) -> Vec<Vec<(&'static str, Option<String>)>> {
    describe(quotas, components, strict)
        .expect("describe")
        .into_iter()
        .map(|(entity, _)| {
            entity
                .parts()
                .into_iter()
                .map(|(entity_type, name)| (entity_type, name.map(str::to_string)))
                .collect()
        })
        .collect()
}

#[test]
fn describe_matches_exact_default_and_specified_strictly_or_not() {
    let mut image = MetadataImage::default();
    let rate = |parts: &[(&str, Option<&str>)]| set(parts, &[(PRODUCER_BYTE_RATE, Some(1.0))]);
    let results = alter_image(
        &mut image,
        &[
            rate(&[("user", Some("alice"))]),
            rate(&[("user", Some("alice")), ("client-id", Some("app"))]),
            rate(&[("user", None)]),
            rate(&[("client-id", Some("app"))]),
        ],
    );
    assert!(results.iter().all(Option::is_none));
    let quotas = &image.quotas;
    let alice = || ("user", Some("alice".to_string()));
    let app = || ("client-id", Some("app".to_string()));
    let exact_alice = [component("user", MATCH_TYPE_EXACT, Some("alice"))];
    assert_eq!(described(quotas, &exact_alice, true), vec![vec![alice()]]);
    assert_eq!(
        described(quotas, &exact_alice, false),
        vec![vec![alice()], vec![alice(), app()]]
    );
    let default_user = [component("user", MATCH_TYPE_DEFAULT, None)];
    assert_eq!(
        described(quotas, &default_user, false),
        vec![vec![("user", None)]]
    );
    let any_client = [component("client-id", MATCH_TYPE_SPECIFIED, None)];
    // In entity order: no user before a user.
    assert_eq!(
        described(quotas, &any_client, false),
        vec![vec![app()], vec![alice(), app()]]
    );
    assert_eq!(described(quotas, &any_client, true), vec![vec![app()]]);
    assert_eq!(described(quotas, &[], false).len(), 4, "no filter: all");
    assert!(described(quotas, &[], true).is_empty());
}

#[test]
fn describe_refuses_bad_filters_as_kafka_does() {
    let quotas = ClientQuotas::default();
    let cases = [
        (
            vec![component("", 0, Some("a"))],
            ResponseError::InvalidRequest,
        ),
        (
            vec![component("user", 2, None), component("user", 0, Some("a"))],
            ResponseError::InvalidRequest,
        ),
        (
            vec![component("group", 2, None)],
            ResponseError::UnsupportedVersion,
        ),
        (
            vec![component("user", MATCH_TYPE_EXACT, None)],
            ResponseError::InvalidRequest,
        ),
        (
            vec![component("user", MATCH_TYPE_DEFAULT, Some("a"))],
            ResponseError::InvalidRequest,
        ),
        (
            vec![component("user", MATCH_TYPE_SPECIFIED, Some("a"))],
            ResponseError::InvalidRequest,
        ),
        (
            vec![component("user", 7, None)],
            ResponseError::InvalidRequest,
        ),
        (
            vec![component("ip", 2, None), component("client-id", 2, None)],
            ResponseError::InvalidRequest,
        ),
    ];
    for (components, expected) in cases {
        let error = describe(&quotas, &components, false).expect_err("refused");
        assert_eq!(error.0, expected, "{components:?}");
    }
}
