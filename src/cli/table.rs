//! The tables the tools print, in the two shapes of Kafka's tools, and the
//! broker ids a tool asks one by one.
//!
//! Invariant: a column is as wide as its widest cell, header included; the
//! text is the same for the same rows, so scripts can parse it.

use kafka_protocol::messages::BrokerId;

use crate::client::Cluster;

/// How a table's cells are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// kafka-consumer-groups.sh: left-aligned, one space apart, the last
    /// column not padded.
    Spaced,
    /// kafka-transactions.sh: every cell left-aligned, padded and followed
    /// by a tab.
    Tabbed,
}

/// One line per row, header first, laid out as `layout` says.
pub fn table(layout: Layout, header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        for (index, (cell, width)) in cells.zip(&widths).enumerate() {
            match layout {
                Layout::Spaced if index + 1 == widths.len() => out.push_str(cell),
                Layout::Spaced => out.push_str(&format!("{cell:<width$} ")),
                Layout::Tabbed => out.push_str(&format!("{cell:<width$}\t")),
            }
        }
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

/// The ids of every broker `cluster`'s metadata names.
pub fn broker_ids(cluster: &Cluster) -> Vec<BrokerId> {
    cluster
        .metadata()
        .brokers
        .iter()
        .map(|broker| broker.node_id)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_as_wide_as_their_widest_cell_in_either_layout() {
        let rows = vec![vec!["a-long-id".to_owned(), "1".to_owned()]];
        let header = ["Id", "Coordinator"];
        assert_eq!(
            table(Layout::Spaced, &header, &rows),
            "Id        Coordinator\na-long-id 1\n"
        );
        assert_eq!(
            table(Layout::Tabbed, &header, &rows),
            "Id       \tCoordinator\t\na-long-id\t1          \t\n"
        );
    }
}
