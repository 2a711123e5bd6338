//! Every statement written once for both backends (`storage::sql`) prepares on a migrated
//! SQLite and a migrated PostgreSQL: a column only one backend has, or a function only one
//! dialect knows, fails here by name even if no other case runs that statement.

use crate::support::PgDatabase;
use netwarden_collector::storage::{sql, PostgresStore, SqliteStore, SqliteSync, Store};
use sqlx::{Connection, Executor};

#[tokio::test]
async fn every_shared_statement_prepares_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = SqliteStore::open(&path, 1, SqliteSync::Normal)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mut count = 0;
    for (name, statement) in sql::all() {
        if let Err(e) = conn.prepare(statement.sqlite) {
            panic!(
                "{name} does not prepare on SQLite: {e}\n{}",
                statement.sqlite
            );
        }
        count += 1;
    }
    assert!(count >= 60, "only {count} shared statements");
}

#[tokio::test]
async fn every_shared_statement_prepares_on_postgres() {
    let db = PgDatabase::create().await;
    PostgresStore::connect(&db.url, 1)
        .await
        .unwrap()
        .migrate()
        .await
        .unwrap();
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    for (name, statement) in sql::all() {
        if let Err(e) = conn.prepare(statement.postgres).await {
            panic!(
                "{name} does not prepare on PostgreSQL: {e}\n{}",
                statement.postgres
            );
        }
    }
}
