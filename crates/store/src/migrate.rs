//! Versioned migrations, embedded in the binary, applied at start-up and by `patron migrate`.
//! The same files serve SQLite and PostgreSQL.

use crate::binds;
use crate::error::Unique;
use crate::{Store, StoreError};

/// (version, name, SQL), in order. Never edit a released migration: add a new one.
pub const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "engine", include_str!("../migrations/0001_engine.sql")),
    (
        2,
        "integration",
        include_str!("../migrations/0002_integration.sql"),
    ),
    (3, "drafts", include_str!("../migrations/0003_drafts.sql")),
    (
        4,
        "member_access",
        include_str!("../migrations/0004_member_access.sql"),
    ),
    (
        5,
        "expiry_notices",
        include_str!("../migrations/0005_expiry_notices.sql"),
    ),
    (
        6,
        "report_indexes",
        include_str!("../migrations/0006_report_indexes.sql"),
    ),
    (
        7,
        "quarantine",
        include_str!("../migrations/0007_quarantine.sql"),
    ),
    (
        8,
        "refunds_actor",
        include_str!("../migrations/0008_refunds_actor.sql"),
    ),
    (
        9,
        "admin_search",
        include_str!("../migrations/0009_admin_search.sql"),
    ),
    (10, "assets", include_str!("../migrations/0010_assets.sql")),
    (
        11,
        "figures",
        include_str!("../migrations/0011_figures.sql"),
    ),
    (
        12,
        "gaps_by_day",
        include_str!("../migrations/0012_gaps_by_day.sql"),
    ),
    (
        13,
        "profiles_segments",
        include_str!("../migrations/0013_profiles_segments.sql"),
    ),
    (
        14,
        "campaigns",
        include_str!("../migrations/0014_campaigns.sql"),
    ),
];

/// The migration that adds the members' search keys, filled in for existing members.
const SEARCH_KEYS_MIGRATION: i64 = 9;
/// The migration that adds the dashboard's kept figures, filled in for existing tenants.
const FIGURES_MIGRATION: i64 = 11;

/// Applies every migration not yet applied; returns how many were applied.
pub async fn run(store: &Store) -> Result<usize, StoreError> {
    store
        .db
        .batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
        )
        .await?;
    let applied = applied(store).await?;
    let mut count = 0;
    for (version, name, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        // The version's row first: a second process starting at the same moment waits on it
        // and, once the first commits, finds it taken and skips the migration (its DDL would
        // otherwise fail on the tables the first one made).
        let mut tx = store.db.begin_write().await?;
        let inserted = tx
            .execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                binds![*version, *name, chrono::Utc::now().timestamp_micros()],
            )
            .await;
        match inserted {
            Ok(_) => {}
            // Another process applied it first.
            Err(error) if error.violated() == Some(Unique::MigrationVersion) => {
                tx.rollback().await?;
                continue;
            }
            Err(error) => return Err(error),
        }
        for statement in statements(sql) {
            tx.batch(&statement).await?;
        }
        if *version == SEARCH_KEYS_MIGRATION {
            crate::members::backfill_search_keys(&mut tx).await?;
        }
        if *version == FIGURES_MIGRATION {
            crate::figures::rebuild_all(&mut tx).await?;
        }
        tx.commit().await?;
        count += 1;
    }
    Ok(count)
}

/// The versions applied (none on an empty database).
async fn applied(store: &Store) -> Result<Vec<i64>, StoreError> {
    let rows = match store
        .db
        .fetch("SELECT version FROM schema_migrations", Vec::new())
        .await
    {
        Ok(rows) => rows,
        Err(_) => return Ok(Vec::new()),
    };
    rows.iter().map(|row| row.int("version")).collect()
}

/// How many migrations are not applied yet (all of them on an empty database).
pub async fn pending(store: &Store) -> Result<usize, StoreError> {
    let applied = applied(store).await?;
    Ok(MIGRATIONS
        .iter()
        .filter(|(version, _, _)| !applied.contains(version))
        .count())
}

/// Splits a migration file into statements: `;` at the end of a line ends one; `--` lines are
/// comments.
fn statements(sql: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut current = String::new();
    for line in sql.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("--") || trimmed.is_empty() {
            continue;
        }
        current.push_str(line);
        current.push('\n');
        if trimmed.ends_with(';') {
            statements.push(std::mem::take(&mut current));
        }
    }
    if !current.trim().is_empty() {
        statements.push(current);
    }
    statements
}

#[cfg(test)]
mod tests {
    #[test]
    fn splits_statements() {
        let parts =
            super::statements("-- c\nCREATE TABLE a (x BIGINT);\n\nCREATE INDEX b\n ON a (x);\n");
        assert_eq!(parts.len(), 2);
        assert!(parts[1].contains("ON a (x);"));
    }
}
