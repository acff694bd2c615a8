//! Client quotas in the cluster metadata, as Kafka keeps them:
//! ClientQuotaRecord (api key 14: an entity of (type, name or null for
//! the default) pairs, a key, a value, a removal flag), its framing, the
//! image's part (`ClientQuotas`, each entity's keys and values), the
//! controller's pure decision on an AlterClientQuotas request (Kafka's
//! `ClientQuotaControlManager`: entity and key validation, a record only
//! for what changes) and DescribeClientQuotas' filter (Kafka's
//! `ClientQuotasImage.describe`: exact, default and "specified" matches,
//! strict or not).
//!
//! Entities are `user`, `client-id` (together or alone) and `ip` (alone).
//! The keys of a user or client-id entity are `producer_byte_rate`,
//! `consumer_byte_rate` (whole numbers), `request_percentage` and
//! `controller_mutation_rate`; an ip entity's only key is
//! `connection_creation_rate` (a whole number). `quota::precedence`
//! reads these to find the quota of a connection.
//!
//! Invariant: an entity in the image has at least one key, and every
//! entity was applied from records whole; the count of entities having
//! each key (`keys`) is kept with the map, so that "is any quota of this
//! kind set" costs one lookup and no allocation.

use std::collections::BTreeMap;
use std::net::IpAddr;

use bytes::{BufMut, BytesMut};
use kafka_protocol::error::ResponseError;

use super::records::MetadataRecord;
use crate::protocol::schema::{
    put_compact_length, put_compact_string, put_no_tagged_fields, Reader, RecordError,
};

/// Kafka's api key of ClientQuotaRecord.
pub const CLIENT_QUOTA_KEY: u32 = 14;

/// Kafka's entity types (`ClientQuotaEntity`).
pub const USER: &str = "user";
pub const CLIENT_ID: &str = "client-id";
pub const IP: &str = "ip";

/// Kafka's quota keys (`QuotaConfig`).
pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
pub const REQUEST_PERCENTAGE: &str = "request_percentage";
pub const CONTROLLER_MUTATION_RATE: &str = "controller_mutation_rate";
pub const CONNECTION_CREATION_RATE: &str = "connection_creation_rate";

/// DescribeClientQuotas' match types.
pub const MATCH_TYPE_EXACT: i8 = 0;
pub const MATCH_TYPE_DEFAULT: i8 = 1;
pub const MATCH_TYPE_SPECIFIED: i8 = 2;

/// A quota value. Kafka's are doubles; the wrapper compares bit for bit,
/// so that records (and the image) can be `Eq` as the others are.
#[derive(Debug, Clone, Copy)]
pub struct QuotaValue(pub f64);

impl PartialEq for QuotaValue {
    fn eq(&self, other: &QuotaValue) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for QuotaValue {}

/// ClientQuotaRecord (api key 14, version 0), the entity as written:
/// (entity type, name; `None` the default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientQuotaRecord {
    pub entity: Vec<(String, Option<String>)>,
    pub key: String,
    pub value: QuotaValue,
    pub remove: bool,
}

pub fn put_client_quota(buf: &mut BytesMut, record: &ClientQuotaRecord) {
    put_compact_length(buf, Some(record.entity.len()));
    for (entity_type, name) in &record.entity {
        put_compact_string(buf, Some(entity_type));
        put_compact_string(buf, name.as_deref());
        put_no_tagged_fields(buf);
    }
    put_compact_string(buf, Some(&record.key));
    buf.put_f64(record.value.0);
    buf.put_i8(i8::from(record.remove));
    put_no_tagged_fields(buf);
}

pub fn read_client_quota(reader: &mut Reader<'_>) -> Result<ClientQuotaRecord, RecordError> {
    let count = reader.array_len()?;
    let mut entity = Vec::with_capacity(count);
    for _ in 0..count {
        let entity_type = reader.string()?;
        let name = reader.nullable_string()?;
        reader.tagged_fields()?;
        entity.push((entity_type, name));
    }
    let key = reader.string()?;
    let value = QuotaValue(f64::from_bits(reader.i64()? as u64));
    let remove = reader.i8()? != 0;
    reader.tagged_fields()?;
    Ok(ClientQuotaRecord {
        entity,
        key,
        value,
        remove,
    })
}

/// One part of an entity: absent, the default (`Some(None)`), or a name.
pub type EntityName = Option<Option<String>>;

/// A quota entity, validated: which of user, client id and ip it names.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QuotaEntity {
    pub user: EntityName,
    pub client_id: EntityName,
    pub ip: EntityName,
}

/// An error Kafka answers for one entity or request: its code and message.
pub type QuotaError = (ResponseError, String);

