//! SQL both backends run as it is written.
//!
//! Both backends name their columns alike (SQLite's migration 0017a), so a statement that needs
//! no dialect (no upsert, no `SKIP LOCKED`, no date arithmetic) is written here once, in
//! PostgreSQL's `$N` placeholder form, and [`statement!`] derives SQLite's `?N` form from it at
//! compile time. `sqlite/` and `postgres/` keep only the statements whose dialects differ, and
//! bind the values each in its own types (milliseconds on SQLite, `timestamptz` on PostgreSQL).
//! `scripts/sql-written-twice.py` counts what is still written in both.

/// One statement in both placeholder forms.
#[derive(Debug, Clone, Copy)]
pub struct Statement {
    /// The text as written: `$1`, `$2`, ...
    pub postgres: &'static str,
    /// The same text with `?1`, `?2`, ...: SQLite reads `$1` as a named parameter, numbered by
    /// first appearance, which would silently bind `$2 ... $1` the wrong way round.
    pub sqlite: &'static str,
}

/// `$N` placeholders as `?N`, byte for byte (same length), at compile time. A `$` not followed
/// by a digit (inside a string literal, say) is left alone.
pub const fn question_marks<const N: usize>(text: &str) -> [u8; N] {
    let bytes = text.as_bytes();
    assert!(bytes.len() == N, "the buffer is the statement's length");
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = if bytes[i] == b'$' && i + 1 < N && bytes[i + 1].is_ascii_digit() {
            b'?'
        } else {
            bytes[i]
        };
        i += 1;
    }
    out
}

/// A [`Statement`] from its PostgreSQL text (a literal or a `concatcp!` of column lists).
macro_rules! statement {
    ($text:expr) => {{
        const POSTGRES: &str = $text;
        const BYTES: [u8; POSTGRES.len()] = $crate::storage::sql::question_marks(POSTGRES);
        const SQLITE: &str = match ::std::str::from_utf8(&BYTES) {
            Ok(text) => text,
            Err(_) => panic!("replacing ASCII with ASCII keeps UTF-8 valid"),
        };
        $crate::storage::sql::Statement {
            postgres: POSTGRES,
            sqlite: SQLITE,
        }
    }};
}

/// A module's statements as `NAME = text;`: each a `pub const NAME: Statement`, and `ALL`, every
/// one of them by name, for the test that prepares them on both backends (so a statement added
/// here is always in it).
macro_rules! statements {
    ($($(#[doc = $doc:expr])* $name:ident = $text:expr;)+) => {
        $($(#[doc = $doc])* pub const $name: $crate::storage::sql::Statement = statement!($text);)+

        pub const ALL: &[(&str, $crate::storage::sql::Statement)] =
            &[$((concat!(module_path!(), "::", stringify!($name)), $name)),+];
    };
}

pub mod alerting;
pub mod core;
pub mod customers;
pub mod fleet_plan;
pub mod kpi;
pub mod overview;
pub mod poi;
pub mod rollup;
pub mod telemetry;
pub mod tokens;

/// Every shared statement, by name (`module::NAME`).
pub fn all() -> impl Iterator<Item = (&'static str, Statement)> {
    [
        alerting::ALL,
        core::ALL,
        customers::ALL,
        fleet_plan::ALL,
        kpi::ALL,
        overview::ALL,
        poi::ALL,
        rollup::ALL,
        telemetry::ALL,
        tokens::ALL,
    ]
    .into_iter()
    .flatten()
    .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_question_marks_and_nothing_else_changes() {
        const S: Statement =
            statement!("SELECT '$x', a FROM t WHERE b = $2 AND c = $1 AND d = $10 -- $");
        assert_eq!(
            S.sqlite,
            "SELECT '$x', a FROM t WHERE b = ?2 AND c = ?1 AND d = ?10 -- $"
        );
        assert_eq!(S.postgres.len(), S.sqlite.len());
    }
}
