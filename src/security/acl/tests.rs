//! The authorizer's rules, one test each, and a property test against a
//! plain restatement of Kafka's `findResult` loop.

use std::net::IpAddr;

use proptest::prelude::*;

use super::*;
use crate::config::AuthorizerConfig;

fn acl(
    resource_type: ResourceType,
    name: &str,
    pattern_type: PatternType,
    principal: &str,
    operation: Operation,
    permission: Permission,
) -> Acl {
    Acl {
        resource_type,
        resource_name: name.into(),
        pattern_type,
        principal: principal.into(),
        host: WILDCARD.into(),
        operation,
        permission,
    }
}

fn allow_topic(name: &str, principal: &str, operation: Operation) -> Acl {
    acl(
        ResourceType::Topic,
        name,
        PatternType::Literal,
        principal,
        operation,
        Permission::Allow,
    )
}

fn deny_topic(name: &str, principal: &str, operation: Operation) -> Acl {
    Acl {
        permission: Permission::Deny,
        ..allow_topic(name, principal, operation)
    }
}

fn index_of(acls: &[Acl]) -> AclIndex {
    let ids = (0u128..).map(uuid::Uuid::from_u128);
    AclIndex::new(ids.zip(acls.iter().cloned()).collect())
}

fn enabled() -> AuthorizerConfig {
    AuthorizerConfig {
        enabled: true,
        ..AuthorizerConfig::default()
    }
}

const ALICE: &str = "User:alice";
const BOB: &str = "User:bob";

fn alice() -> Requester<'static> {
    Requester {
        principal: ALICE,
        host: Some("10.0.0.1".parse().unwrap()),
    }
}

fn may(acls: &[Acl], requester: Requester<'_>, operation: Operation, topic: &str) -> bool {
    let index = index_of(acls);
    authorize(
        &enabled(),
        &index,
        requester,
        operation,
        ResourceType::Topic,
        topic,
    )
}

#[test]
fn with_no_acls_everything_is_denied_unless_allow_everyone_is_set() {
    let index = AclIndex::default();
    let topic = ResourceType::Topic;
    assert!(!authorize(
        &enabled(),
        &index,
        alice(),
        Operation::Read,
        topic,
        "t"
    ));
    let open = AuthorizerConfig {
        allow_everyone_if_no_acl_found: true,
        ..enabled()
    };
    assert!(authorize(
        &open,
        &index,
        alice(),
        Operation::Read,
        topic,
        "t"
    ));
}

#[test]
fn allow_everyone_applies_only_to_resources_no_acl_names() {
    let open = AuthorizerConfig {
        allow_everyone_if_no_acl_found: true,
        ..enabled()
    };
    let index = index_of(&[allow_topic("t", BOB, Operation::Read)]);
    let topic = ResourceType::Topic;
    // An ACL names "t" (for bob): alice is denied there, free elsewhere.
    assert!(!authorize(
        &open,
        &index,
        alice(),
        Operation::Read,
        topic,
        "t"
    ));
    assert!(authorize(
        &open,
        &index,
        alice(),
        Operation::Read,
        topic,
        "u"
    ));
    // Another resource type with no ACL is open too.
    let group = ResourceType::Group;
    assert!(authorize(
        &open,
        &index,
        alice(),
        Operation::Read,
        group,
        "t"
    ));
}

#[test]
fn a_literal_acl_names_one_resource_and_star_every_one() {
    let acls = [allow_topic("orders", ALICE, Operation::Read)];
    assert!(may(&acls, alice(), Operation::Read, "orders"));
    assert!(!may(&acls, alice(), Operation::Read, "orders2"));
    assert!(!may(&acls, alice(), Operation::Read, "order"));
    let acls = [allow_topic(WILDCARD, ALICE, Operation::Read)];
    assert!(may(&acls, alice(), Operation::Read, "anything"));
    // A literal `*` is no pattern for a name that holds a star.
    let acls = [allow_topic("a*", ALICE, Operation::Read)];
    assert!(!may(&acls, alice(), Operation::Read, "ab"));
    assert!(may(&acls, alice(), Operation::Read, "a*"));
}

