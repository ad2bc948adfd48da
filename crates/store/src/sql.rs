//! Small helpers for portable SQL: values to bind, and multi-row statements built with `$n`
//! placeholders (sqlx's `Any` query builder writes `?`, which PostgreSQL does not read).

use crate::Backend;
use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::Any;

/// A value to bind.
#[derive(Clone, Debug)]
pub(crate) enum Bind {
    Int(i64),
    Text(String),
    NullInt,
    NullText,
}

impl From<i64> for Bind {
    fn from(value: i64) -> Bind {
        Bind::Int(value)
    }
}

impl From<String> for Bind {
    fn from(value: String) -> Bind {
        Bind::Text(value)
    }
}

impl From<&str> for Bind {
    fn from(value: &str) -> Bind {
        Bind::Text(value.to_owned())
    }
}

impl From<Option<i64>> for Bind {
    fn from(value: Option<i64>) -> Bind {
        value.map(Bind::Int).unwrap_or(Bind::NullInt)
    }
}

impl From<Option<String>> for Bind {
    fn from(value: Option<String>) -> Bind {
        value.map(Bind::Text).unwrap_or(Bind::NullText)
    }
}

pub(crate) fn bind_all<'q>(
    mut query: Query<'q, Any, AnyArguments<'q>>,
    values: Vec<Bind>,
) -> Query<'q, Any, AnyArguments<'q>> {
    for value in values {
        query = match value {
            Bind::Int(value) => query.bind(value),
            Bind::Text(value) => query.bind(value),
            Bind::NullInt => query.bind(None::<i64>),
            Bind::NullText => query.bind(None::<String>),
        };
    }
    query
}

/// Most values bound to one statement: under SQLite's 32,766 and PostgreSQL's 65,535.
pub(crate) const BIND_VALUES_MAX: usize = 30_000;

/// Which database a connection talks to.
pub(crate) fn backend_of(connection: &sqlx::AnyConnection) -> Backend {
    if connection.backend_name().eq_ignore_ascii_case("sqlite") {
        Backend::Sqlite
    } else {
        Backend::Postgres
    }
}

/// Placeholders for `count` values bound in order, the first being number `first`:
/// `$first, $first+1, …` for PostgreSQL. SQLite gets anonymous `?`: its lookup of a named or
/// numbered parameter is linear in the number of parameters, which makes binding a long
/// multi-row statement quadratic. sqlx numbers anonymous `?` by their own count, so a
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
        let rows_per_statement = (BIND_VALUES_MAX / self.columns).max(1);
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

/// Splits `items` into lists short enough for one `IN (...)`.
pub(crate) const IN_LIST_MAX: usize = 5_000;