fn invalid(message: impl Into<String>) -> QuotaError {
    (ResponseError::InvalidRequest, message.into())
}

impl QuotaEntity {
    /// Kafka's `validateEntity` and `configKeysForEntityType`: known types
    /// each once, no empty name, ip alone, not empty.
    pub fn parse<'a>(
        parts: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> Result<QuotaEntity, QuotaError> {
        let mut entity = QuotaEntity::default();
        for (entity_type, name) in parts {
            let slot = match entity_type {
                USER => &mut entity.user,
                CLIENT_ID => &mut entity.client_id,
                IP => &mut entity.ip,
                other => {
                    return Err(invalid(format!(
                        "Unhandled client quota entity type: {other}"
                    )))
                }
            };
            if slot.is_some() {
                return Err(invalid(format!(
                    "Invalid client quota entity, duplicate entity entry {entity_type}"
                )));
            }
            if name == Some("") {
                return Err(invalid(format!("Empty {entity_type} not supported")));
            }
            *slot = Some(name.map(str::to_string));
        }
        let user_or_client = entity.user.is_some() || entity.client_id.is_some();
        let refused = match &entity.ip {
            Some(_) if user_or_client => Some(invalid(
                "Invalid quota entity combination, IP entity should not be combined with User or ClientId",
            )),
            Some(Some(ip)) if ip.parse::<IpAddr>().is_err() => Some(invalid(format!(
                "{ip} is not a valid IP or resolvable host."
            ))),
            None if !user_or_client => Some(invalid("Invalid empty client quota entity")),
            _ => None,
        };
        match refused {
            Some(error) => Err(error),
            None => Ok(entity),
        }
    }

    /// The (type, name) pairs, user first, as records and answers carry them.
    pub fn parts(&self) -> Vec<(&'static str, Option<&str>)> {
        [
            (USER, &self.user),
            (CLIENT_ID, &self.client_id),
            (IP, &self.ip),
        ]
        .into_iter()
        .filter_map(|(entity_type, name)| Some((entity_type, name.as_ref()?.as_deref())))
        .collect()
    }

    fn record_parts(&self) -> Vec<(String, Option<String>)> {
        self.parts()
            .into_iter()
            .map(|(entity_type, name)| (entity_type.to_string(), name.map(str::to_string)))
            .collect()
    }

    /// Kafka's type of `key` for this entity, `None` for a key it may
    /// not hold.
    fn key_type(&self, key: &str) -> Option<KeyType> {
        match (self.ip.is_some(), key) {
            (true, CONNECTION_CREATION_RATE) => Some(KeyType::Int),
            (false, PRODUCER_BYTE_RATE | CONSUMER_BYTE_RATE) => Some(KeyType::Long),
            (false, REQUEST_PERCENTAGE | CONTROLLER_MUTATION_RATE) => Some(KeyType::Double),
            _ => None,
        }
    }
}

/// The config types of Kafka's quota keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyType {
    Int,
    Long,
    Double,
}

/// Kafka's tolerance for a whole number sent as a double.
const FRACTION_TOLERANCE: f64 = 1e-6;

/// Kafka's `validateQuotaKeyValue` for a value to set.
fn check_value(entity: &QuotaEntity, key: &str, value: f64) -> Result<(), QuotaError> {
    let Some(key_type) = entity.key_type(key) else {
        return Err(invalid(format!("Invalid configuration key {key}")));
    };
    if value <= 0.0 || value.is_nan() {
        return Err(invalid(format!("Quota {key} must be greater than 0")));
    }
    let too_large = match key_type {
        KeyType::Int if value > f64::from(i32::MAX) => "an INT",
        KeyType::Long if value > i64::MAX as f64 => "a LONG",
        KeyType::Double => return Ok(()),
        _ => "",
    };
    if !too_large.is_empty() {
        return Err(invalid(format!(
            "Proposed value for {key} is too large for {too_large}."
        )));
    }
    if (value % 1.0).abs() > FRACTION_TOLERANCE {
        return Err(invalid(format!("{key} cannot be a fractional value.")));
    }
    Ok(())
}

/// The image's client quotas: each entity's keys and values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientQuotas {
    by_entity: BTreeMap<QuotaEntity, BTreeMap<String, QuotaValue>>,
    /// How many entities hold each key.
    keys: BTreeMap<String, usize>,
}

impl ClientQuotas {
    pub fn is_empty(&self) -> bool {
        self.by_entity.is_empty()
    }

    /// Whether any entity has a quota of `key`: one lookup, no allocation.
    pub fn has_key(&self, key: &str) -> bool {
        self.keys.contains_key(key)
    }