#[test]
fn a_prefixed_acl_covers_every_name_that_starts_with_it() {
    let prefixed = |name: &str, permission| Acl {
        pattern_type: PatternType::Prefixed,
        permission,
        ..allow_topic(name, ALICE, Operation::Write)
    };
    let acls = [prefixed("fin.", Permission::Allow)];
    assert!(may(&acls, alice(), Operation::Write, "fin.ledger"));
    assert!(may(&acls, alice(), Operation::Write, "fin."));
    assert!(!may(&acls, alice(), Operation::Write, "fin"));
    assert!(!may(&acls, alice(), Operation::Write, "xfin.ledger"));
    // A longer DENY prefix carves a hole; a shorter one closes all.
    let acls = [
        prefixed("fin.", Permission::Allow),
        prefixed("fin.secret", Permission::Deny),
    ];
    assert!(may(&acls, alice(), Operation::Write, "fin.ledger"));
    assert!(!may(&acls, alice(), Operation::Write, "fin.secret.pay"));
    // Prefixes of multi-byte names are cut at character boundaries.
    let acls = [prefixed("é", Permission::Allow)];
    assert!(may(&acls, alice(), Operation::Write, "été"));
    assert!(!may(&acls, alice(), Operation::Write, "e"));
}

#[test]
fn deny_wins_over_allow_wherever_each_comes_from() {
    let acls = [
        allow_topic("t", ALICE, Operation::Read),
        deny_topic("t", ALICE, Operation::Read),
    ];
    assert!(!may(&acls, alice(), Operation::Read, "t"));
    let acls = [
        allow_topic("t", ALICE, Operation::Read),
        deny_topic(WILDCARD, WILDCARD_PRINCIPAL, Operation::All),
    ];
    assert!(!may(&acls, alice(), Operation::Read, "t"));
    let acls = [
        allow_topic(WILDCARD, ALICE, Operation::All),
        deny_topic("t", ALICE, Operation::Write),
    ];
    assert!(!may(&acls, alice(), Operation::Write, "t"));
    assert!(may(&acls, alice(), Operation::Read, "t"));
    assert!(may(&acls, alice(), Operation::Write, "u"));
}

#[test]
fn principals_match_exactly_or_by_the_user_wildcard() {
    let acls = [allow_topic("t", BOB, Operation::Read)];
    assert!(!may(&acls, alice(), Operation::Read, "t"));
    let acls = [allow_topic("t", WILDCARD_PRINCIPAL, Operation::Read)];
    assert!(may(&acls, alice(), Operation::Read, "t"));
    // Only `User:*` is a wildcard; the name is case-sensitive.
    let acls = [allow_topic("t", "User:ALICE", Operation::Read)];
    assert!(!may(&acls, alice(), Operation::Read, "t"));
    let acls = [allow_topic("t", "Group:*", Operation::Read)];
    assert!(!may(&acls, alice(), Operation::Read, "t"));
}

#[test]
fn hosts_match_star_or_the_exact_address() {
    let at = |host: &str| Acl {
        host: host.into(),
        ..allow_topic("t", ALICE, Operation::Read)
    };
    assert!(may(&[at("10.0.0.1")], alice(), Operation::Read, "t"));
    assert!(!may(&[at("10.0.0.2")], alice(), Operation::Read, "t"));
    assert!(!may(&[at("client.example")], alice(), Operation::Read, "t"));
    let nowhere = Requester {
        host: None,
        ..alice()
    };
    assert!(!may(&[at("10.0.0.1")], nowhere, Operation::Read, "t"));
    assert!(may(&[at(WILDCARD)], nowhere, Operation::Read, "t"));
    let v6 = Requester {
        host: Some("::1".parse().unwrap()),
        ..alice()
    };
    // Java writes `0:0:0:0:0:0:0:1`; both spell the same address.
    assert!(may(&[at("0:0:0:0:0:0:0:1")], v6, Operation::Read, "t"));
}

#[test]
fn allow_implies_describe_and_describe_configs_deny_does_not() {
    use Operation::*;
    for granted in [Read, Write, Delete, Alter, Describe] {
        let acls = [allow_topic("t", ALICE, granted)];
        assert!(may(&acls, alice(), Describe, "t"), "{granted:?}");
    }
    for granted in [Create, AlterConfigs, DescribeConfigs, ClusterAction] {
        let acls = [allow_topic("t", ALICE, granted)];
        assert!(!may(&acls, alice(), Describe, "t"), "{granted:?}");
    }
    let acls = [allow_topic("t", ALICE, AlterConfigs)];
    assert!(may(&acls, alice(), DescribeConfigs, "t"));
    assert!(!may(&acls, alice(), Read, "t"));
    let acls = [allow_topic("t", ALICE, Read)];
    assert!(!may(&acls, alice(), Write, "t"));
    // A DENY of READ leaves DESCRIBE to the ALLOW.
    let acls = [allow_topic("t", ALICE, All), deny_topic("t", ALICE, Read)];
    assert!(may(&acls, alice(), Describe, "t"));
    assert!(!may(&acls, alice(), Read, "t"));
    let acls = [allow_topic("t", ALICE, All), deny_topic("t", ALICE, All)];
    assert!(!may(&acls, alice(), Describe, "t"));
}

