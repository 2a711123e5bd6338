//! Whether a database error is worth retrying. A data error (a value the database refuses, a
//! constraint, bad SQL) fails the same way every time, so answering it with "try again later"
//! would block an agent's uplink behind one batch for ever; only errors of the connection, the
//! server's resources or concurrency (deadlock, serialisation, busy) are transient.

use std::any::Any;

/// True when the same statement may succeed later. Errors of a type not known here count as
/// transient: retrying something permanent costs a retry loop, refusing something transient
/// would set good data aside.
pub fn is_retryable(err: &(dyn Any + 'static)) -> bool {
    if let Some(err) = err.downcast_ref::<sqlx::Error>() {
        return sqlx_retryable(err);
    }
    if let Some(err) = err.downcast_ref::<rusqlite::Error>() {
        return rusqlite_retryable(err);
    }
    true
}

fn sqlx_retryable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => db.code().is_none_or(|code| sqlstate_retryable(&code)),
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Encode(_)
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::TypeNotFound { .. }
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::RowNotFound
        | sqlx::Error::Configuration(_) => false,
        _ => true,
    }
}

/// PostgreSQL's SQLSTATE classes (appendix A of its manual): 08 connection, 40 transaction
/// rollback (serialisation, deadlock), 53 insufficient resources, 55 object state (lock not
/// available), 57 operator intervention (shutdown, cancel), 58 system error, XX internal are
/// transient; 22 data exception (NUL in text: 22021/22P05), 23 integrity, 42 syntax and the
/// rest are not.
fn sqlstate_retryable(code: &str) -> bool {
    matches!(
        code.get(..2),
        Some("08" | "40" | "53" | "55" | "57" | "58" | "XX")
    )
}

fn rusqlite_retryable(err: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode::*;
    match err {
        rusqlite::Error::SqliteFailure(failure, _) => matches!(
            failure.code,
            DatabaseBusy
                | DatabaseLocked
                | SystemIoFailure
                | DiskFull
                | CannotOpen
                | OutOfMemory
                | FileLockingProtocolFailed
                | ReadOnly
        ),
        rusqlite::Error::ToSqlConversionFailure(_)
        | rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::Utf8Error(_)
        | rusqlite::Error::NulError(_)
        | rusqlite::Error::InvalidParameterName(_)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::InvalidColumnIndex(_)
        | rusqlite::Error::InvalidColumnName(_)
        | rusqlite::Error::QueryReturnedNoRows
        | rusqlite::Error::SqlInputError { .. } => false,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_split_into_transient_and_permanent() {
        for code in [
            "08006", "40001", "40P01", "53100", "55P03", "57P01", "XX000",
        ] {
            assert!(sqlstate_retryable(code), "{code} is transient");
        }
        for code in ["22021", "22P05", "22008", "23505", "42P01", "0A000", ""] {
            assert!(!sqlstate_retryable(code), "{code} is permanent");
        }
    }

    #[test]
    fn sqlite_busy_is_retried_and_a_constraint_is_not() {
        let busy = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            None,
        );
        let constraint = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT),
            None,
        );
        assert!(is_retryable(&busy));
        assert!(!is_retryable(&constraint));
        assert!(!is_retryable(&sqlx::Error::RowNotFound));
        assert!(is_retryable(&sqlx::Error::PoolTimedOut));
        assert!(is_retryable(&"an error of a type not known here"));
    }
}