    /// The value of `key` for exactly `entity`.
    pub fn get(&self, entity: &QuotaEntity, key: &str) -> Option<f64> {
        self.by_entity.get(entity)?.get(key).map(|value| value.0)
    }

    /// Whether `entity` holds `key` (Kafka's per quota type maps).
    pub fn holds(&self, entity: &QuotaEntity, key: &str) -> bool {
        self.get(entity, key).is_some()
    }

    /// Replays a record (Kafka's `ClientQuotaControlManager.replay`); an
    /// entity Kafka could not have written is refused with its message.
    pub fn apply(&mut self, record: &ClientQuotaRecord) -> Result<(), String> {
        let parts = record
            .entity
            .iter()
            .map(|(entity_type, name)| (entity_type.as_str(), name.as_deref()));
        let entity = QuotaEntity::parse(parts).map_err(|(_, message)| message)?;
        let quotas = self.by_entity.entry(entity.clone()).or_default();
        if record.remove {
            if quotas.remove(&record.key).is_some() {
                Self::uncount(&mut self.keys, &record.key);
            }
            if quotas.is_empty() {
                self.by_entity.remove(&entity);
            }
        } else if quotas.insert(record.key.clone(), record.value).is_none() {
            *self.keys.entry(record.key.clone()).or_default() += 1;
        }
        Ok(())
    }

    fn uncount(keys: &mut BTreeMap<String, usize>, key: &str) {
        if let Some(count) = keys.get_mut(key) {
            *count -= 1;
            if *count == 0 {
                keys.remove(key);
            }
        }
    }

    /// The records that rebuild these quotas.
    pub fn records(&self) -> impl Iterator<Item = ClientQuotaRecord> + '_ {
        self.by_entity.iter().flat_map(|(entity, quotas)| {
            quotas.iter().map(move |(key, value)| ClientQuotaRecord {
                entity: entity.record_parts(),
                key: key.clone(),
                value: *value,
                remove: false,
            })
        })
    }

    /// Every entity and its quotas, in entity order.
    pub fn entries(&self) -> impl Iterator<Item = EntityQuotas<'_>> {
        self.by_entity.iter()
    }
}

/// One entry of an AlterClientQuotas request: the entity as sent, and its
/// operations (`None`: remove the key).
#[derive(Debug, Clone, PartialEq)]
pub struct QuotaAlteration {
    pub entity: Vec<(String, Option<String>)>,
    pub ops: Vec<(String, Option<f64>)>,
}

/// The outcome for one entry of the request, in the request's order.
pub type QuotaResult = Option<QuotaError>;

/// What one AlterClientQuotas makes of `current`: the records, and one
/// result per entry (Kafka's `alterClientQuotas`: a key twice in an entry
/// refuses the entry, an entity named twice is refused each time, each
/// entry checked on its own, a record only where the value changes).
pub fn alter(
    current: &ClientQuotas,
    alterations: &[QuotaAlteration],
) -> (Vec<MetadataRecord>, Vec<QuotaResult>) {
    let entities: Vec<Result<QuotaEntity, QuotaError>> = alterations
        .iter()
        .map(|alteration| {
            QuotaEntity::parse(
                alteration
                    .entity
                    .iter()
                    .map(|(entity_type, name)| (entity_type.as_str(), name.as_deref())),
            )
        })
        .collect();
    let mut records = Vec::new();
    let mut results = Vec::with_capacity(alterations.len());
    for (index, (alteration, entity)) in alterations.iter().zip(&entities).enumerate() {
        let twice = entity.as_ref().is_ok_and(|entity| {
            entities
                .iter()
                .enumerate()
                .any(|(other, e)| other != index && matches!(e, Ok(e) if e == entity))
        });
        let outcome = match entity {
            Err(error) => Err(error.clone()),
            Ok(entity) if twice => Err(invalid(format!("Ignoring duplicate entity {entity:?}"))),
            Ok(entity) => alter_entity(current, entity, &alteration.ops),
        };
        match outcome {
            Ok(mut made) => {
                records.append(&mut made);
                results.push(None);
            }
            Err(error) => results.push(Some(error)),
        }
    }
    (records, results)
}

