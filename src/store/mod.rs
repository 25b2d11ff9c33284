//! The database layer: one code path over sqlx's `Any` driver for SQLite
//! (the default) and PostgreSQL; migrations in `migrations/` run at connect.
//!
//! Every query is portable SQL with `$n` placeholders; booleans are stored
//! as BIGINT 0/1 and times as Unix milliseconds, because the `Any` driver
//! decodes neither SQLite booleans nor timestamps.

mod cache;
mod logins;
mod messages;
mod outbox;
mod portals;
mod puppets;
mod state;
mod threads;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyArguments, AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::query::{Map, Query};
use sqlx::{Any, AnyPool, ConnectOptions, Connection};

pub use logins::{login_id, LoginRecord};
pub use messages::{ItemRecords, MessageRecord, ReactionRecord};
pub use outbox::{NewOutboxEntry, NextOutboxPart, OutboxEntry, OutboxState};
pub use portals::PortalRecord;
pub use puppets::PuppetRecord;
pub use threads::{LoginSync, PageItem, ThreadState};

/// Why a database operation failed, with what was being done.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// `url` has its password replaced by `***`.
    #[error("cannot open database {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error(
        "unsupported database URL {url}: use sqlite://PATH, a plain file path, or postgres://"
    )]
    UnsupportedUrl { url: String },
    #[error("cannot migrate database {url}: {source}")]
    Migrate {
        url: String,
        source: sqlx::migrate::MigrateError,
    },
    #[error("database query failed while {doing}: {source}")]
    Query {
        doing: &'static str,
        source: sqlx::Error,
    },
    /// The task writing in the background stopped with the runtime.
    #[error("stopped while {doing}")]
    Interrupted { doing: &'static str },
}

/// Builds the error mapper for one query: `.map_err(query_failed("reading x"))`.
fn query_failed(doing: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { doing, source }
}

/// The current time as stored: Unix milliseconds.
fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A record type read from one table: its columns and how a row maps to it.
trait Record: Sized + Send + Unpin + 'static {
    const TABLE: &'static str;
    /// The columns `from_row` reads, comma-separated.
    const COLUMNS: &'static str;
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error>;
}

/// Reads a BIGINT 0/1 column as a bool (the `Any` driver has no booleans).
fn flag(row: &AnyRow, column: &str) -> Result<bool, sqlx::Error> {
    use sqlx::Row;
    Ok(row.try_get::<i64, _>(column)? != 0)
}

/// A statement over text parameters bound as `$1`, `$2`, ...
fn with_text_params<'q>(sql: &'q str, params: &[&'q str]) -> Query<'q, Any, AnyArguments<'q>> {
    params
        .iter()
        .fold(sqlx::query(sql), |query, param| query.bind(*param))
}

/// `SELECT` of every column of `R`'s table, then `filter`.
fn select_sql<R: Record>(filter: &str) -> String {
    format!("SELECT {} FROM {} {filter}", R::COLUMNS, R::TABLE)
}

/// `sql` over text parameters, each row mapped to an `R`.
fn records_query<'q, R: Record>(
    sql: &'q str,
    params: &[&'q str],
) -> Map<'q, Any, impl FnMut(AnyRow) -> Result<R, sqlx::Error> + Send, AnyArguments<'q>> {
    with_text_params(sql, params).try_map(|row: AnyRow| R::from_row(&row))
}

/// The database handle; cheap to clone.
#[derive(Clone)]
pub struct Store {
    /// Every write, and the reads inside a write's transaction.
    pool: AnyPool,
    /// The other reads: on a SQLite file, connections of their own, so the
    /// portals' workers do not queue behind each other's writes to read
    /// (write-ahead logging lets them read beside the writer, each seeing
    /// what was committed when it began); otherwise the same pool.
    readers: AnyPool,
    /// The URL with its password hidden, for messages.
    display_url: String,
    /// Only in the bridge's own process ([`Store::remembering`]): another
    /// process (a test watching the bridge's database) must read afresh.
    cache: Option<Arc<Caches>>,
}

/// The records remembered between reads; see `cache.rs`.
#[derive(Debug)]
struct Caches {
    puppets: cache::RecordCache<String, PuppetRecord>,
    /// By (login id, thread id).
    portals: cache::RecordCache<(String, String), PortalRecord>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("url", &self.display_url)
            .finish_non_exhaustive()
    }
}

