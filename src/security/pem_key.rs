//! The keystore's private key from its PEM text, as Kafka reads PEM
//! keystores (`ssl.keystore.type=PEM`): a key in the clear (PKCS#8, or the
//! PKCS#1 and SEC1 forms rustls also takes), or a PKCS#8 key encrypted
//! with `ssl.key.password` (`ENCRYPTED PRIVATE KEY`: PBES2, with PBKDF2
//! or scrypt and AES-CBC, what `openssl pkcs8 -topk8 -v2 aes-256-cbc` and
//! Python's `cryptography` write). Legacy OpenSSL encryption
//! (`Proc-Type: 4,ENCRYPTED`) and PBES1 are refused with the command that
//! converts the key; Kafka refuses them too.
//!
//! Invariant: the password and the decrypted key never reach a log line
//! or an error message.

use pkcs8::der::Document;
use pkcs8::EncryptedPrivateKeyInfo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

const ENCRYPTED_LABEL: &str = "ENCRYPTED PRIVATE KEY";
const CONVERT: &str = "openssl pkcs8 -topk8 -v2 aes-256-cbc -in key.pem -out encrypted.pem";

/// The private key in `pem` (the keystore's text, which may hold the
/// certificate chain too), decrypted with `password` when it is encrypted.
pub fn private_key(pem: &[u8], password: Option<&str>) -> Result<PrivateKeyDer<'static>, String> {
    let text = String::from_utf8_lossy(pem);
    if text.contains("4,ENCRYPTED") {
        return Err(format!(
            "ssl.keystore: the private key is encrypted the legacy OpenSSL way; shoal, as Kafka, reads encrypted PKCS#8 keys: convert it with `{CONVERT}`"
        ));
    }
    let Some(begin) = text.find(&format!("-----BEGIN {ENCRYPTED_LABEL}-----")) else {
        return PrivateKeyDer::from_pem_slice(pem)
            .map_err(|error| format!("ssl.keystore: no usable private key: {error}"));
    };
    let Some(password) = password else {
        return Err(
            "ssl.keystore: the private key is encrypted and ssl.key.password is not set"
                .to_string(),
        );
    };
    let end_marker = format!("-----END {ENCRYPTED_LABEL}-----");
    let end = text[begin..]
        .find(&end_marker)
        .map(|at| begin + at + end_marker.len())
        .ok_or("ssl.keystore: the encrypted private key's PEM block has no end")?;
    let (label, document) = Document::from_pem(&text[begin..end])
        .map_err(|error| format!("ssl.keystore: the encrypted private key's PEM: {error}"))?;
    if label != ENCRYPTED_LABEL {
        return Err(format!(
            "ssl.keystore: a PEM block labelled {label} where an encrypted key was expected"
        ));
    }
    let encrypted = EncryptedPrivateKeyInfo::try_from(document.as_bytes())
        .map_err(|error| format!("ssl.keystore: the encrypted private key: {error}"))?;
    let decrypted = encrypted.decrypt(password).map_err(|_| {
        format!(
            "ssl.keystore: the private key cannot be decrypted with ssl.key.password (a wrong password, or a scheme other than PBES2 with PBKDF2 or scrypt and AES-CBC: re-encrypt it with `{CONVERT}`)"
        )
    })?;
    Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        decrypted.as_bytes().to_vec(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `openssl ecparam -name prime256v1 -genkey`, then
    /// `openssl pkcs8 -topk8 -v2 aes-256-cbc -passout pass:secret` (ENCRYPTED)
    /// and `openssl pkcs8 -topk8 -nocrypt` (PLAIN) of the same key.
    const ENCRYPTED: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIHsMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAcBAjBALUhvamIqwICCAAw\nDAYIKoZIhvcNAgkFADAdBglghkgBZQMEASoEELGpDfUnVi8qvsbUMM1VNtYEgZD9\n3W1caVvUsAFa4Dfxlz0XBl5TpKZcZkrwGHw3TPRXxNQ/JeLa6Nij5bHmI0cGTuhN\ncR9DFRi7N8EbXCrXyQbdb1dTF7P8OustDy9wb4o6C++80LCc4PIrsj0lN0Uq30iC\nexSVnj2g0rZWAV5LBvas1jeIgIi6dxHyQQBfbQ9nSeiiBiFnK4tDVs+pv2rL+hA=\n-----END ENCRYPTED PRIVATE KEY-----\n";
    const PLAIN: &str = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg4iRK5w9H7FOz/OLd\nB/BKvW/203ATgx0ny4WcEPCXvOehRANCAATkSSti4vAkdZHPYGS5s0fhwUJQPgKe\n/1ZEk/GnQyb1xAUjPzu4zd1ljlX6nVOx36+Gsx1Yhnl+8PxG07sKy1kJ\n-----END PRIVATE KEY-----\n";

    #[test]
    fn an_encrypted_key_opens_with_its_password_and_is_the_plain_one() {
        let plain = private_key(PLAIN.as_bytes(), None).unwrap();
        let opened = private_key(ENCRYPTED.as_bytes(), Some("secret")).unwrap();
        assert_eq!(opened.secret_der(), plain.secret_der());
        // A chain around it changes nothing; a password on a clear key
        // is not needed.
        let keystore =
            format!("{ENCRYPTED}-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
        let opened = private_key(keystore.as_bytes(), Some("secret")).unwrap();
        assert_eq!(opened.secret_der(), plain.secret_der());
        assert!(private_key(PLAIN.as_bytes(), Some("secret")).is_ok());
    }

    #[test]
    fn a_wrong_or_missing_password_is_refused_without_showing_it() {
        let wrong = private_key(ENCRYPTED.as_bytes(), Some("hunter2")).unwrap_err();
        assert!(
            wrong.contains("cannot be decrypted with ssl.key.password"),
            "{wrong}"
        );
        assert!(!wrong.contains("hunter2"));
        let missing = private_key(ENCRYPTED.as_bytes(), None).unwrap_err();
        assert!(missing.contains("ssl.key.password is not set"), "{missing}");
        let legacy = "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00\n\nAAAA\n-----END EC PRIVATE KEY-----\n";
        let legacy = private_key(legacy.as_bytes(), Some("secret")).unwrap_err();
        assert!(legacy.contains("openssl pkcs8 -topk8"), "{legacy}");
        let torn = &ENCRYPTED[..ENCRYPTED.len() - 40];
        assert!(private_key(torn.as_bytes(), Some("secret")).is_err());
    }
}
