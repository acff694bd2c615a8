//! Kafka's ACL vocabulary with its wire codes and its names
//! (`ResourceType`, `PatternType`, `AclOperation`, `AclPermissionType`):
//! a code Kafka does not define reads as `Unknown`, as Kafka's `fromCode`
//! does, so a request or record never fails to decode for it; validation
//! refuses it where Kafka does.

/// One enum of codes and names; `parse` takes the name in any case, with
/// `-` or `_` between words (`kafka-acls.sh` spells `TransactionalId`,
/// `transactional-id`, `IdempotentWrite`...).
macro_rules! codes {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $code:literal, $text:literal;)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($variant,)*
        }

        impl $name {
            pub const ALL_VALUES: &'static [$name] = &[$($name::$variant,)*];

            pub fn from_code(code: i8) -> $name {
                match code {
                    $($code => $name::$variant,)*
                    _ => $name::Unknown,
                }
            }

            pub fn code(self) -> i8 {
                match self {
                    $($name::$variant => $code,)*
                }
            }

            /// Kafka's name (`TOPIC`, `DESCRIBE_CONFIGS`).
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            /// The value named `text`, however it is cased or joined.
            pub fn parse(text: &str) -> Option<$name> {
                let wanted: String = text
                    .chars()
                    .filter(|c| *c != '_' && *c != '-')
                    .map(|c| c.to_ascii_uppercase())
                    .collect();
                $name::ALL_VALUES
                    .iter()
                    .copied()
                    .find(|value| value.name().replace('_', "") == wanted)
            }
        }
    };
}

codes! {
    /// Kafka's `ResourceType`.
    ResourceType {
        Unknown = 0, "UNKNOWN";
        Any = 1, "ANY";
        Topic = 2, "TOPIC";
        Group = 3, "GROUP";
        Cluster = 4, "CLUSTER";
        TransactionalId = 5, "TRANSACTIONAL_ID";
        DelegationToken = 6, "DELEGATION_TOKEN";
        User = 7, "USER";
    }
}

codes! {
    /// Kafka's `PatternType`: ANY and MATCH only in filters.
    PatternType {
        Unknown = 0, "UNKNOWN";
        Any = 1, "ANY";
        Match = 2, "MATCH";
        Literal = 3, "LITERAL";
        Prefixed = 4, "PREFIXED";
    }
}

codes! {
    /// Kafka's `AclOperation`: ANY only in filters, ALL any operation.
    Operation {
        Unknown = 0, "UNKNOWN";
        Any = 1, "ANY";
        All = 2, "ALL";
        Read = 3, "READ";
        Write = 4, "WRITE";
        Create = 5, "CREATE";
        Delete = 6, "DELETE";
        Alter = 7, "ALTER";
        Describe = 8, "DESCRIBE";
        ClusterAction = 9, "CLUSTER_ACTION";
        DescribeConfigs = 10, "DESCRIBE_CONFIGS";
        AlterConfigs = 11, "ALTER_CONFIGS";
        IdempotentWrite = 12, "IDEMPOTENT_WRITE";
        CreateTokens = 13, "CREATE_TOKENS";
        DescribeTokens = 14, "DESCRIBE_TOKENS";
        TwoPhaseCommit = 15, "TWO_PHASE_COMMIT";
    }
}

codes! {
    /// Kafka's `AclPermissionType`: ANY only in filters.
    Permission {
        Unknown = 0, "UNKNOWN";
        Any = 1, "ANY";
        Deny = 2, "DENY";
        Allow = 3, "ALLOW";
    }
}

impl Operation {
    /// Whether an ALLOW ACL for `self` also allows `requested`: an
    /// operation allows itself, READ, WRITE, DELETE and ALTER allow
    /// DESCRIBE, ALTER_CONFIGS allows DESCRIBE_CONFIGS, ALL everything
    /// (Kafka's `IMPLIES_DESCRIBE`, `IMPLIES_DESCRIBE_CONFIGS`). A DENY
    /// ACL denies only its own operation (or all, for ALL).
    pub fn allow_implies(self, requested: Operation) -> bool {
        use Operation::*;
        match (self, requested) {
            (All, _) => true,
            (Read | Write | Delete | Alter, Describe) => true,
            (AlterConfigs, DescribeConfigs) => true,
            (granted, requested) => granted == requested,
        }
    }
}

/// The name of the one CLUSTER resource (`kafka-cluster`).
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// The resource name and host that match any (`*`).
pub const WILDCARD: &str = "*";
/// The principal that matches any user.
pub const WILDCARD_PRINCIPAL: &str = "User:*";
/// The principal of a connection that did not authenticate (PLAINTEXT).
pub const ANONYMOUS: &str = "User:ANONYMOUS";
