//! The store suite: every behaviour of the `Store` trait as one named case, run on SQLite and
//! PostgreSQL alike by [`store_suite!`], a fresh store per case.

mod alerting;
mod core;
mod customers;
mod fleet_plan;
mod kpi;
mod poi;
mod rollup;
mod statements;
mod telemetry;
mod tokens;

/// Runs each listed case on both backends, as the tests `sqlite::case` and `postgres::case`.
/// A case is `async fn case(store: Arc<dyn Store>)`, given a fresh store; with `backend:`
/// first, `async fn case(backend: Backend)`, for cases that run whole collectors.
macro_rules! store_suite {
    (backend: $($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case($crate::support::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case($crate::support::Backend::Postgres).await;
                }
            )*
        }
    };
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let (store, _guard) = $crate::support::sqlite_store().await;
                    super::$case(store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let (store, _guard) = $crate::support::postgres_store().await;
                    super::$case(store).await;
                }
            )*
        }
    };
}
pub(crate) use store_suite;
