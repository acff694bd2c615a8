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
    assert!(config.set("connections.max.reauth.ms", "-1").is_err());
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

#[test]
fn reauth_ms_is_per_mechanism_then_listener_then_global() {
    let mut config = SaslConfig::default();
    assert_eq!(config.max_reauth_ms("X", SaslMechanism::Plain), 0);
    config.set("connections.max.reauth.ms", "60000").unwrap();
    config
        .set("listener.name.x.connections.max.reauth.ms", "5000")
        .unwrap();
    config
        .set(
            "listener.name.x.oauthbearer.connections.max.reauth.ms",
            "3000",
        )
        .unwrap();
    assert_eq!(config.max_reauth_ms("X", SaslMechanism::OAuthBearer), 3000);
    assert_eq!(config.max_reauth_ms("X", SaslMechanism::Plain), 5000);
    assert_eq!(config.max_reauth_ms("Y", SaslMechanism::Plain), 60000);
    assert!(config
        .set("listener.name.x.gssapi.connections.max.reauth.ms", "1")
        .is_err());
}

const OAUTH_JAAS: &str = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub=\"admin\" unsecuredValidatorRequiredScope=\"a b\" unsecuredValidatorAllowableClockSkewMs=\"500\";";

fn oauth_config(extra: &[(&str, &str)]) -> SaslConfig {
    let mut config = SaslConfig::default();
    config
        .set("sasl.enabled.mechanisms", "OAUTHBEARER")
        .unwrap();
    config
        .set("listener.name.x.oauthbearer.sasl.jaas.config", OAUTH_JAAS)
        .unwrap();
    for (key, value) in extra {
        config.set(key, value).unwrap();
    }
    config
}

#[test]
fn oauthbearer_validates_unsecured_without_a_jwks_url() {
    let config = oauth_config(&[]);
    config.check_listener("X").unwrap();
    let Some(OAuthValidatorConfig::Unsecured(options)) = config.oauth_validator("X") else {
        panic!("{:?}", config.oauth_validator("X"));
    };
    assert_eq!(options.principal_claim_name, "sub");
    assert_eq!(options.required_scope, ["a", "b"]);
    assert_eq!(options.allowable_clock_skew_ms, 500);
    // Without its JAAS entry the listener is refused.
    let mut bare = SaslConfig::default();
    bare.set("sasl.enabled.mechanisms", "OAUTHBEARER").unwrap();
    let error = bare.check_listener("X").unwrap_err().0;
    assert!(error.contains("OAuthBearerLoginModule"), "{error}");
    let mut skew = SaslConfig::default();
    skew.set("sasl.enabled.mechanisms", "OAUTHBEARER").unwrap();
    skew.set(
        "listener.name.x.oauthbearer.sasl.jaas.config",
        "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredValidatorAllowableClockSkewMs=\"-1\";",
    )
    .unwrap();
    assert!(skew.check_listener("X").is_err());
}

#[test]
fn oauthbearer_validates_with_jwks_when_its_url_is_set() {
    let config = oauth_config(&[
        ("sasl.oauthbearer.jwks.endpoint.url", "file:///keys.json"),
        ("sasl.oauthbearer.expected.audience", "kafka, other"),
        (
            "listener.name.x.oauthbearer.sasl.oauthbearer.sub.claim.name",
            "client_id",
        ),
        ("sasl.oauthbearer.jwks.endpoint.refresh.ms", "20000"),
        (
            "listener.name.x.oauthbearer.sasl.server.callback.handler.class",
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler",
        ),
    ]);
    config.check_listener("X").unwrap();
    let Some(OAuthValidatorConfig::Jwks(source, options)) = config.oauth_validator("X") else {
        panic!("{:?}", config.oauth_validator("X"));
    };
    assert_eq!(source.url, "file:///keys.json");
    assert_eq!(source.refresh_ms, 20000);
    assert_eq!(options.expected_audiences, ["kafka", "other"]);
    assert_eq!(options.expected_issuer, None);
    assert_eq!(options.sub_claim_name, "client_id");
    assert_eq!(options.clock_skew_seconds, 30);
    let mut config = SaslConfig::default();
    for (key, value) in [
        ("sasl.oauthbearer.jwks.endpoint.url", "http://insecure/keys"),
        ("sasl.oauthbearer.jwks.endpoint.refresh.ms", "10"),
        (
            "listener.name.x.oauthbearer.sasl.server.callback.handler.class",
            "com.example.Mine",
        ),
    ] {
        assert!(config.set(key, value).is_err(), "{key}={value}");
    }
    // The secured handler without a URL is refused.
    let handler = oauth_config(&[(
        "listener.name.x.oauthbearer.sasl.server.callback.handler.class",
        "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler",
    )]);
    let error = handler.check_listener("X").unwrap_err().0;
    assert!(error.contains("jwks.endpoint.url"), "{error}");
}
