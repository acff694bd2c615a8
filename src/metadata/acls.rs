//! ACLs in the cluster metadata: Kafka's AccessControlEntryRecord (api
//! key 18) and RemoveAccessControlEntryRecord (19), their bodies' codec,
//! and the controller's decisions for CreateAcls and DeleteAcls
//! (`AclControlManager`): each new ACL validated and, unless an equal one
//! exists, given a fresh id and a record; each filter's matches removed
//! by id. The image keeps the ACLs by id (`MetadataImage::acls`); every
//! shard's view indexes them for the authorizer (`security::acl`).
//!
//! Invariant: pure. The ids come from the caller (the controller's driver
//! draws them), so the same image and requests always give the same
//! records; one request never makes more than `ACL_RECORDS_PER_REQUEST_MAX`
//! records.

use std::collections::{BTreeMap, BTreeSet};

use bytes::{BufMut, BytesMut};
use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use super::controller::KafkaError;
use super::records::MetadataRecord;
use crate::protocol::schema::{put_compact_string, put_no_tagged_fields, Reader, RecordError};
use crate::security::acl::{Acl, AclFilter, Operation, PatternType, Permission, ResourceType};

/// Kafka's `MAX_RECORDS_PER_USER_OP`: the records one CreateAcls or
/// DeleteAcls may commit, so one request cannot make a metadata log
/// entry without bound.
pub const ACL_RECORDS_PER_REQUEST_MAX: usize = 10_000;

/// AccessControlEntryRecord's body (version 0).
pub fn put_acl(buf: &mut BytesMut, id: &Uuid, acl: &Acl) {
    buf.put_slice(id.as_bytes());
    buf.put_i8(acl.resource_type.code());
    put_compact_string(buf, Some(&acl.resource_name));
    buf.put_i8(acl.pattern_type.code());
    put_compact_string(buf, Some(&acl.principal));
    put_compact_string(buf, Some(&acl.host));
    buf.put_i8(acl.operation.code());
    buf.put_i8(acl.permission.code());
    put_no_tagged_fields(buf);
}

/// AccessControlEntryRecord's body, read.
pub fn read_acl(reader: &mut Reader<'_>) -> Result<MetadataRecord, RecordError> {
    let id = reader.uuid()?;
    let resource_type = ResourceType::from_code(reader.i8()?);
    let resource_name = reader.string()?;
    let pattern_type = PatternType::from_code(reader.i8()?);
    let principal = reader.string()?;
    let host = reader.string()?;
    let operation = Operation::from_code(reader.i8()?);
    let permission = Permission::from_code(reader.i8()?);
    reader.tagged_fields()?;
    let acl = Acl {
        resource_type,
        resource_name,
        pattern_type,
        principal,
        host,
        operation,
        permission,
    };
    Ok(MetadataRecord::AccessControlEntry { id, acl })
}

/// The ACLs of `acls` (the image's, by id) that `filter` matches.
pub fn matching<'a>(
    acls: &'a BTreeMap<Uuid, Acl>,
    filter: &'a AclFilter,
) -> impl Iterator<Item = (&'a Uuid, &'a Acl)> {
    acls.iter().filter(|(_, acl)| filter.matches(acl))
}

/// CreateAcls against `acls`: one result per ACL, in order, and the
/// records of the new ones (an ACL equal to one that exists, or to an
/// earlier one of the request, succeeds without a record). `next_id`
/// draws the ids; one already taken is drawn again.
pub fn create(
    acls: &BTreeMap<Uuid, Acl>,
    creations: Vec<Acl>,
    mut next_id: impl FnMut() -> Uuid,
) -> (Vec<MetadataRecord>, Vec<Result<(), KafkaError>>) {
    let existing: BTreeSet<&Acl> = acls.values().collect();
    let mut added: Vec<Acl> = Vec::new();
    let mut results = Vec::with_capacity(creations.len());
    for acl in creations {
        if let Some(reason) = acl.invalid() {
            results.push(Err(KafkaError::with_message(
                ResponseError::InvalidRequest,
                reason,
            )));
            continue;
        }
        if existing.contains(&acl) || added.contains(&acl) {
            results.push(Ok(()));
            continue;
        }
        if added.len() == ACL_RECORDS_PER_REQUEST_MAX {
            results.push(Err(too_many()));
            continue;
        }
        added.push(acl);
        results.push(Ok(()));
    }
    let mut records = Vec::with_capacity(added.len());
    let mut taken: BTreeSet<Uuid> = BTreeSet::new();
    for acl in added {
        let id = loop {
            let id = next_id();
            if !acls.contains_key(&id) && taken.insert(id) {
                break id;
            }
        };
        records.push(MetadataRecord::AccessControlEntry { id, acl });
    }
    (records, results)
}

