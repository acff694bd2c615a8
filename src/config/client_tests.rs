use std::path::PathBuf;

use super::*;

const SCRAM_JAAS: &str = r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" password="alice-secret";"#;

fn parse(text: &str) -> Result<ClientSecurity, String> {
    ClientSecurity::from_properties(text).map_err(|error| error.0)
}

#[test]
fn a_kafka_client_config_for_sasl_ssl_is_read() {
    let text = format!(
        "# the tools' config\nsecurity.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n\
         sasl.jaas.config={SCRAM_JAAS}\nssl.truststore.type=PEM\n\
         ssl.truststore.location=/etc/ca.pem\nclient.id=ignored\n"
    );
    let security = parse(&text).unwrap();
    let tls = security.tls.unwrap();
    assert_eq!(
        tls.truststore,
        PemSource::File(PathBuf::from("/etc/ca.pem"))
    );
    assert_eq!(tls.keystore, None);
    assert!(tls.endpoint_identification, "https is Kafka's default");
    assert_eq!(tls.enabled_protocols, ["TLSv1.2", "TLSv1.3"]);
    let sasl = security.sasl.unwrap();
    assert_eq!(sasl.mechanism, SaslMechanism::ScramSha512);
    assert_eq!(sasl.credentials.user, "alice");
    assert_eq!(sasl.credentials.password, "alice-secret");
    assert!(!format!("{sasl:?}").contains("alice-secret"));
}

#[test]
fn plain_over_plaintext_with_a_continued_line_and_mutual_tls() {
    let text = "security.protocol=sasl_plaintext\nsasl.mechanism=PLAIN\n\
        sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required \\\n  \
        username=\"bob\" password=\"pw\";\n";
    let security = parse(text).unwrap();
    assert_eq!(security.tls, None);
    let sasl = security.sasl.unwrap();
    assert_eq!(sasl.mechanism, SaslMechanism::Plain);
    assert_eq!(sasl.credentials.user, "bob");

    let text = "security.protocol=SSL\nssl.truststore.type=PEM\nssl.truststore.location=/ca.pem\n\
        ssl.keystore.type=PEM\nssl.keystore.location=/me.pem\n\
        ssl.endpoint.identification.algorithm=\n";
    let tls = parse(text).unwrap().tls.unwrap();
    let me = PemSource::File(PathBuf::from("/me.pem"));
    assert_eq!(tls.keystore, Some((me.clone(), me)));
    assert!(!tls.endpoint_identification, "empty turns the check off");
    assert!(parse("").unwrap().is_plaintext());
    assert!(parse("security.protocol=PLAINTEXT").unwrap().is_plaintext());
}

#[test]
fn what_shoal_cannot_speak_is_refused_with_the_reason() {
    let refused = |text: &str, reason: &str| {
        let error = parse(text).unwrap_err();
        assert!(error.contains(reason), "{text:?}: {error}");
    };
    refused("security.protocol=SASL_SSL\nssl.truststore.type=PEM\nssl.truststore.location=/ca\nsasl.jaas.config=x required username=\"a\" password=\"b\";", "GSSAPI");
    refused(
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN",
        "sasl.jaas.config",
    );
    refused("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=OAUTHBEARER\nsasl.jaas.config=x required;", "OAUTHBEARER");
    refused("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\nsasl.jaas.config=x required username=\"a\";", "password");
    refused("security.protocol=SSL", "ssl.truststore");
    refused(
        "security.protocol=SSL\nssl.truststore.location=/ca.pem",
        "PEM",
    );
    refused("security.protocol=TLS", "security.protocol=TLS");
    refused("security.protocol=SSL\nssl.truststore.type=PEM\nssl.truststore.location=/ca\nssl.endpoint.identification.algorithm=ldap", "https");
    refused("no value here", "line 1");
}

#[test]
fn the_inter_broker_login_comes_from_the_listeners_jaas_entry() {
    let mut config = BrokerConfig::new(PathBuf::from("/tmp/x"), 1);
    let keys = [
        (
            "listeners",
            "BROKER://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
        ),
        (
            "listener.security.protocol.map",
            "BROKER:SASL_SSL,CONTROLLER:PLAINTEXT",
        ),
        ("controller.listener.names", "CONTROLLER"),
        ("inter.broker.listener.name", "BROKER"),
        ("sasl.enabled.mechanisms", "SCRAM-SHA-512"),
        ("sasl.mechanism.inter.broker.protocol", "SCRAM-SHA-512"),
        (
            "listener.name.broker.scram-sha-512.sasl.jaas.config",
            r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="broker-secret";"#,
        ),
        ("ssl.keystore.type", "PEM"),
        ("ssl.keystore.location", "/server.pem"),
        ("ssl.truststore.type", "PEM"),
        ("ssl.truststore.location", "/ca.pem"),
        (
            "listener.name.broker.ssl.endpoint.identification.algorithm",
            "",
        ),
    ];
    for (key, value) in keys {
        config.set(key, value).unwrap();
    }
    let security = ClientSecurity::inter_broker(&config).unwrap();
    let sasl = security.sasl.unwrap();
    assert_eq!(sasl.mechanism, SaslMechanism::ScramSha512);
    assert_eq!(sasl.credentials.user, "broker");
    let tls = security.tls.unwrap();
    assert_eq!(tls.truststore, PemSource::File(PathBuf::from("/ca.pem")));
    assert!(!tls.endpoint_identification);
    // As Kafka's brokers, the listener's keystore is also the client's
    // certificate (mutual TLS between brokers).
    assert_eq!(
        tls.keystore.as_ref().map(|(key, _)| key),
        Some(&PemSource::File(PathBuf::from("/server.pem")))
    );

    config
        .set("sasl.mechanism.inter.broker.protocol", "PLAIN")
        .unwrap();
    let error = ClientSecurity::inter_broker(&config).unwrap_err().0;
    assert!(
        error.contains("listener.name.broker.plain.sasl.jaas.config"),
        "{error}"
    );
}

#[test]
fn the_controller_login_is_plain_from_the_controller_listeners_jaas_entry() {
    let mut config = BrokerConfig::new(PathBuf::from("/tmp/x"), 1);
    let keys = [
        (
            "listeners",
            "BROKER://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
        ),
        (
            "listener.security.protocol.map",
            "BROKER:PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
        ),
        ("controller.listener.names", "CONTROLLER"),
        ("sasl.mechanism.controller.protocol", "PLAIN"),
        (
            "listener.name.controller.plain.sasl.jaas.config",
            r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="ctl" password="ctl-secret" user_ctl="ctl-secret";"#,
        ),
    ];
    for (key, value) in keys {
        config.set(key, value).unwrap();
    }
    let security = ClientSecurity::controller(&config).unwrap();
    assert_eq!(security.tls, None);
    let sasl = security.sasl.unwrap();
    assert_eq!(sasl.mechanism, SaslMechanism::Plain);
    assert_eq!(sasl.credentials.user, "ctl");
    config
        .set("sasl.mechanism.controller.protocol", "SCRAM-SHA-512")
        .unwrap();
    let error = ClientSecurity::controller(&config).unwrap_err().0;
    assert!(error.contains("use PLAIN"), "{error}");
    config
        .set(
            "listener.security.protocol.map",
            "BROKER:PLAINTEXT,CONTROLLER:PLAINTEXT",
        )
        .unwrap();
    assert!(ClientSecurity::controller(&config).unwrap().is_plaintext());
}