/// Reading connections to a SQLite file: enough for the portals' workers
/// to read beside each other on a few cores, few enough to keep the
/// bridge's memory small (each has its own page cache).
const SQLITE_READERS: u32 = 3;

/// Which backend a URL names, after normalization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite { in_memory: bool },
    Postgres,
}

/// Turns a configured database URL into one sqlx accepts: a plain path
/// becomes a SQLite URL, and SQLite files are created when missing.
fn normalize_url(url: &str) -> Result<(String, Backend), StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok((url.to_owned(), Backend::Postgres));
    }
    if let Some(rest) = url.strip_prefix("sqlite:") {
        if rest.trim_start_matches("//").starts_with(":memory:") {
            return Ok((url.to_owned(), Backend::Sqlite { in_memory: true }));
        }
        let has_mode = rest
            .split_once('?')
            .is_some_and(|(_, query)| query.split('&').any(|pair| pair.starts_with("mode=")));
        let normalized = if has_mode {
            url.to_owned()
        } else if rest.contains('?') {
            format!("{url}&mode=rwc")
        } else {
            format!("{url}?mode=rwc")
        };
        return Ok((normalized, Backend::Sqlite { in_memory: false }));
    }
    if url.is_empty() || url.contains("://") {
        return Err(StoreError::UnsupportedUrl {
            url: redact_url(url),
        });
    }
    Ok((
        format!("sqlite://{url}?mode=rwc"),
        Backend::Sqlite { in_memory: false },
    ))
}

/// The URL with any password replaced by `***`, safe for logs and errors.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // Setting a password fails only for URLs that cannot have one.
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

impl Store {
    /// The same database, with puppets and portals remembered between
    /// reads. Only for the process that owns the database (the running
    /// bridge): it holds only what this process read, and forgets a record
    /// when this process writes it, so another process's writes would go unseen.
    pub fn remembering(self) -> Store {
        Store {
            cache: Some(Arc::new(Caches {
                puppets: cache::RecordCache::new(),
                portals: cache::RecordCache::new(),
            })),
            ..self
        }
    }

    /// Opens (creating a SQLite file if needed) and migrates the database.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let (url, backend) = normalize_url(url)?;
        let display_url = redact_url(&url);
        let connect_failed = |source| StoreError::Connect {
            url: display_url.clone(),
            source,
        };
        let options = AnyConnectOptions::from_str(&url)
            .map_err(connect_failed)?
            .disable_statement_logging();

        // One direct attempt first: the pool retries a refused connection
        // until its timeout and then reports only "timed out".
        if backend != (Backend::Sqlite { in_memory: true }) {
            let probe = sqlx::AnyConnection::connect_with(&options)
                .await
                .map_err(connect_failed)?;
            probe.close().await.map_err(connect_failed)?;
        }

