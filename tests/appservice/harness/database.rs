//! The bridge's database for one test: a SQLite file in the test's temp dir,
//! or a fresh PostgreSQL database (`mi_e2e_<random>`) on the server named by
//! `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`), dropped
//! again when the test ends.

use std::path::Path;
use std::time::Duration;

use sqlx::Connection;

use super::synapse::random_hex;
use super::HarnessError;

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Which database engine the bridge runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database that exists only for one test.
pub struct TestDatabase {
    url: String,
    /// For PostgreSQL: the server URL to connect to for the final DROP, and the database name.
    created: Option<(String, String)>,
}

impl TestDatabase {
    /// A SQLite file in `dir`, or a fresh database on the PostgreSQL server
    /// named by `DATABASE_URL` (default: the local test server).
    pub async fn create(backend: Backend, dir: &Path) -> Result<TestDatabase, HarnessError> {
        match backend {
            Backend::Sqlite => Ok(TestDatabase {
                url: format!("sqlite://{}?mode=rwc", dir.join("bridge.db").display()),
                created: None,
            }),
            Backend::Postgres => TestDatabase::create_on_postgres(postgres_server()).await,
        }
    }

    /// A fresh database on the PostgreSQL server at `server`.
    pub async fn create_on_postgres(server: String) -> Result<TestDatabase, HarnessError> {
        TestDatabase::create_with(server, "mi_e2e", "").await
    }

    /// A fresh database for a test Synapse on the server of `DATABASE_URL`,
    /// with the C collation Synapse insists on.
    pub async fn create_for_synapse() -> Result<TestDatabase, HarnessError> {
        TestDatabase::create_with(
            postgres_server(),
            "mi_synapse",
            " ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0",
        )
        .await
    }

    async fn create_with(
        server: String,
        prefix: &str,
        options: &str,
    ) -> Result<TestDatabase, HarnessError> {
        let name = format!("{prefix}_{}", random_hex(6));
        let mut admin = connect(&server).await?;
        sqlx::query(&format!("CREATE DATABASE {name}{options}"))
            .execute(&mut admin)
            .await
            .map_err(|source| HarnessError::Database {
                doing: format!("creating database {name}"),
                source,
            })?;
        let _ = admin.close().await;
        let mut url = url::Url::parse(&server).map_err(|err| HarnessError::Unexpected {
            doing: "parsing DATABASE_URL".to_owned(),
            detail: err.to_string(),
        })?;
        url.set_path(&format!("/{name}"));
        Ok(TestDatabase {
            url: url.to_string(),
            created: Some((server, name)),
        })
    }

    /// The URL the bridge connects to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// How many migrations the bridge has applied to this database: proof
    /// that it used this database and not another one.
    pub async fn applied_migrations(&self) -> Result<i64, HarnessError> {
        let query = "SELECT COUNT(*) FROM _sqlx_migrations WHERE success";
        let doing = |source| HarnessError::Database {
            doing: format!(
                "counting applied migrations in {}",
                without_password(&self.url)
            ),
            source,
        };
        if self.created.is_some() {
            let mut connection = connect(&self.url).await?;
            sqlx::query_scalar(query)
                .fetch_one(&mut connection)
                .await
                .map_err(doing)
        } else {
            let mut connection = sqlx::SqliteConnection::connect(&self.url)
                .await
                .map_err(doing)?;
            sqlx::query_scalar(query)
                .fetch_one(&mut connection)
                .await
                .map_err(doing)
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((server, name)) = self.created.take() else {
            return;
        };
        // Drop runs inside the test's runtime, which cannot be blocked on: use a thread of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let mut admin = connect(&server).await.map_err(std::io::Error::other)?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut admin)
                    .await
                    .map_err(std::io::Error::other)?;
                Ok::<(), std::io::Error>(())
            })
        })
        .join();
        if let Ok(Err(err)) = dropped {
            eprintln!("could not drop the test database: {err}");
        }
    }
}

/// The PostgreSQL server the tests' databases go on: `DATABASE_URL`, else the local one.
fn postgres_server() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

async fn connect(server: &str) -> Result<sqlx::PgConnection, HarnessError> {
    let attempt =
        tokio::time::timeout(Duration::from_secs(10), sqlx::PgConnection::connect(server)).await;
    let shown = without_password(server);
    match attempt {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(source)) => Err(HarnessError::PostgresUnreachable { url: shown, source }),
        Err(_) => Err(HarnessError::PostgresUnreachable {
            url: shown,
            source: sqlx::Error::PoolTimedOut,
        }),
    }
}

/// The URL with any password replaced, for messages.
fn without_password(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) => {
            if url.password().is_some() {
                let _ = url.set_password(Some("***"));
            }
            url.to_string()
        }
        Err(_) => "(unparsable DATABASE_URL)".to_owned(),
    }
}
