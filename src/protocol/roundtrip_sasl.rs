//! Round-trip samples of the SASL and SCRAM APIs (issue 17):
//! SaslHandshake, SaslAuthenticate, AlterUserScramCredentials and
//! DescribeUserScramCredentials, for the table-wide round trip in
//! `roundtrip.rs`.

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

/// The first SaslAuthenticate version with `session_lifetime_ms` (KIP-368).
const SESSION_LIFETIME_VERSION: i16 = 1;

fn s(value: &'static str) -> StrBytes {
    StrBytes::from_static_str(value)
}

pub(super) fn sasl_handshake_request(_version: i16) -> SaslHandshakeRequest {
    SaslHandshakeRequest::default().with_mechanism(s("SCRAM-SHA-512"))
}

pub(super) fn sasl_handshake_response(_version: i16) -> SaslHandshakeResponse {
    SaslHandshakeResponse::default()
        .with_error_code(33)
        .with_mechanisms(vec![s("PLAIN"), s("SCRAM-SHA-512")])
}

pub(super) fn sasl_authenticate_request(_version: i16) -> SaslAuthenticateRequest {
    SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from_static(b"n,,n=alice,r=abc"))
}

pub(super) fn sasl_authenticate_response(version: i16) -> SaslAuthenticateResponse {
    let response = SaslAuthenticateResponse::default()
        .with_error_code(58)
        .with_error_message(Some(s("Authentication failed")))
        .with_auth_bytes(Bytes::from_static(b"r=abcdef,s=c2FsdA==,i=4096"));
    if version >= SESSION_LIFETIME_VERSION {
        response.with_session_lifetime_ms(3_600_000)
    } else {
        response
    }
}

pub(super) fn alter_user_scram_credentials_request(
    _version: i16,
) -> AlterUserScramCredentialsRequest {
    use alter_user_scram_credentials_request::{ScramCredentialDeletion, ScramCredentialUpsertion};
    AlterUserScramCredentialsRequest::default()
        .with_deletions(vec![ScramCredentialDeletion::default()
            .with_name(s("bob"))
            .with_mechanism(1)])
        .with_upsertions(vec![ScramCredentialUpsertion::default()
            .with_name(s("alice"))
            .with_mechanism(2)
            .with_iterations(8192)
            .with_salt(Bytes::from_static(b"salt"))
            .with_salted_password(Bytes::from_static(&[7; 64]))])
}

pub(super) fn alter_user_scram_credentials_response(
    _version: i16,
) -> AlterUserScramCredentialsResponse {
    use alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
    AlterUserScramCredentialsResponse::default()
        .with_throttle_time_ms(1)
        .with_results(vec![
            AlterUserScramCredentialsResult::default().with_user(s("alice")),
            AlterUserScramCredentialsResult::default()
                .with_user(s("bob"))
                .with_error_code(91)
                .with_error_message(Some(s(
                    "Attempt to delete a user credential that does not exist",
                ))),
        ])
}

pub(super) fn describe_user_scram_credentials_request(
    _version: i16,
) -> DescribeUserScramCredentialsRequest {
    use describe_user_scram_credentials_request::UserName;
    DescribeUserScramCredentialsRequest::default()
        .with_users(Some(vec![UserName::default().with_name(s("alice"))]))
}

pub(super) fn describe_user_scram_credentials_response(
    _version: i16,
) -> DescribeUserScramCredentialsResponse {
    use describe_user_scram_credentials_response::{
        CredentialInfo, DescribeUserScramCredentialsResult,
    };
    DescribeUserScramCredentialsResponse::default()
        .with_throttle_time_ms(2)
        .with_results(vec![DescribeUserScramCredentialsResult::default()
            .with_user(s("alice"))
            .with_credential_infos(vec![CredentialInfo::default()
                .with_mechanism(2)
                .with_iterations(8192)])])
}