/// DeleteAcls against `acls`: for each filter, in order, the ACLs it
/// removes (INVALID_REQUEST for an invalid filter), and the removal
/// records (each ACL once, however many filters match it). Past
/// `ACL_RECORDS_PER_REQUEST_MAX` removals the whole request is refused,
/// as Kafka's is (its records are atomic).
pub fn delete(
    acls: &BTreeMap<Uuid, Acl>,
    filters: &[AclFilter],
) -> (Vec<MetadataRecord>, Vec<Result<Vec<Acl>, KafkaError>>) {
    let mut removed: BTreeSet<Uuid> = BTreeSet::new();
    let mut results = Vec::with_capacity(filters.len());
    for filter in filters {
        if let Some(reason) = filter.invalid() {
            results.push(Err(KafkaError::with_message(
                ResponseError::InvalidRequest,
                reason,
            )));
            continue;
        }
        let mut deleted = Vec::new();
        for (id, acl) in matching(acls, filter) {
            removed.insert(*id);
            deleted.push(acl.clone());
        }
        results.push(Ok(deleted));
    }
    if removed.len() > ACL_RECORDS_PER_REQUEST_MAX {
        let results = filters.iter().map(|_| Err(too_many())).collect();
        return (Vec::new(), results);
    }
    let records = removed
        .into_iter()
        .map(|id| MetadataRecord::RemoveAccessControlEntry { id })
        .collect();
    (records, results)
}

fn too_many() -> KafkaError {
    KafkaError::with_message(
        ResponseError::InvalidRequest,
        format!("Cannot change more than {ACL_RECORDS_PER_REQUEST_MAX} ACLs in one request"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::acl::WILDCARD;

    fn acl(name: &str, operation: Operation) -> Acl {
        Acl {
            resource_type: ResourceType::Topic,
            resource_name: name.into(),
            pattern_type: PatternType::Literal,
            principal: "User:alice".into(),
            host: WILDCARD.into(),
            operation,
            permission: Permission::Allow,
        }
    }

    fn ids() -> impl FnMut() -> Uuid {
        let mut next = 0u128;
        move || {
            next += 1;
            Uuid::from_u128(next / 2 + 1)
        }
    }

    fn image_of(records: &[MetadataRecord]) -> BTreeMap<Uuid, Acl> {
        let mut acls = BTreeMap::new();
        for record in records {
            match record {
                MetadataRecord::AccessControlEntry { id, acl } => acls.insert(*id, acl.clone()),
                MetadataRecord::RemoveAccessControlEntry { id } => acls.remove(id),
                other => panic!("{other:?}"),
            };
        }
        acls
    }

    #[test]
    fn created_acls_get_distinct_ids_and_duplicates_no_record() {
        let read = acl("t", Operation::Read);
        let bad = Acl {
            resource_name: String::new(),
            ..read.clone()
        };
        let (records, results) = create(
            &BTreeMap::new(),
            vec![read.clone(), read.clone(), bad, acl("t", Operation::Write)],
            ids(),
        );
        assert_eq!(records.len(), 2);
        assert!(results[0].is_ok() && results[1].is_ok() && results[3].is_ok());
        let error = results[2].as_ref().unwrap_err();
        assert_eq!(error.code, ResponseError::InvalidRequest.code());
        let acls = image_of(&records);
        assert_eq!(acls.len(), 2);
        // Again: every ACL exists, nothing to write.
        let (records, results) = create(&acls, vec![read], ids());
        assert!(records.is_empty());
        assert!(results[0].is_ok());
    }

    #[test]
    fn deleting_removes_each_match_once_and_reports_per_filter() {
        let (records, _) = create(
            &BTreeMap::new(),
            vec![acl("t", Operation::Read), acl("u", Operation::Read)],
            ids(),
        );
        let acls = image_of(&records);
        let all = AclFilter {
            resource_type: ResourceType::Any,
            resource_name: None,
            pattern_type: PatternType::Any,
            principal: None,
            host: None,
            operation: Operation::Any,
            permission: Permission::Any,
        };
        let just_t = AclFilter::exactly(&acl("t", Operation::Read));
        let invalid = AclFilter {
            pattern_type: PatternType::Unknown,
            ..all.clone()
        };
        let (removals, results) = delete(&acls, &[just_t, all, invalid]);
        assert_eq!(removals.len(), 2);
        assert_eq!(results[0].as_ref().unwrap().len(), 1);
        assert_eq!(results[1].as_ref().unwrap().len(), 2);
        assert!(results[2].is_err());
        let mut all_records = records.clone();
        all_records.extend(removals);
        assert!(image_of(&all_records).is_empty());
    }

    #[test]
    fn records_round_trip_in_kafkas_framing() {
        let record = MetadataRecord::AccessControlEntry {
            id: Uuid::from_u128(7),
            acl: Acl {
                pattern_type: PatternType::Prefixed,
                permission: Permission::Deny,
                host: "10.0.0.1".into(),
                ..acl("fin.", Operation::All)
            },
        };
        let removal = MetadataRecord::RemoveAccessControlEntry {
            id: Uuid::from_u128(7),
        };
        for record in [record, removal] {
            let bytes = record.encode();
            assert_eq!(MetadataRecord::decode(&bytes).unwrap(), record);
            for cut in 0..bytes.len() {
                assert!(MetadataRecord::decode(&bytes[..cut]).is_err());
            }
        }
        let encoded = MetadataRecord::AccessControlEntry {
            id: Uuid::nil(),
            acl: acl("t", Operation::Read),
        }
        .encode();
        // Frame version 1, api key 18, version 0.
        assert_eq!(&encoded[..3], &[1, 18, 0]);
    }
}
