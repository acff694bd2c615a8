//! Which quota holds for a request, by Kafka's precedence
//! (`ClientQuotaManager.DefaultQuotaCallback`), and which clients share it.
//! For a user U and client id C, the first of these entities that holds
//! the quota's key wins:
//!
//! 1. user U, client-id C
//! 2. user U, client-id default
//! 3. user U
//! 4. user default, client-id C
//! 5. user default, client-id default
//! 6. user default
//! 7. client-id C
//! 8. client-id default
//!
//! The level also says what the rate is measured over (Kafka's metric
//! tags): at levels 1, 2, 4 and 5 each (user, client id) pair has a rate
//! of its own; at 3 and 6 all of a user's client ids share one; at 7 and 8
//! all users of a client id share one. A default is a quota each user or
//! client id has for itself, never one shared among them.
//!
//! Invariant: pure; reads only the image's quotas.

use std::net::IpAddr;

use crate::metadata::quotas::{ClientQuotas, EntityName, QuotaEntity};

/// What a quota is measured over: the user, the client id, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tags {
    pub user: bool,
    pub client_id: bool,
}

/// The quota that holds and what it is measured over.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Resolved {
    pub bound: f64,
    pub tags: Tags,
}

const BOTH: Tags = Tags {
    user: true,
    client_id: true,
};
const USER_ONLY: Tags = Tags {
    user: true,
    client_id: false,
};
const CLIENT_ONLY: Tags = Tags {
    user: false,
    client_id: true,
};

/// The quota of `key` for `user` and `client_id`, if any entity sets it.
pub fn resolve(quotas: &ClientQuotas, key: &str, user: &str, client_id: &str) -> Option<Resolved> {
    if !quotas.has_key(key) {
        return None;
    }
    let named = |name: &str| -> EntityName { Some(Some(name.to_string())) };
    let default: EntityName = Some(None);
    let levels = [
        (named(user), named(client_id), BOTH),
        (named(user), default.clone(), BOTH),
        (named(user), None, USER_ONLY),
        (default.clone(), named(client_id), BOTH),
        (default.clone(), default.clone(), BOTH),
        (default.clone(), None, USER_ONLY),
        (None, named(client_id), CLIENT_ONLY),
        (None, default, CLIENT_ONLY),
    ];
    levels.into_iter().find_map(|(user, client_id, tags)| {
        let entity = QuotaEntity {
            user,
            client_id,
            ip: None,
        };
        let bound = quotas.get(&entity, key)?;
        Some(Resolved { bound, tags })
    })
}

/// The `connection_creation_rate` of `ip`: its own, else the default
/// ip entity's.
pub fn ip_connection_rate(quotas: &ClientQuotas, key: &str, ip: IpAddr) -> Option<f64> {
    if !quotas.has_key(key) {
        return None;
    }
    let entity = |ip: EntityName| QuotaEntity {
        ip,
        ..QuotaEntity::default()
    };
    quotas
        .get(&entity(Some(Some(ip.to_string()))), key)
        .or_else(|| quotas.get(&entity(Some(None)), key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::quotas::{
        ClientQuotaRecord, QuotaValue, CONNECTION_CREATION_RATE, PRODUCER_BYTE_RATE,
    };

    fn set(
        quotas: &mut ClientQuotas,
        user: Option<Option<&str>>,
        client: Option<Option<&str>>,
        value: f64,
    ) {
        let mut entity = Vec::new();
        if let Some(user) = user {
            entity.push(("user".to_string(), user.map(str::to_string)));
        }
        if let Some(client) = client {
            entity.push(("client-id".to_string(), client.map(str::to_string)));
        }
        quotas
            .apply(&ClientQuotaRecord {
                entity,
                key: PRODUCER_BYTE_RATE.to_string(),
                value: QuotaValue(value),
                remove: false,
            })
            .expect("apply");
    }

    fn bound(quotas: &ClientQuotas, user: &str, client: &str) -> Option<(f64, Tags)> {
        resolve(quotas, PRODUCER_BYTE_RATE, user, client).map(|r| (r.bound, r.tags))
    }

    #[test]
    fn each_level_wins_over_those_below_it() {
        let mut quotas = ClientQuotas::default();
        assert_eq!(bound(&quotas, "alice", "app"), None);
        // Set from the lowest level up; each new one takes over.
        type Level<'a> = (Option<Option<&'a str>>, Option<Option<&'a str>>, Tags);
        let levels: [Level; 8] = [
            (None, Some(None), CLIENT_ONLY),
            (None, Some(Some("app")), CLIENT_ONLY),
            (Some(None), None, USER_ONLY),
            (Some(None), Some(None), BOTH),
            (Some(None), Some(Some("app")), BOTH),
            (Some(Some("alice")), None, USER_ONLY),
            (Some(Some("alice")), Some(None), BOTH),
            (Some(Some("alice")), Some(Some("app")), BOTH),
        ];
        for (n, (user, client, tags)) in levels.into_iter().enumerate() {
            let value = 100.0 * (n + 1) as f64;
            set(&mut quotas, user, client, value);
            assert_eq!(
                bound(&quotas, "alice", "app"),
                Some((value, tags)),
                "level {}",
                8 - n
            );
        }
        // Another user falls to the user-default levels, another client id
        // of alice to alice's client-id default.
        assert_eq!(bound(&quotas, "bob", "app"), Some((500.0, BOTH)));
        assert_eq!(bound(&quotas, "bob", "other"), Some((400.0, BOTH)));
        assert_eq!(bound(&quotas, "alice", "other"), Some((700.0, BOTH)));
    }

    #[test]
    fn a_user_quota_is_shared_by_the_users_client_ids() {
        let mut quotas = ClientQuotas::default();
        set(&mut quotas, Some(Some("alice")), None, 1024.0);
        assert_eq!(bound(&quotas, "alice", "a"), Some((1024.0, USER_ONLY)));
        assert_eq!(bound(&quotas, "alice", "b"), Some((1024.0, USER_ONLY)));
        assert_eq!(bound(&quotas, "bob", "a"), None);
    }

    #[test]
    fn an_ip_has_its_own_rate_or_the_default() {
        let mut quotas = ClientQuotas::default();
        let ip: IpAddr = "10.0.0.1".parse().expect("ip");
        assert_eq!(
            ip_connection_rate(&quotas, CONNECTION_CREATION_RATE, ip),
            None
        );
        let record = |name: Option<&str>, value| ClientQuotaRecord {
            entity: vec![("ip".to_string(), name.map(str::to_string))],
            key: CONNECTION_CREATION_RATE.to_string(),
            value: QuotaValue(value),
            remove: false,
        };
        quotas.apply(&record(None, 5.0)).expect("apply");
        assert_eq!(
            ip_connection_rate(&quotas, CONNECTION_CREATION_RATE, ip),
            Some(5.0)
        );
        quotas.apply(&record(Some("10.0.0.1"), 2.0)).expect("apply");
        assert_eq!(
            ip_connection_rate(&quotas, CONNECTION_CREATION_RATE, ip),
            Some(2.0)
        );
        let other: IpAddr = "10.0.0.2".parse().expect("ip");
        assert_eq!(
            ip_connection_rate(&quotas, CONNECTION_CREATION_RATE, other),
            Some(5.0)
        );
    }
}
