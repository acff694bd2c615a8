use super::*;

const PLAIN_JAAS: &str = r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="a" user_admin="a" user_alice="b\"c";"#;

#[test]
fn a_plain_jaas_entry_gives_its_users() {
    let jaas = parse_jaas("k", PLAIN_JAAS).unwrap();
    assert_eq!(jaas.login_module, PLAIN_LOGIN_MODULE);
    let users = jaas.plain_users();
    assert_eq!(users.len(), 2);
    assert_eq!(users["admin"], "a");
    assert_eq!(users["alice"], "b\"c");
    assert_eq!(jaas.options["username"], "admin");
    let shown = format!("{jaas:?}");
    assert!(
        !shown.contains("b\\\"c") && !shown.contains("\"a\""),
        "{shown}"
    );
}

#[test]
fn jaas_syntax_errors_name_the_key_and_never_the_text() {
    for text in [
        "org.Foo required user_a=\"x\"",
        "org.Foo;",
        "org.Foo always user_a=\"x\";",
        "org.Foo required user_a=\"secret;",
        "org.Foo required =\"secret\";",
    ] {
        let error = parse_jaas("the.key", text).unwrap_err().0;
        assert!(error.starts_with("the.key: invalid JAAS"), "{error}");
        assert!(!error.contains("secret"), "{error}");
    }
    let bare = parse_jaas("k", "org.Foo optional a=b  c=\"d e\" ;").unwrap();
    assert_eq!(bare.options["a"], "b");
    assert_eq!(bare.options["c"], "d e");
}

#[test]
fn keys_are_kafkas_and_unserved_mechanisms_are_refused_by_name() {
    let mut config = SaslConfig::default();
    assert!(config
        .set("sasl.enabled.mechanisms", "PLAIN, SCRAM-SHA-512")
        .unwrap());
    assert_eq!(
        config.mechanisms_of("SASL_PLAINTEXT"),
        [SaslMechanism::Plain, SaslMechanism::ScramSha512]
    );
    let error = config
        .set("sasl.enabled.mechanisms", "GSSAPI")
        .unwrap_err()
        .0;
    assert!(
        error.contains("shoal does not serve SASL/GSSAPI"),
        "{error}"
    );
    assert!(config
        .set(
            "listener.name.sasl_plaintext.plain.sasl.jaas.config",
            PLAIN_JAAS
        )
        .unwrap());
    assert_eq!(config.plain_users("SASL_PLAINTEXT")["alice"], "b\"c");
    assert!(config
        .set(
            "listener.name.other.sasl.enabled.mechanisms",
            "SCRAM-SHA-256"
        )
        .unwrap());
    assert_eq!(config.mechanisms_of("OTHER"), [SaslMechanism::ScramSha256]);
    assert!(!config
        .set("listener.name.x.ssl.keystore.location", "f")
        .unwrap());
    assert!(!config.set("log.dirs", "x").unwrap());
    assert!(config
        .set("listener.name.x.gssapi.sasl.jaas.config", "a required;")
        .is_err());
    assert!(config.set("connections.max.reauth.ms", "0").unwrap());
    let error = config
        .set("connections.max.reauth.ms", "3600000")
        .unwrap_err()
        .0;
    assert!(error.contains("not built in shoal yet"), "{error}");
    assert!(is_sensitive(
        "listener.name.sasl_plaintext.plain.sasl.jaas.config"
    ));
}

#[test]
fn a_sasl_listener_needs_mechanisms_and_plain_its_users() {
    let mut config = SaslConfig::default();
    let error = config.check_listener("SASL_PLAINTEXT").unwrap_err().0;
    assert!(error.contains("GSSAPI is not served"), "{error}");
    config.set("sasl.enabled.mechanisms", "PLAIN").unwrap();
    let error = config.check_listener("SASL_PLAINTEXT").unwrap_err().0;
    assert!(error.contains("listener.name.sasl_plaintext.plain.sasl.jaas.config is not set"));
    config
        .set(
            "listener.name.sasl_plaintext.plain.sasl.jaas.config",
            "org.Other required user_a=\"b\";",
        )
        .unwrap();
    let error = config.check_listener("SASL_PLAINTEXT").unwrap_err().0;
    assert!(error.contains("the login module must be"), "{error}");
    config
        .set(
            "listener.name.sasl_plaintext.plain.sasl.jaas.config",
            PLAIN_JAAS,
        )
        .unwrap();
    config.check_listener("SASL_PLAINTEXT").unwrap();
    config
        .set("sasl.enabled.mechanisms", "SCRAM-SHA-256,SCRAM-SHA-512")
        .unwrap();
    config.check_listener("SASL_PLAINTEXT").unwrap();
    assert_eq!(
        SaslMechanism::from_scram_type(2),
        Some(SaslMechanism::ScramSha512)
    );
    assert_eq!(SaslMechanism::from_scram_type(0), None);
}