        let pool_options = match backend {
            // Each connection to `sqlite::memory:` is its own database, so
            // keep exactly one, forever.
            Backend::Sqlite { in_memory: true } => AnyPoolOptions::new()
                .max_connections(1)
                .test_before_acquire(false)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None),
            // In WAL mode `synchronous = NORMAL` still survives a crash of the
            // bridge (only a power cut can lose the newest commits, which the
            // homeserver's transaction ids then deduplicate); FULL would wait
            // for the disk on every relayed message.
            // One connection: SQLite has one writer, and writers on several
            // connections wait for each other in SQLite's busy handler, which
            // sleeps in steps of 1 to 100 ms; on one connection the portals'
            // workers queue for it in the pool instead, each query taking
            // well under a millisecond.
            // No ping before each use (sqlx's default): a file connection does
            // not drop like a server's, and the ping doubled every query's
            // round trips to SQLite's worker thread.
            Backend::Sqlite { in_memory: false } => AnyPoolOptions::new()
                .max_connections(1)
                .test_before_acquire(false)
                .after_connect(|connection, _| {
                    Box::pin(async move {
                        sqlx::query("PRAGMA synchronous = NORMAL")
                            .execute(connection)
                            .await
                            .map(|_| ())
                    })
                }),
            Backend::Postgres => AnyPoolOptions::new().max_connections(8),
        };
        let pool = pool_options
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await
            .map_err(connect_failed)?;

        if backend == (Backend::Sqlite { in_memory: false }) {
            // WAL lets readers proceed during a write; the setting persists in the file.
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await
                .map_err(query_failed("enabling SQLite write-ahead logging"))?;
        }
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|source| StoreError::Migrate {
                url: display_url.clone(),
                source,
            })?;
        let readers = match backend {
            Backend::Sqlite { in_memory: false } => AnyPoolOptions::new()
                .max_connections(SQLITE_READERS)
                .test_before_acquire(false)
                .after_connect(|connection, _| {
                    Box::pin(async move {
                        sqlx::query("PRAGMA query_only = ON")
                            .execute(&mut *connection)
                            .await?;
                        // A small page cache each (the default is 2 MB):
                        // what they read is in the system's file cache anyway.
                        sqlx::query("PRAGMA cache_size = -256")
                            .execute(connection)
                            .await
                            .map(|_| ())
                    })
                })
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await
                .map_err(connect_failed)?,
            _ => pool.clone(),
        };
        Ok(Store {
            pool,
            readers,
            display_url,
            cache: None,
        })
    }

    /// The records of `R` selected by `filter` (`WHERE ...`, `ORDER BY ...`)
    /// over text parameters.
    async fn select<R: Record>(
        &self,
        filter: &str,
        params: &[&str],
        doing: &'static str,
    ) -> Result<Vec<R>, StoreError> {
        let sql = select_sql::<R>(filter);
        records_query(&sql, params)
            .fetch_all(&self.readers)
            .await
            .map_err(query_failed(doing))
    }

    /// The one record of `R` selected by `filter`, if any.
    async fn select_one<R: Record>(
        &self,
        filter: &str,
        params: &[&str],
        doing: &'static str,
    ) -> Result<Option<R>, StoreError> {
        let sql = select_sql::<R>(filter);
        records_query(&sql, params)
            .fetch_optional(&self.readers)
            .await
            .map_err(query_failed(doing))
    }

    /// The text value of the first column of the one row `sql` selects, if any.
    async fn select_text(
        &self,
        sql: &str,
        params: &[&str],
        doing: &'static str,
    ) -> Result<Option<String>, StoreError> {
        with_text_params(sql, params)
            .try_map(|row: AnyRow| sqlx::Row::try_get(&row, 0))
            .fetch_optional(&self.readers)
            .await
            .map_err(query_failed(doing))
    }

    /// Runs a write; returns how many rows it changed.
    async fn execute<'q>(
        &self,
        statement: Query<'q, Any, AnyArguments<'q>>,
        doing: &'static str,
    ) -> Result<u64, StoreError> {
        let result = statement
            .execute(&self.pool)
            .await
            .map_err(query_failed(doing))?;
        Ok(result.rows_affected())
    }

    /// Closes every connection; later calls fail.
    pub async fn close(&self) {
        self.readers.close().await;
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_and_sqlite_urls_create_missing_files() {
        let cases = [
            ("bridge.db", "sqlite://bridge.db?mode=rwc"),
            ("/var/lib/b.db", "sqlite:///var/lib/b.db?mode=rwc"),
            ("sqlite://b.db", "sqlite://b.db?mode=rwc"),
            (
                "sqlite://b.db?cache=shared",
                "sqlite://b.db?cache=shared&mode=rwc",
            ),
            ("sqlite://b.db?mode=ro", "sqlite://b.db?mode=ro"),
        ];
        for (input, expected) in cases {
            let (url, backend) = normalize_url(input).unwrap();
            assert_eq!(url, expected);
            assert_eq!(backend, Backend::Sqlite { in_memory: false });
        }
        assert_eq!(
            normalize_url("sqlite::memory:").unwrap().1,
            Backend::Sqlite { in_memory: true }
        );
        assert_eq!(
            normalize_url("postgres://u@h/db").unwrap().1,
            Backend::Postgres
        );
        assert!(matches!(
            normalize_url("mysql://u:pw@h/db"),
            Err(StoreError::UnsupportedUrl { url }) if url == "mysql://u:***@h/db"
        ));
    }

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact_url("postgres://bridge:hunter2@db:5432/ig"),
            "postgres://bridge:***@db:5432/ig"
        );
        assert_eq!(
            redact_url("postgres://bridge@db/ig"),
            "postgres://bridge@db/ig"
        );
    }
}
