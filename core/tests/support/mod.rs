//! Run one conformance test against both database backends, each on a fresh database.

/// For each named async test `fn name(db: Db)`, generate `postgres::name` and `sqlite::name`.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (db, _) = anb_core::testing::postgres().await;
                    super::$name(db).await
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    let db = anb_core::testing::sqlite(dir.path()).await;
                    super::$name(db).await
                }
            )*
        }
    };
}
