//! Kafka's `KafkaPrincipal`: the identity a connection acts as, written
//! `<kind>:<name>` (`User:alice`). A connection starts as `User:ANONYMOUS`
//! (every PLAINTEXT connection stays so, as in Kafka) and a SASL
//! authentication makes it `User:<authenticated name>`.

use std::fmt;

/// The principal type Kafka's default principal builder gives.
pub const USER_TYPE: &str = "User";
/// The name of the unauthenticated principal.
pub const ANONYMOUS_NAME: &str = "ANONYMOUS";

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KafkaPrincipal {
    pub kind: String,
    pub name: String,
}

impl KafkaPrincipal {
    /// `User:ANONYMOUS`.
    pub fn anonymous() -> KafkaPrincipal {
        KafkaPrincipal::user(ANONYMOUS_NAME)
    }

    /// `User:<name>`.
    pub fn user(name: &str) -> KafkaPrincipal {
        KafkaPrincipal {
            kind: USER_TYPE.to_string(),
            name: name.to_string(),
        }
    }

    pub fn is_anonymous(&self) -> bool {
        self.kind == USER_TYPE && self.name == ANONYMOUS_NAME
    }
}

impl fmt::Display for KafkaPrincipal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_print_as_kafka_writes_them() {
        assert_eq!(KafkaPrincipal::anonymous().to_string(), "User:ANONYMOUS");
        assert!(KafkaPrincipal::anonymous().is_anonymous());
        let alice = KafkaPrincipal::user("alice");
        assert_eq!(alice.to_string(), "User:alice");
        assert!(!alice.is_anonymous());
    }
}