/// One entity's records, or its error and no record.
fn alter_entity(
    current: &ClientQuotas,
    entity: &QuotaEntity,
    ops: &[(String, Option<f64>)],
) -> Result<Vec<MetadataRecord>, QuotaError> {
    let mut records = Vec::new();
    for (index, (key, value)) in ops.iter().enumerate() {
        if ops[..index].iter().any(|(earlier, _)| earlier == key) {
            return Err(invalid(format!(
                "Duplicate quota key {key} not updating quota for this entity {entity:?}"
            )));
        }
        let existing = current.get(entity, key);
        let record = |value: f64, remove: bool| {
            MetadataRecord::ClientQuota(ClientQuotaRecord {
                entity: entity.record_parts(),
                key: key.clone(),
                value: QuotaValue(value),
                remove,
            })
        };
        match value {
            None if existing.is_some() => records.push(record(0.0, true)),
            None => {}
            Some(value) => {
                check_value(entity, key, *value)?;
                if existing.map(f64::to_bits) != Some(value.to_bits()) {
                    records.push(record(*value, false));
                }
            }
        }
    }
    Ok(records)
}

/// One component of a DescribeClientQuotas filter, as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterComponent {
    pub entity_type: String,
    pub match_type: i8,
    pub matched: Option<String>,
}

/// A checked filter: names each type must have (`None` the default), and
/// types that must merely be present.
#[derive(Debug, Default)]
struct Filter {
    exact: BTreeMap<String, Option<String>>,
    specified: Vec<String>,
}

fn filter_of(components: &[FilterComponent]) -> Result<Filter, QuotaError> {
    let mut filter = Filter::default();
    for component in components {
        let entity_type = component.entity_type.as_str();
        if entity_type.is_empty() {
            return Err(invalid("Invalid empty entity type."));
        }
        if filter.exact.contains_key(entity_type)
            || filter.specified.iter().any(|t| t == entity_type)
        {
            return Err(invalid(format!(
                "Entity type {entity_type} cannot appear more than once in the filter."
            )));
        }
        if ![USER, CLIENT_ID, IP].contains(&entity_type) {
            return Err((
                ResponseError::UnsupportedVersion,
                format!("Unsupported entity type {entity_type}"),
            ));
        }
        let matched = component.matched.clone();
        match (component.match_type, matched) {
            (MATCH_TYPE_EXACT, Some(name)) => {
                filter.exact.insert(entity_type.to_string(), Some(name));
            }
            (MATCH_TYPE_EXACT, None) => {
                return Err(invalid(
                    "Request specified MATCH_TYPE_EXACT, but set match string to null.",
                ))
            }
            (MATCH_TYPE_DEFAULT, None) => {
                filter.exact.insert(entity_type.to_string(), None);
            }
            (MATCH_TYPE_DEFAULT, Some(_)) => {
                return Err(invalid(
                    "Request specified MATCH_TYPE_DEFAULT, but also specified a match string.",
                ))
            }
            (MATCH_TYPE_SPECIFIED, None) => filter.specified.push(entity_type.to_string()),
            (MATCH_TYPE_SPECIFIED, Some(_)) => {
                return Err(invalid(
                    "Request specified MATCH_TYPE_SPECIFIED, but also specified a match string.",
                ))
            }
            (other, _) => return Err(invalid(format!("Unknown match type {other}"))),
        }
    }
    let names = |t: &str| filter.exact.contains_key(t) || filter.specified.iter().any(|s| s == t);
    if names(IP) && (names(USER) || names(CLIENT_ID)) {
        return Err(invalid(
            "Invalid entity filter component combination. IP filter component should not be used with user or clientId filter component.",
        ));
    }
    Ok(filter)
}

fn entity_name<'a>(entity: &'a QuotaEntity, entity_type: &str) -> Option<&'a Option<String>> {
    match entity_type {
        USER => entity.user.as_ref(),
        CLIENT_ID => entity.client_id.as_ref(),
        _ => entity.ip.as_ref(),
    }
}

fn matches(entity: &QuotaEntity, filter: &Filter, strict: bool) -> bool {
    if strict && entity.parts().len() != filter.exact.len() + filter.specified.len() {
        return false;
    }
    let exact = filter
        .exact
        .iter()
        .all(|(entity_type, name)| entity_name(entity, entity_type) == Some(name));
    exact
        && filter
            .specified
            .iter()
            .all(|entity_type| entity_name(entity, entity_type).is_some())
}

/// An entity and its quotas, as the image holds them.
pub type EntityQuotas<'a> = (&'a QuotaEntity, &'a BTreeMap<String, QuotaValue>);

/// The entities `components` match and their quotas (Kafka's
/// `ClientQuotasImage.describe`), or the request's error.
pub fn describe<'a>(
    quotas: &'a ClientQuotas,
    components: &[FilterComponent],
    strict: bool,
) -> Result<Vec<EntityQuotas<'a>>, QuotaError> {
    let filter = filter_of(components)?;
    Ok(quotas
        .entries()
        .filter(|(entity, _)| matches(entity, &filter, strict))
        .collect())
}

#[cfg(test)]
#[path = "quotas_tests.rs"]
mod tests;
