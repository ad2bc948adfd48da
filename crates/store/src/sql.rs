//! Small helpers for SQL on both backends: multi-row statements, and lookups of a list of keys
//! (one array parameter on PostgreSQL, a `rarray` on SQLite).

use crate::Backend;

pub(crate) use crate::db::Bind;

/// Rows in one multi-row statement on SQLite.
pub(crate) const SQLITE_ROWS_PER_STATEMENT: usize = 32;

/// Rows in one multi-row statement on PostgreSQL.
pub(crate) const POSTGRES_ROWS_PER_STATEMENT: usize = 256;

/// Most values bound to one statement: under SQLite's 32,766 and PostgreSQL's 65,535.
pub(crate) const BIND_VALUES_MAX: usize = 30_000;

/// Placeholders for `count` values bound in order, the first being number `first`:
/// `$first, $first+1, …` for PostgreSQL. SQLite gets anonymous `?`: its lookup of a named or
/// numbered parameter is linear in the number of parameters, which makes binding a long
/// multi-row statement quadratic. SQLite numbers anonymous `?` by their own count, so a
/// statement must not mix them with `$n`: build every placeholder of it with this function.
pub(crate) fn placeholders(backend: Backend, first: usize, count: usize) -> String {
    let mut out = String::with_capacity(count * 5);
    for index in 0..count {
        if index > 0 {
            out.push(',');
        }
        match backend {
            Backend::Sqlite => out.push('?'),
            Backend::Postgres => {
                out.push('$');
                out.push_str(&(first + index).to_string());
            }
        }
    }
    out
}

/// Rows of values for a multi-row `INSERT … VALUES`, split into statements small enough to bind.
pub(crate) struct Rows {
    columns: usize,
    values: Vec<Bind>,
}

impl Rows {
    pub(crate) fn new(columns: usize) -> Rows {
        Rows {
            columns,
            values: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, row: Vec<Bind>) {
        assert_eq!(row.len(), self.columns, "row width");
        self.values.extend(row);
    }

    /// Statements `head VALUES (...),(...) tail` with their values.
    pub(crate) fn statements(
        self,
        backend: Backend,
        head: &str,
        tail: &str,
    ) -> Vec<(String, Vec<Bind>)> {
        let rows_per_statement = match backend {
            // Fixed, small statements: SQLite caches them prepared, where a new long statement
            // per batch would be parsed every time.
            Backend::Sqlite => SQLITE_ROWS_PER_STATEMENT,
            // Fewer round trips, in statements of a few fixed sizes that stay prepared.
            Backend::Postgres => {
                (BIND_VALUES_MAX / self.columns).clamp(1, POSTGRES_ROWS_PER_STATEMENT)
            }
        };
        let mut statements = Vec::new();
        let mut values = self.values.into_iter().peekable();
        while values.peek().is_some() {
            let chunk: Vec<Bind> = values
                .by_ref()
                .take(rows_per_statement * self.columns)
                .collect();
            let rows = chunk.len() / self.columns;
            let mut sql = String::with_capacity(head.len() + tail.len() + rows * self.columns * 6);
            sql.push_str(head);
            sql.push_str(" VALUES ");
            for row in 0..rows {
                if row > 0 {
                    sql.push(',');
                }
                sql.push('(');
                sql.push_str(&placeholders(backend, row * self.columns + 1, self.columns));
                sql.push(')');
            }
            sql.push(' ');
            sql.push_str(tail);
            statements.push((sql, chunk));
        }
        statements
    }
}

/// `column` is one of the list bound as `$index` ([`Bind::Ints`] or [`Bind::Texts`]):
/// `column = ANY($index)` on PostgreSQL, `column IN rarray($index)` on SQLite. One parameter
/// however long the list, so the statement stays prepared, and PostgreSQL plans it as an array
/// probe on the index rather than a list of a thousand guesses.
pub(crate) fn one_of(backend: Backend, column: &str, index: usize) -> String {
    match backend {
        Backend::Postgres => format!("{column} = ANY(${index})"),
        Backend::Sqlite => format!("{column} IN rarray(${index})"),
    }
}

/// `SELECT {columns} FROM members` for each id of the list bound as `$1`, of the tenant bound as
/// `$2`: one primary-key probe per id whatever the planner knows. On SQLite the list is the
/// outer loop of a `CROSS JOIN` (which fixes the join order there): written as `id IN
/// rarray(…)`, the planner cannot tell how long the list is and may walk the whole table once
/// per call instead. On PostgreSQL it is [`by_keys`]'s lateral probe.
pub(crate) fn members_by_id(backend: Backend, columns: &str) -> String {
    match backend {
        Backend::Sqlite => format!(
            "SELECT {columns} FROM rarray($1) AS wanted CROSS JOIN members \
             WHERE members.id = wanted.value AND members.tenant_id = $2"
        ),
        Backend::Postgres => format!(
            "SELECT found.* FROM unnest($1::text[]) AS wanted(key) CROSS JOIN LATERAL \
             (SELECT {columns} FROM members WHERE members.id = wanted.key AND members.tenant_id = $2 LIMIT 1) AS found"
        ),
    }
}

/// The rows of `select` for each key of the list bound as `$list`, where `select` ends in a
/// `WHERE` clause ready for one more condition on `key` (e.g. `SELECT … FROM events WHERE
/// tenant_id = $1 AND`).
///
/// On PostgreSQL the list is unnested and each key looked up on its own, in a lateral subquery
/// the planner cannot flatten (`LIMIT 1` for a key that names one row, `OFFSET 0` for several):
/// an index probe per key, whatever the table's statistics say. (With `key = ANY($list)` a
/// never-analysed table got a scan of all the tenant's rows with the list as a filter.)
/// `tests::hot_lookups_use_their_indexes` checks the plans with `EXPLAIN`.
pub(crate) fn by_keys(
    backend: Backend,
    select: &str,
    key: &str,
    list: usize,
    one_each: bool,
) -> String {
    match backend {
        Backend::Sqlite => format!("{select} {key} IN rarray(${list})"),
        Backend::Postgres => format!(
            "SELECT found.* FROM unnest(${list}) AS wanted(key) CROSS JOIN LATERAL ({select} {key} = wanted.key {}) AS found",
            if one_each { "LIMIT 1" } else { "OFFSET 0" }
        ),
    }
}
