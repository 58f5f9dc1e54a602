//! The embedded writer commits concurrent writes together; a failing write
//! must fail alone and leave nothing behind, and its neighbours must commit.

use hub_core::ports::{SqlDb, SqlValue};
use hub_core::sql;
use hub_libsql::LibSqlDb;
use std::sync::Arc;

/// A database path of its own: the tests run in parallel threads, which can
/// read the same clock value, so a counter keeps their directories apart.
fn temp_db() -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let seq = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!("hub-libsql-group-{}-{seq}-{nanos}", std::process::id()));
    std::fs::create_dir(&dir).unwrap();
    dir.join("t.db")
}

async fn count(db: &LibSqlDb, sql: &'static str) -> i64 {
    match &db.query(sql!(sql)).await.unwrap().rows[0][0] {
        SqlValue::Integer(n) => *n,
        other => panic!("not a count: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_write_fails_alone_and_atomically() {
    let path = temp_db();
    let db = Arc::new(LibSqlDb::open(path.to_str().unwrap(), None).await.unwrap());
    db.execute_script("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL); CREATE TABLE u (k TEXT PRIMARY KEY);")
        .await
        .unwrap();
    db.execute(sql!("INSERT INTO u (k) VALUES ('taken')")).await.unwrap();

    // 300 writes at once, so they share commits; every tenth is a batch whose
    // second statement breaks a constraint after its first one succeeded.
    let mut tasks = Vec::new();
    for i in 0..300i64 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            if i % 10 == 0 {
                let r = db
                    .batch(vec![
                        sql!("INSERT INTO t (id, v) VALUES (?1, 'bad')", i),
                        sql!("INSERT INTO u (k) VALUES ('taken')"),
                    ])
                    .await;
                (i, r.is_ok())
            } else if i % 3 == 0 {
                let r = db
                    .batch(vec![
                        sql!("INSERT INTO t (id, v) VALUES (?1, 'good')", i),
                        sql!("INSERT INTO u (k) VALUES (?1)", format!("k{i}")),
                    ])
                    .await;
                (i, r.map(|c| c == vec![1, 1]).unwrap_or(false))
            } else {
                let r = db.execute(sql!("INSERT INTO t (id, v) VALUES (?1, 'good')", i)).await;
                (i, matches!(r, Ok(1)))
            }
        }));
    }
    for task in tasks {
        let (i, ok) = task.await.unwrap();
        assert_eq!(ok, i % 10 != 0, "write {i}");
    }
    assert_eq!(count(&db, "SELECT COUNT(*) FROM t WHERE v = 'bad'").await, 0);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM t WHERE v = 'good'").await, 270);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM u").await, 1 + 90);
    // A duplicate alone reports the constraint and changes nothing.
    let dup = db.execute(sql!("INSERT INTO u (k) VALUES ('taken')")).await;
    assert!(matches!(dup, Err(hub_core::ports::DbError::Constraint(_))), "{dup:?}");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM u").await, 91);
}

/// The writer yields the CPU to requests, but a core kept busy must not
/// starve it: thousands of queued writes still commit promptly.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_keep_up_on_a_saturated_core() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    // This thread, the database threads it starts and two spinning threads share one core.
    // SAFETY: sched_setaffinity on the calling thread with a set built on the stack.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set),
            0
        );
    }
    let path = temp_db();
    let db = Arc::new(LibSqlDb::open(path.to_str().unwrap(), None).await.unwrap());
    db.execute_script("CREATE TABLE w (id INTEGER PRIMARY KEY, note TEXT NOT NULL);")
        .await
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let spinners: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        })
        .collect();

    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..5000i64 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            db.execute(sql!("INSERT INTO w (id, note) VALUES (?1, 'settled')", i))
                .await
        }));
    }
    let all = async {
        for task in tasks {
            assert!(matches!(task.await.unwrap(), Ok(1)));
        }
    };
    let finished = tokio::time::timeout(Duration::from_secs(8), all).await;
    stop.store(true, Ordering::Relaxed);
    for s in spinners {
        s.join().unwrap();
    }
    assert!(finished.is_ok(), "5000 writes not committed within 8 s on a busy core");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM w").await, 5000);
    eprintln!("5000 writes on a busy core: {:?}", started.elapsed());
}