#[test]
fn super_users_pass_even_a_deny() {
    let config = AuthorizerConfig {
        super_users: vec![ALICE.into()],
        ..enabled()
    };
    let index = index_of(&[deny_topic("t", ALICE, Operation::All)]);
    assert!(authorize(
        &config,
        &index,
        alice(),
        Operation::Write,
        ResourceType::Topic,
        "t"
    ));
    let bob = Requester {
        principal: BOB,
        ..alice()
    };
    assert!(!authorize(
        &config,
        &index,
        bob,
        Operation::Write,
        ResourceType::Topic,
        "t"
    ));
}

#[test]
fn resource_types_are_separate() {
    let acls = [acl(
        ResourceType::Group,
        "t",
        PatternType::Literal,
        ALICE,
        Operation::Read,
        Permission::Allow,
    )];
    assert!(!may(&acls, alice(), Operation::Read, "t"));
    let index = index_of(&acls);
    let group = ResourceType::Group;
    assert!(authorize(
        &enabled(),
        &index,
        alice(),
        Operation::Read,
        group,
        "t"
    ));
}

#[test]
fn by_resource_type_some_allowed_resource_not_covered_by_a_deny() {
    let config = enabled();
    let check = |acls: &[Acl]| {
        let index = index_of(acls);
        authorize_by_resource_type(
            &config,
            &index,
            alice(),
            Operation::Write,
            ResourceType::Topic,
        )
    };
    assert!(!check(&[]));
    assert!(check(&[allow_topic("t", ALICE, Operation::Write)]));
    assert!(!check(&[allow_topic("t", ALICE, Operation::Read)]));
    assert!(!check(&[
        allow_topic("t", ALICE, Operation::Write),
        deny_topic("t", ALICE, Operation::Write),
    ]));
    assert!(!check(&[
        allow_topic("t", ALICE, Operation::Write),
        deny_topic(WILDCARD, ALICE, Operation::Write),
    ]));
    assert!(check(&[
        allow_topic("t", ALICE, Operation::Write),
        deny_topic("u", ALICE, Operation::Write),
    ]));
    let denied_prefix = Acl {
        pattern_type: PatternType::Prefixed,
        ..deny_topic("t", ALICE, Operation::Write)
    };
    assert!(!check(&[
        allow_topic("tx", ALICE, Operation::Write),
        denied_prefix
    ]));
}

#[test]
fn new_acls_are_validated_as_kafka_does() {
    let good = allow_topic("t", ALICE, Operation::Read);
    assert_eq!(good.invalid(), None);
    let bad = [
        Acl {
            resource_type: ResourceType::Any,
            ..good.clone()
        },
        Acl {
            pattern_type: PatternType::Match,
            ..good.clone()
        },
        Acl {
            operation: Operation::Any,
            ..good.clone()
        },
        Acl {
            permission: Permission::Unknown,
            ..good.clone()
        },
        Acl {
            resource_name: String::new(),
            ..good.clone()
        },
        Acl {
            resource_type: ResourceType::Cluster,
            resource_name: "other".into(),
            ..good.clone()
        },
        Acl {
            principal: "alice".into(),
            ..good.clone()
        },
    ];
    for acl in bad {
        assert!(acl.invalid().is_some(), "{acl:?}");
    }
    let cluster = Acl {
        resource_type: ResourceType::Cluster,
        resource_name: CLUSTER_NAME.into(),
        ..good
    };
    assert_eq!(cluster.invalid(), None);
}

#[test]
fn filters_match_as_kafkas_binding_filters() {
    let literal = allow_topic("orders", ALICE, Operation::Read);
    let prefixed = Acl {
        resource_name: "ord".into(),
        pattern_type: PatternType::Prefixed,
        ..literal.clone()
    };
    let star = allow_topic(WILDCARD, ALICE, Operation::Read);
    let any = AclFilter {
        resource_type: ResourceType::Any,
        resource_name: None,
        pattern_type: PatternType::Any,
        principal: None,
        host: None,
        operation: Operation::Any,
        permission: Permission::Any,
    };
    for acl in [&literal, &prefixed, &star] {
        assert!(any.matches(acl));
        assert!(AclFilter::exactly(acl).matches(acl));
    }
    assert!(!AclFilter::exactly(&literal).matches(&prefixed));
    let named = |pattern_type| AclFilter {
        resource_name: Some("orders".into()),
        pattern_type,
        ..any.clone()
    };
    // ANY: the name exactly, whatever the pattern type.
    assert!(named(PatternType::Any).matches(&literal));
    assert!(!named(PatternType::Any).matches(&prefixed));
    // MATCH: every ACL that applies to the resource "orders".
    for acl in [&literal, &prefixed, &star] {
        assert!(named(PatternType::Match).matches(acl), "{acl:?}");
    }
    assert!(!named(PatternType::Match).matches(&allow_topic("other", ALICE, Operation::Read)));
    assert!(!named(PatternType::Prefixed).matches(&literal));
    let by_entry = AclFilter {
        principal: Some(BOB.into()),
        ..any.clone()
    };
    assert!(!by_entry.matches(&literal));
    let by_operation = AclFilter {
        operation: Operation::Write,
        ..any.clone()
    };
    assert!(!by_operation.matches(&literal));
    let unknown = AclFilter {
        operation: Operation::Unknown,
        ..any.clone()
    };
    assert!(unknown.invalid().is_some());
    assert_eq!(any.invalid(), None);
}

