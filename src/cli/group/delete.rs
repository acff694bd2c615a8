//! `shoal group delete`: DeleteGroups, with kafka-consumer-groups.sh's
//! summary.

use super::*;

/// DeleteGroups for each group at its coordinator; prints Kafka's summary
/// and fails if any group could not be deleted.
pub(super) fn delete(
    bootstrap: &str,
    groups: &[String],
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let mut deleted = Vec::new();
    let mut failed = Vec::new();
    for group_id in groups {
        let code = Coordinator::call(bootstrap, group_id, |c| {
            let response = c
                .conn
                .send(DeleteGroupsRequest::default().with_groups_names(vec![group(group_id)]))?;
            let result = response
                .results
                .iter()
                .find(|r| r.group_id.0.as_str() == group_id.as_str())
                .ok_or_else(|| anyhow!("DeleteGroups response does not mention {group_id}"))?;
            // Coordinator errors are retried; any other is this group's answer.
            if matches!(
                result.error_code,
                COORDINATOR_LOAD_IN_PROGRESS | COORDINATOR_NOT_AVAILABLE | NOT_COORDINATOR
            ) {
                check(result.error_code, None, &format!("group {group_id}"))?;
            }
            Ok(result.error_code)
        })?;
        if code == 0 {
            deleted.push(group_id.as_str());
        } else {
            failed.push((group_id.as_str(), code));
        }
    }
    write!(out, "{}", delete_summary(&deleted, &failed))?;
    if let Some((_, code)) = failed.first() {
        bail!(KafkaError {
            code: *code,
            message: "deletion of some consumer groups failed".to_owned(),
        });
    }
    Ok(())
}

/// kafka-consumer-groups.sh `--delete` output.
pub(super) fn delete_summary(deleted: &[&str], failed: &[(&str, i16)]) -> String {
    let quoted = |groups: &[&str]| {
        groups
            .iter()
            .map(|g| format!("'{g}'"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if failed.is_empty() {
        return format!(
            "Deletion of requested consumer groups ({}) was successful.\n",
            quoted(deleted)
        );
    }
    let mut out = String::from("Deletion of some consumer groups failed:\n");
    for (group_id, code) in failed {
        out.push_str(&format!(
            "* Group '{group_id}' could not be deleted due to: {}\n",
            crate::client::error_name(*code)
        ));
    }
    if !deleted.is_empty() {
        out.push_str(&format!(
            "\nThese consumer groups were deleted successfully: {}\n",
            quoted(deleted)
        ));
    }
    out
}
