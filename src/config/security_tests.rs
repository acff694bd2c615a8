use super::*;

fn config(pairs: &[(&str, &str)]) -> SecurityConfig {
    let mut config = SecurityConfig::default();
    for (key, value) in pairs {
        assert!(config.set(key, value).unwrap(), "{key}");
    }
    config
}

#[test]
fn a_pem_keystore_file_with_kafkas_defaults() {
    let config = config(&[
        ("ssl.keystore.type", "PEM"),
        ("ssl.keystore.location", "/etc/shoal/server.pem"),
    ]);
    let ssl = config.ssl("SSL").unwrap();
    let file = PemSource::File("/etc/shoal/server.pem".into());
    assert_eq!(ssl.keystore, (file.clone(), file));
    assert_eq!(ssl.client_auth, ClientAuth::None);
    assert_eq!(ssl.enabled_protocols, ["TLSv1.2", "TLSv1.3"]);
    assert_eq!(ssl.principal_mapping_rules, "DEFAULT");
    assert!(ssl.cipher_suites.is_empty() && ssl.truststore.is_none());
}

#[test]
fn a_listener_override_wins_over_the_global_key() {
    let config = config(&[
        ("ssl.keystore.type", "PEM"),
        ("ssl.keystore.location", "/global.pem"),
        (
            "listener.name.internal.ssl.keystore.location",
            "/internal.pem",
        ),
        ("listener.name.internal.ssl.client.auth", "required"),
        ("ssl.truststore.type", "PEM"),
        ("ssl.truststore.certificates", "-----BEGIN CERTIFICATE-----"),
    ]);
    let internal = config.ssl("INTERNAL").unwrap();
    assert_eq!(internal.keystore.0, PemSource::File("/internal.pem".into()));
    assert_eq!(internal.client_auth, ClientAuth::Required);
    let other = config.ssl("SSL").unwrap();
    assert_eq!(other.keystore.0, PemSource::File("/global.pem".into()));
    assert_eq!(other.client_auth, ClientAuth::None);
    assert_eq!(
        config.overridden_listeners().collect::<Vec<_>>(),
        ["INTERNAL"]
    );
}

#[test]
fn what_shoal_cannot_read_is_refused_with_the_reason() {
    let error = |pairs: &[(&str, &str)]| config(pairs).ssl("SSL").unwrap_err().0;
    assert!(error(&[("ssl.keystore.location", "/k.jks")])
        .contains("ssl.keystore.type=JKS is not supported"));
    assert!(error(&[
        ("ssl.keystore.type", "PKCS12"),
        ("ssl.keystore.location", "/k.p12")
    ])
    .contains("PEM files only"));
    assert!(error(&[("ssl.keystore.type", "PEM")]).contains("needs ssl.keystore.location"));
    assert!(error(&[
        ("ssl.keystore.type", "PEM"),
        ("ssl.keystore.location", "/k.pem"),
        ("ssl.keystore.password", "secret"),
    ])
    .contains("only key password"));
    assert!(error(&[
        ("ssl.keystore.type", "PEM"),
        ("ssl.keystore.location", "/k.pem"),
        ("ssl.client.auth", "required"),
    ])
    .contains("needs a truststore"));
    let mut config = SecurityConfig::default();
    assert!(config
        .set("ssl.enabled.protocols", "TLSv1.1,TLSv1.2")
        .is_err());
    assert!(config.set("ssl.client.auth", "sometimes").is_err());
    assert!(config.set("ssl.protocol", "SSLv3").is_err());
    assert!(!config.set("ssl.unknown", "x").unwrap());
    assert!(!config
        .set("listener.name.ssl.sasl.enabled.mechanisms", "PLAIN")
        .unwrap());
}
