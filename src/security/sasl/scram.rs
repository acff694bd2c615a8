//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677), the server side
//! as Kafka's `ScramSaslServer` runs it: client-first (`n,,n=user,r=cnonce`)
//! answered with server-first (`r=cnonce+snonce,s=salt,i=iterations`),
//! client-final (`c=biws,r=nonce,p=proof`) checked against the stored key
//! and answered with server-final (`v=signature`). Also the credential a
//! password or a salted password makes (AlterUserScramCredentials, `shoal
//! storage format --add-scram`).
//!
//! Invariant: the server keeps the stored and server keys only, never a
//! password; the proof is compared in constant time; no error text holds
//! a token, a key or a user's proof.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

use super::{Credentials, SaslError, SaslMechanism, Step};

/// Kafka's `ScramMechanism.minIterations` (RFC 7677's 4096).
pub const ITERATIONS_MIN: i32 = 4096;
/// Kafka's `ScramControlManager.MAX_ITERATIONS`.
pub const ITERATIONS_MAX: i32 = 16_384;

/// What a server keeps of a user's password (Kafka's `ScramCredential`,
/// the `UserScramCredentialRecord`).
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

impl std::fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramCredential")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

pub(super) fn hmac(mechanism: SaslMechanism, key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length: `new_from_slice` cannot fail here.
    match mechanism {
        SaslMechanism::ScramSha512 => {
            let mut mac = Hmac::<Sha512>::new_from_slice(key).expect("HMAC takes any key");
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        _ => {
            let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
    }
}

pub(super) fn hash(mechanism: SaslMechanism, data: &[u8]) -> Vec<u8> {
    match mechanism {
        SaslMechanism::ScramSha512 => Sha512::digest(data).to_vec(),
        _ => Sha256::digest(data).to_vec(),
    }
}

/// RFC 5802's `Hi`: PBKDF2 with the mechanism's HMAC.
pub fn salted_password(
    mechanism: SaslMechanism,
    password: &[u8],
    salt: &[u8],
    iterations: u32,
) -> Vec<u8> {
    match mechanism {
        SaslMechanism::ScramSha512 => {
            let mut out = [0u8; 64];
            pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out);
            out.to_vec()
        }
        _ => {
            let mut out = [0u8; 32];
            pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
            out.to_vec()
        }
    }
}

/// The credential of a salted password (what AlterUserScramCredentials
/// carries): `StoredKey = H(HMAC(salted, "Client Key"))`,
/// `ServerKey = HMAC(salted, "Server Key")`.
pub fn credential_from_salted(
    mechanism: SaslMechanism,
    salted: &[u8],
    salt: &[u8],
    iterations: i32,
) -> ScramCredential {
    let client_key = hmac(mechanism, salted, b"Client Key");
    ScramCredential {
        salt: salt.to_vec(),
        stored_key: hash(mechanism, &client_key),
        server_key: hmac(mechanism, salted, b"Server Key"),
        iterations,
    }
}

/// The credential of a password, salted with `salt`.
pub fn credential_from_password(
    mechanism: SaslMechanism,
    password: &str,
    salt: &[u8],
    iterations: i32,
) -> ScramCredential {
    let rounds = u32::try_from(iterations).unwrap_or(0).max(1);
    let salted = salted_password(mechanism, password.as_bytes(), salt, rounds);
    credential_from_salted(mechanism, &salted, salt, iterations)
}

/// Whether `password` is the one `credential` was made from: its stored
/// key made again with the credential's salt and iterations, compared in
/// constant time (for HTTP Basic on the admin listener, where the client
/// sends the password itself rather than a proof).
pub fn password_matches(
    mechanism: SaslMechanism,
    credential: &ScramCredential,
    password: &str,
) -> bool {
    let made =
        credential_from_password(mechanism, password, &credential.salt, credential.iterations);
    made.stored_key.ct_eq(&credential.stored_key).into()
}

/// What the server remembers between client-first and client-final.
struct Exchange {
    user: String,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
    credential: ScramCredential,
}

enum State {
    ClientFirst,
    ClientFinal(Box<Exchange>),
    Ended,
}

/// One SCRAM exchange on the server.
pub struct ScramServer {
    mechanism: SaslMechanism,
    server_nonce: String,
    state: State,
}

impl ScramServer {
    pub fn new(mechanism: SaslMechanism, server_nonce: String) -> ScramServer {
        ScramServer {
            mechanism,
            server_nonce,
            state: State::ClientFirst,
        }
    }

    pub fn step(&mut self, token: &[u8], credentials: &Credentials<'_>) -> Result<Step, SaslError> {
        let state = std::mem::replace(&mut self.state, State::Ended);
        let text = std::str::from_utf8(token)
            .map_err(|_| SaslError::Invalid("a SCRAM message that is not UTF-8".into()))?;
        match state {
            State::ClientFirst => {
                let exchange = self.client_first(text, credentials)?;
                let answer = exchange.server_first.clone().into_bytes();
                self.state = State::ClientFinal(Box::new(exchange));
                Ok(Step::Continue(answer))
            }
            State::ClientFinal(exchange) => self.client_final(text, *exchange),
            State::Ended => Err(SaslError::Invalid(
                "a SCRAM token after the exchange ended".into(),
            )),
        }
    }

    fn client_first(
        &self,
        text: &str,
        credentials: &Credentials<'_>,
    ) -> Result<Exchange, SaslError> {
        let first = ClientFirst::parse(text)?;
        let credential = credentials
            .scram(self.mechanism, &first.user)
            .ok_or_else(|| {
                SaslError::Invalid("Authentication failed: Invalid user credentials".into())
            })?;
        if !first.authzid.is_empty() && first.authzid != first.user {
            return Err(SaslError::Refused(
                "Authentication failed: Client requested an authorization id that is different from username".into(),
            ));
        }
        if credential.iterations < ITERATIONS_MIN {
            return Err(SaslError::Invalid(format!(
                "Iterations {} is less than the minimum {ITERATIONS_MIN} for {}",
                credential.iterations,
                self.mechanism.name()
            )));
        }
        let nonce = format!("{}{}", first.nonce, self.server_nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            BASE64.encode(&credential.salt),
            credential.iterations
        );
        Ok(Exchange {
            user: first.user,
            gs2_header: first.gs2_header,
            client_first_bare: first.bare,
            server_first,
            nonce,
            credential,
        })
    }

    fn client_final(&self, text: &str, exchange: Exchange) -> Result<Step, SaslError> {
        let invalid =
            |why: &str| SaslError::Invalid(format!("Invalid SCRAM client final message: {why}"));
        let (without_proof, proof) = text.rsplit_once(",p=").ok_or_else(|| invalid("no proof"))?;
        let mut fields = without_proof.split(',');
        let binding = fields
            .next()
            .and_then(|f| f.strip_prefix("c="))
            .ok_or_else(|| invalid("no channel binding"))?;
        let nonce = fields
            .next()
            .and_then(|f| f.strip_prefix("r="))
            .ok_or_else(|| invalid("no nonce"))?;
        if BASE64.decode(binding).ok().as_deref() != Some(exchange.gs2_header.as_bytes()) {
            return Err(invalid("channel binding differs from the GS2 header"));
        }
        if nonce != exchange.nonce {
            return Err(SaslError::Invalid(
                "Invalid client nonce in the final client message.".into(),
            ));
        }
        let proof = BASE64
            .decode(proof)
            .map_err(|_| invalid("the proof is not base64"))?;
        let auth_message = format!(
            "{},{},{}",
            exchange.client_first_bare, exchange.server_first, without_proof
        );
        let credential = &exchange.credential;
        let signature = hmac(
            self.mechanism,
            &credential.stored_key,
            auth_message.as_bytes(),
        );
        if proof.len() != signature.len() {
            return Err(SaslError::Invalid("Invalid client credentials".into()));
        }
        let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
        let computed = hash(self.mechanism, &client_key);
        if !bool::from(computed.ct_eq(&credential.stored_key)) {
            return Err(SaslError::Invalid("Invalid client credentials".into()));
        }
        let server_signature = hmac(
            self.mechanism,
            &credential.server_key,
            auth_message.as_bytes(),
        );
        Ok(Step::Done {
            user: exchange.user,
            token: format!("v={}", BASE64.encode(server_signature)).into_bytes(),
        })
    }
}

/// A parsed client-first message (`n,[a=authzid],n=saslname,r=nonce[,ext]`).
struct ClientFirst {
    gs2_header: String,
    authzid: String,
    user: String,
    nonce: String,
    bare: String,
}

impl ClientFirst {
    fn parse(text: &str) -> Result<ClientFirst, SaslError> {
        // Kafka's words, without the message (it names the user).
        let invalid = || SaslError::Invalid("Invalid SCRAM client first message format".into());
        let rest = text.strip_prefix("n,").ok_or_else(invalid)?;
        let (authzid, bare) = rest.split_once(',').ok_or_else(invalid)?;
        let authzid = match authzid {
            "" => String::new(),
            named => {
                sasl_name(named.strip_prefix("a=").ok_or_else(invalid)?).ok_or_else(invalid)?
            }
        };
        let mut fields = bare.split(',');
        let user = fields
            .next()
            .and_then(|f| f.strip_prefix("n="))
            .and_then(sasl_name)
            .filter(|user| !user.is_empty())
            .ok_or_else(invalid)?;
        let nonce = fields
            .next()
            .and_then(|f| f.strip_prefix("r="))
            .filter(|nonce| !nonce.is_empty())
            .ok_or_else(invalid)?;
        // Extensions (`key=value`): Kafka's one is `tokenauth`, for
        // delegation tokens, which shoal does not issue.
        for extension in fields {
            let (key, value) = extension.split_once('=').ok_or_else(invalid)?;
            if key == "tokenauth" && value.eq_ignore_ascii_case("true") {
                return Err(SaslError::Invalid(
                    "delegation token authentication is not served".into(),
                ));
            }
        }
        Ok(ClientFirst {
            gs2_header: text[..text.len() - bare.len()].to_string(),
            authzid,
            user,
            nonce: nonce.to_string(),
            bare: bare.to_string(),
        })
    }
}

/// RFC 5802's `saslname`: `=2C` is ',', `=3D` is '=', any other '=' is an error.
pub(super) fn sasl_name(text: &str) -> Option<String> {
    let mut name = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('=') {
        name.push_str(&rest[..at]);
        let escape = rest.get(at..at + 3)?;
        name.push(match escape {
            "=2C" => ',',
            "=3D" => '=',
            _ => return None,
        });
        rest = &rest[at + 3..];
    }
    name.push_str(rest);
    Some(name)
}

#[cfg(test)]
#[path = "scram_tests.rs"]
mod tests;