#[test]
fn names_parse_in_kafka_acls_spellings() {
    assert_eq!(
        Operation::parse("IdempotentWrite"),
        Some(Operation::IdempotentWrite)
    );
    assert_eq!(
        Operation::parse("describe-configs"),
        Some(Operation::DescribeConfigs)
    );
    assert_eq!(Operation::parse("All"), Some(Operation::All));
    assert_eq!(
        ResourceType::parse("transactional-id"),
        Some(ResourceType::TransactionalId)
    );
    assert_eq!(PatternType::parse("prefixed"), Some(PatternType::Prefixed));
    assert_eq!(Operation::parse("fly"), None);
    for operation in Operation::ALL_VALUES {
        assert_eq!(Operation::from_code(operation.code()), *operation);
    }
    assert_eq!(Operation::from_code(99), Operation::Unknown);
}

/// Kafka's decision restated as a scan of every ACL, for the property.
fn reference(
    config: &AuthorizerConfig,
    acls: &[Acl],
    who: &str,
    host: IpAddr,
    op: Operation,
    name: &str,
) -> bool {
    if config.is_super_user(who) {
        return true;
    }
    let applies: Vec<&Acl> = acls
        .iter()
        .filter(|acl| acl.resource_type == ResourceType::Topic)
        .filter(|acl| match acl.pattern_type {
            PatternType::Literal => acl.resource_name == name || acl.resource_name == WILDCARD,
            PatternType::Prefixed => name.starts_with(&acl.resource_name),
            _ => false,
        })
        .collect();
    let matching = |acl: &&&Acl| {
        (acl.principal == who || acl.principal == WILDCARD_PRINCIPAL)
            && (acl.host == WILDCARD || acl.host.parse::<IpAddr>().ok() == Some(host))
            && match acl.permission {
                Permission::Allow => acl.operation.allow_implies(op),
                _ => acl.operation == Operation::All || acl.operation == op,
            }
    };
    if applies
        .iter()
        .filter(matching)
        .any(|acl| acl.permission == Permission::Deny)
    {
        return false;
    }
    if applies
        .iter()
        .filter(matching)
        .any(|acl| acl.permission == Permission::Allow)
    {
        return true;
    }
    applies.is_empty() && config.allow_everyone_if_no_acl_found
}

fn arbitrary_acl() -> impl Strategy<Value = Acl> {
    (
        prop::sample::select(vec!["a", "ab", "abc", "b", "*"]),
        prop::bool::ANY,
        prop::sample::select(vec![ALICE, BOB, WILDCARD_PRINCIPAL]),
        prop::sample::select(vec!["*", "10.0.0.1", "10.0.0.2"]),
        prop::sample::select(Operation::ALL_VALUES[2..].to_vec()),
        prop::bool::ANY,
    )
        .prop_map(|(name, prefixed, principal, host, operation, allow)| Acl {
            resource_type: ResourceType::Topic,
            resource_name: name.into(),
            pattern_type: if prefixed {
                PatternType::Prefixed
            } else {
                PatternType::Literal
            },
            principal: principal.into(),
            host: host.into(),
            operation,
            permission: if allow {
                Permission::Allow
            } else {
                Permission::Deny
            },
        })
}

proptest! {
    #[test]
    fn the_index_decides_as_a_scan_of_every_acl(
        acls in prop::collection::vec(arbitrary_acl(), 0..12),
        name in prop::sample::select(vec!["a", "ab", "abc", "abd", "b", "c", "*"]),
        operation in prop::sample::select(Operation::ALL_VALUES[3..].to_vec()),
        open in prop::bool::ANY,
        host in prop::sample::select(vec!["10.0.0.1", "10.0.0.3"]),
    ) {
        let config = AuthorizerConfig { allow_everyone_if_no_acl_found: open, ..enabled() };
        let index = index_of(&acls);
        let host: IpAddr = host.parse().unwrap();
        let requester = Requester { principal: ALICE, host: Some(host) };
        let decided = authorize(&config, &index, requester, operation, ResourceType::Topic, name);
        prop_assert_eq!(decided, reference(&config, &acls, ALICE, host, operation, name));
    }
}
