use std::collections::BTreeMap;

use super::*;
use crate::metadata::image::MetadataImage;

const KEYSTORE: &str = "listener.name.ssl.ssl.keystore.location";
const TRUSTSTORE: &str = "listener.name.ssl.ssl.truststore.location";

fn change(name: &str, ops: &[(&str, Option<&str>)], replace: bool) -> BrokerConfigChange {
    BrokerConfigChange {
        name: name.to_string(),
        ops: ops
            .iter()
            .map(|(key, value)| (key.to_string(), value.map(str::to_string)))
            .collect(),
        replace,
        validate_only: false,
    }
}

fn configs_after(records: &[MetadataRecord]) -> (BrokerConfigs, MetadataImage) {
    let mut image = MetadataImage::default();
    for record in records {
        image.apply(record).expect("applies");
    }
    (image.broker_configs(), image)
}

#[test]
fn listener_keys_are_the_reloadable_ssl_keys_under_a_listener_prefix() {
    assert_eq!(
        listener_ssl_key(KEYSTORE),
        Some(("SSL".to_string(), "ssl.keystore.location"))
    );
    assert_eq!(
        listener_ssl_key("listener.name.external.ssl.key.password"),
        Some(("EXTERNAL".to_string(), "ssl.key.password"))
    );
    assert_eq!(listener_ssl_key("ssl.keystore.location"), None);
    assert_eq!(listener_ssl_key("listener.name.ssl.ssl.client.auth"), None);
    assert_eq!(listener_ssl_key("listener.name.ssl"), None);
}

#[test]
fn the_checks_give_kafkas_messages() {
    assert_eq!(check_keys("1", &[KEYSTORE, TRUSTSTORE]), Ok(()));
    assert_eq!(check_keys("1", &[]), Ok(()));
    assert_eq!(check_keys(CLUSTER_DEFAULT, &[]), Ok(()));
    let error = check_keys("1", &["log.cleaner.backoff.ms", KEYSTORE]).unwrap_err();
    assert!(
        error.starts_with("Cannot update these configs dynamically: log.cleaner.backoff.ms. "),
        "{error}"
    );
    let error = check_keys("1", &["ssl.keystore.location"]).unwrap_err();
    assert_eq!(
        error,
        "These security configs can be dynamically updated only per-listener using the \
         listener prefix: ssl.keystore.location"
    );
    let error = check_keys(CLUSTER_DEFAULT, &[KEYSTORE]).unwrap_err();
    assert_eq!(
        error,
        format!(
            "Cannot update these configs at default cluster level, broker id must be specified: {KEYSTORE}"
        )
    );
}

#[test]
fn every_op_makes_a_record_even_when_nothing_changes() {
    let set = change("2", &[(KEYSTORE, Some("/a.pem"))], false);
    let records = alter(&BrokerConfigs::new(), std::slice::from_ref(&set));
    assert_eq!(records.len(), 1);
    let (configs, image) = configs_after(&records);
    assert_eq!(configs["2"][KEYSTORE], "/a.pem");
    assert_eq!(image.config_touches.of("2"), 1);
    // The same value again: a record all the same, which the broker
    // takes as a reload; the image is equal, the touches move on.
    let again = alter(&configs, &[set]);
    assert_eq!(again.len(), 1);
    let (configs_again, image_again) = configs_after(&[records, again].concat());
    assert_eq!(configs_again, configs);
    assert_eq!(image_again, image);
    assert_eq!(image_again.config_touches.of("2"), 2);
    assert_eq!(image_again.config_touches.of("3"), 0);
    // Validation alone commits nothing.
    let mut only = change("2", &[(KEYSTORE, Some("/b.pem"))], false);
    only.validate_only = true;
    assert!(alter(&configs, &[only]).is_empty());
}

#[test]
fn a_replacement_deletes_what_it_does_not_name() {
    let first = change(
        "1",
        &[(KEYSTORE, Some("/a.pem")), (TRUSTSTORE, Some("/ca.pem"))],
        false,
    );
    let records = alter(&BrokerConfigs::new(), &[first]);
    let (configs, _) = configs_after(&records);
    let replace = change("1", &[(KEYSTORE, Some("/b.pem"))], true);
    assert_eq!(
        replace.applied_to(&configs["1"]),
        BTreeMap::from([(KEYSTORE.to_string(), "/b.pem".to_string())])
    );
    let more = alter(&configs, &[replace]);
    let (after, _) = configs_after(&[records, more].concat());
    assert_eq!(
        after["1"],
        BTreeMap::from([(KEYSTORE.to_string(), "/b.pem".to_string())])
    );
    // An incremental delete leaves the rest; deleting the last key
    // leaves no resource.
    let delete = change("1", &[(KEYSTORE, None)], false);
    let (gone, _) = configs_after(&alter(&after, &[delete]));
    assert!(!gone.contains_key("1"));
}

#[test]
fn a_broker_takes_its_own_configs_over_the_default() {
    let configs = BrokerConfigs::from([
        (
            CLUSTER_DEFAULT.to_string(),
            BTreeMap::from([
                (KEYSTORE.to_string(), "/default.pem".to_string()),
                (TRUSTSTORE.to_string(), "/ca.pem".to_string()),
            ]),
        ),
        (
            "2".to_string(),
            BTreeMap::from([(KEYSTORE.to_string(), "/two.pem".to_string())]),
        ),
    ]);
    let two = effective(&configs, 2);
    assert_eq!(two[KEYSTORE], "/two.pem");
    assert_eq!(two[TRUSTSTORE], "/ca.pem");
    assert_eq!(effective(&configs, 1)[KEYSTORE], "/default.pem");
    assert!(effective(&BrokerConfigs::new(), 1).is_empty());
}

#[test]
fn a_snapshot_rebuilds_the_configs_and_counts_its_own_records() {
    let records = alter(
        &BrokerConfigs::new(),
        &[change("2", &[(KEYSTORE, Some("/a.pem"))], false)],
    );
    let (_, image) = configs_after(&records);
    let (rebuilt_configs, rebuilt) = configs_after(&image.snapshot_records());
    assert_eq!(rebuilt, image);
    assert_eq!(rebuilt_configs, image.broker_configs());
    assert_eq!(rebuilt.config_touches.of("2"), 1);
    assert_eq!(MetadataImage::default().config_touches.of("2"), 0);
}
