//! Batches on a remote database (the Hrana test server): one request per
//! transaction, the counts a statement alone would return, nothing written
//! by a failing batch, and concurrent batches committed together.

use hub_core::ports::{DbError, SqlDb, SqlValue, Stmt};
use hub_core::sql;
use hub_e2e::{HranaServer, HranaStats};
use hub_libsql::LibSqlDb;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A Hrana test server with its own database file, removed afterwards.
struct Remote {
    server: Option<HranaServer>,
    dir: std::path::PathBuf,
}

impl Remote {
    fn start(delay_ms: u64) -> Remote {
        let dir = hub_e2e::temp_dir("libsql-remote");
        let server = HranaServer::start_with(&hub_e2e::hrana_script(), &dir, delay_ms);
        Remote {
            server: Some(server),
            dir,
        }
    }

    fn server(&self) -> &HranaServer {
        self.server.as_ref().unwrap()
    }

    async fn open(&self) -> LibSqlDb {
        LibSqlDb::open(&self.server().url, None).await.unwrap()
    }

    fn stats(&self) -> HranaStats {
        self.server().stats()
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        drop(self.server.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn count(db: &LibSqlDb, stmt: Stmt) -> i64 {
    match &db.query(stmt).await.unwrap().rows[0][0] {
        SqlValue::Integer(n) => *n,
        other => panic!("not a count: {other:?}"),
    }
}

/// The same value, reals compared bit for bit (-0.0 is not 0.0).
fn same(a: &SqlValue, b: &SqlValue) -> bool {
    match (a, b) {
        (SqlValue::Real(x), SqlValue::Real(y)) => x.to_bits() == y.to_bits(),
        _ => a == b,
    }
}

fn every_kind_of_value() -> Vec<SqlValue> {
    let texts = [
        "",
        "plain",
        "it's",
        "''",
        "'; DROP TABLE vals; --",
        "\"quoted\"",
        "? and ?1 and ?2 and :name and @x and $y",
        "-- not a comment",
        "/* not a comment */",
        "semi;colon",
        "line\nbreak\r\ttab",
        "nul \0 inside",
        "\0",
        "emoji 🦀 and ünïcödé and 漢字",
        "back\\slash",
    ];
    let reals = [
        0.1,
        1e-300,
        -0.0,
        0.0,
        3.0,
        -2.5,
        1.0 / 3.0,
        f64::MAX,
        f64::MIN_POSITIVE,
        5e-324,
        123_456_789.123_456_79,
    ];
    let mut values = vec![SqlValue::Null];
    values.extend([0, 1, -1, i64::MIN, i64::MAX, 1 << 53, (1 << 53) + 1].map(SqlValue::Integer));
    values.extend(reals.map(SqlValue::Real));
    values.extend(texts.map(|t| SqlValue::Text(t.to_string())));
    values.extend([
        SqlValue::Blob(Vec::new()),
        SqlValue::Blob(vec![0]),
        SqlValue::Blob(vec![0, 1, 255]),
        SqlValue::Blob(b"'?--".to_vec()),
        SqlValue::Blob((0..=255u8).cycle().take(1001).collect()),
    ]);
    values
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_value_reads_back_as_written() {
    let remote = Remote::start(0);
    let db = remote.open().await;
    // No column type: SQLite keeps each value's own storage class.
    db.execute_script("CREATE TABLE vals (id INTEGER PRIMARY KEY, v, w);")
        .await
        .unwrap();
    let values = every_kind_of_value();
    let before = remote.stats();
    let stmts: Vec<Stmt> = values
        .iter()
        .enumerate()
        .map(|(i, v)| sql!("INSERT INTO vals (id, v, w) VALUES (?1, ?2, ?2)", i as i64, v.clone()))
        .collect();
    let counts = db.batch(stmts).await.unwrap();
    assert_eq!(counts, vec![1; values.len()]);
    assert_eq!(
        remote.stats().requests - before.requests,
        1,
        "one round trip for the batch"
    );

    let rows = db
        .query(sql!("SELECT id, v, w FROM vals ORDER BY id"))
        .await
        .unwrap()
        .rows;
    assert_eq!(rows.len(), values.len());
    for (row, v) in rows.iter().zip(&values) {
        assert!(same(&row[1], v), "wrote {v:?}, read {:?}", row[1]);
        assert!(same(&row[2], v), "wrote {v:?} (second use of ?2), read {:?}", row[2]);
    }
    // A value in a WHERE clause matches what was stored.
    let i64_min = values.iter().position(|v| *v == SqlValue::Integer(i64::MIN)).unwrap();
    let counts = db
        .batch(vec![sql!(
            "UPDATE vals SET w = 'found' WHERE v = ?1 AND id = ?2",
            i64::MIN,
            i64_min as i64
        )])
        .await
        .unwrap();
    assert_eq!(counts, vec![1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nan_is_stored_as_null_and_infinity_is_refused() {
    let remote = Remote::start(0);
    let db = remote.open().await;
    db.execute_script("CREATE TABLE vals (id INTEGER PRIMARY KEY, v);")
        .await
        .unwrap();
    db.batch(vec![sql!(
        "INSERT INTO vals (id, v) VALUES (1, ?1)",
        SqlValue::Real(f64::NAN)
    )])
    .await
    .unwrap();
    let rows = db.query(sql!("SELECT v FROM vals WHERE id = 1")).await.unwrap().rows;
    assert_eq!(rows[0][0], SqlValue::Null);
    for inf in [f64::INFINITY, f64::NEG_INFINITY] {
        let r = db
            .batch(vec![
                sql!("INSERT INTO vals (id, v) VALUES (2, 'first')"),
                sql!("INSERT INTO vals (id, v) VALUES (3, ?1)", SqlValue::Real(inf)),
            ])
            .await;
        assert!(
            matches!(r, Err(DbError::Other(ref m)) if m.contains("infinite")),
            "{r:?}"
        );
    }
    assert_eq!(count(&db, sql!("SELECT COUNT(*) FROM vals")).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_statement_leaves_nothing_behind() {
    let remote = Remote::start(0);
    let db = remote.open().await;
    db.execute_script(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL);
         CREATE TABLE u (k TEXT PRIMARY KEY);
         INSERT INTO u (k) VALUES ('taken');",
    )
    .await
    .unwrap();
    let before = remote.stats();
    let r = db
        .batch(vec![
            sql!("INSERT INTO t (id, v) VALUES (1, 'first')"),
            sql!("UPDATE u SET k = 'moved' WHERE k = 'taken'"),
            sql!("INSERT INTO u (k) VALUES ('moved')"),
            sql!("INSERT INTO t (id, v) VALUES (2, 'after')"),
        ])
        .await;
    assert!(matches!(r, Err(DbError::Constraint(_))), "{r:?}");
    assert_eq!(count(&db, sql!("SELECT COUNT(*) FROM t")).await, 0);
    assert_eq!(count(&db, sql!("SELECT COUNT(*) FROM u WHERE k = 'taken'")).await, 1);
    let after = remote.stats();
    assert_eq!(after.write_transactions, before.write_transactions, "nothing committed");

    // Any other failure rolls back too, and is reported as the same error
    // run alone would be.
    let r = db
        .batch(vec![
            sql!("INSERT INTO t (id, v) VALUES (1, 'first')"),
            sql!("INSERT INTO missing (k) VALUES (1)"),
        ])
        .await;
    let alone = db.execute(sql!("INSERT INTO missing (k) VALUES (1)")).await;
    assert!(format!("{r:?}").contains("no such table"), "{r:?}");
    assert_eq!(
        std::mem::discriminant(&r.unwrap_err()),
        std::mem::discriminant(&alone.unwrap_err())
    );
    assert_eq!(count(&db, sql!("SELECT COUNT(*) FROM t")).await, 0);
}

const COUNTS_SCHEMA: &str = "
    CREATE TABLE grants (id TEXT PRIMARY KEY, amount INTEGER NOT NULL);
    CREATE TABLE codes (code TEXT PRIMARY KEY, claimed_by TEXT);
    CREATE TABLE totals (user TEXT PRIMARY KEY, total INTEGER NOT NULL DEFAULT 0);
    CREATE TRIGGER grants_total AFTER INSERT ON grants BEGIN
        INSERT INTO totals (user, total) VALUES ('u', NEW.amount)
        ON CONFLICT (user) DO UPDATE SET total = total + NEW.amount;
    END;
    INSERT INTO codes (code) VALUES ('a'), ('b'), ('c');
";

/// Statements whose counts callers act on: an `INSERT OR IGNORE` that hits
/// and one that misses, conditional updates that match and that do not,
/// an update of several rows, a trigger's own writes (not counted).
fn counted_statements() -> Vec<Stmt> {
    vec![
        sql!("INSERT OR IGNORE INTO grants (id, amount) VALUES (?1, ?2)", "g1", 5),
        sql!("INSERT OR IGNORE INTO grants (id, amount) VALUES (?1, ?2)", "g1", 7),
        sql!(
            "UPDATE codes SET claimed_by = ?1 WHERE code = ?2 AND claimed_by IS NULL",
            "alice",
            "a"
        ),
        sql!(
            "UPDATE codes SET claimed_by = ?1 WHERE code = ?2 AND claimed_by IS NULL",
            "bob",
            "a"
        ),
        sql!("UPDATE codes SET claimed_by = 'x' WHERE claimed_by IS NULL"),
        sql!("DELETE FROM codes WHERE code IN ('b', 'c', 'zz')"),
        sql!("INSERT OR IGNORE INTO grants (id, amount) VALUES (?1, ?2)", "g2", 1),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_are_those_of_each_statement_run_alone() {
    let expected = vec![1, 0, 1, 0, 2, 2, 1];
    // Run alone, one request each, on the remote database.
    let remote = Remote::start(0);
    let db = remote.open().await;
    db.execute_script(COUNTS_SCHEMA).await.unwrap();
    let mut alone = Vec::new();
    for s in counted_statements() {
        alone.push(db.execute(s).await.unwrap());
    }
    assert_eq!(alone, expected);

    // As one batch on a fresh remote database.
    let remote = Remote::start(0);
    let db = remote.open().await;
    db.execute_script(COUNTS_SCHEMA).await.unwrap();
    assert_eq!(db.batch(counted_statements()).await.unwrap(), expected);
    assert_eq!(count(&db, sql!("SELECT total FROM totals")).await, 6);

    // And the embedded database's batch agrees.
    let dir = hub_e2e::temp_dir("libsql-counts");
    let local = LibSqlDb::open(dir.join("t.db").to_str().unwrap(), None).await.unwrap();
    local.execute_script(COUNTS_SCHEMA).await.unwrap();
    assert_eq!(local.batch(counted_statements()).await.unwrap(), expected);
    drop(local);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_batches_share_requests_and_a_failure_fails_alone() {
    // 20 ms a round trip, as a remote primary: batches queue while one is out.
    let remote = Remote::start(20);
    let db = Arc::new(remote.open().await);
    db.execute_script(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL);
         CREATE TABLE u (k TEXT PRIMARY KEY);
         INSERT INTO u (k) VALUES ('taken');",
    )
    .await
    .unwrap();
    let before = remote.stats();
    let failing = 137;
    let mut tasks = Vec::new();
    for i in 0..200i64 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            let key = if i == failing {
                "taken".to_string()
            } else {
                format!("k{i}")
            };
            let r = db
                .batch(vec![
                    sql!("INSERT INTO t (id, v) VALUES (?1, 'batch')", i),
                    sql!("INSERT OR IGNORE INTO u (k) VALUES ('taken')"),
                    sql!("INSERT INTO u (k) VALUES (?1)", key),
                ])
                .await;
            (i, r)
        }));
    }
    for task in tasks {
        let (i, r) = task.await.unwrap();
        if i == failing {
            assert!(matches!(r, Err(DbError::Constraint(_))), "batch {i}: {r:?}");
        } else {
            assert_eq!(r.unwrap(), vec![1, 0, 1], "batch {i}");
        }
    }
    let used = remote.stats() - before;
    assert_eq!(count(&db, sql!("SELECT COUNT(*) FROM t")).await, 199);
    assert_eq!(
        count(&db, sql!("SELECT COUNT(*) FROM t WHERE id = ?1", failing)).await,
        0
    );
    assert_eq!(count(&db, sql!("SELECT COUNT(*) FROM u")).await, 200);
    assert!(
        used.requests <= 40,
        "200 batches took {} requests (expected far fewer)",
        used.requests
    );
    assert!(
        used.write_transactions <= 40,
        "200 batches took {} write transactions",
        used.write_transactions
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_fails_the_batch_promptly() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Nothing listens there any more.
    let db = LibSqlDb::open(&format!("http://127.0.0.1:{port}"), None).await.unwrap();
    let started = Instant::now();
    let r = db.batch(vec![sql!("INSERT INTO t (id) VALUES (1)")]).await;
    assert!(matches!(r, Err(DbError::Unavailable(_))), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(30));
}
