//! A credit lease whose take is abandoned midway, on a real embedded
//! database: the row is written but its answer comes too late for a caller
//! who has left. The holder's next upkeep releases it, rather than leave the
//! user's credit reserved until the lease's TTL.

mod common;

use hub_core::hub::lessee::Lessee;
use hub_core::metering::lease::LeasePolicy;
use hub_core::ports::{DbError, Rows, SqlDb, Stmt};
use hub_core::store::{grant_stmt, Grant, GrantIf, Store};
use hub_core::Credits;
use hub_libsql::LibSqlDb;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const USER: &str = "usr_lease";
const HOUR_MS: i64 = 3_600_000;

/// The embedded database; while `late` is set, a write that answers with
/// rows (a lease take) is written at once and answered a minute later.
struct LateAnswers {
    db: LibSqlDb,
    late: AtomicBool,
}

#[async_trait::async_trait]
impl SqlDb for LateAnswers {
    async fn query(&self, stmt: Stmt) -> Result<Rows, DbError> {
        self.db.query(stmt).await
    }

    async fn execute(&self, stmt: Stmt) -> Result<u64, DbError> {
        self.db.execute(stmt).await
    }

    async fn write_returning(&self, stmt: Stmt) -> Result<Rows, DbError> {
        let rows = self.db.write_returning(stmt).await?;
        if self.late.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        Ok(rows)
    }

    async fn batch(&self, stmts: Vec<Stmt>) -> Result<Vec<u64>, DbError> {
        self.db.batch(stmts).await
    }

    async fn execute_script(&self, sql: &str) -> Result<(), DbError> {
        self.db.execute_script(sql).await
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

async fn held(store: &Store) -> Credits {
    store.get_user(USER).await.unwrap().unwrap().held
}

#[tokio::test]
async fn a_lease_taken_for_a_caller_who_left_is_released_at_the_next_upkeep() {
    let dir = common::temp_dir("lease-orphan");
    let db = Arc::new(LateAnswers {
        db: LibSqlDb::open(dir.0.join("hub.db").to_str().unwrap(), None)
            .await
            .unwrap(),
        late: AtomicBool::new(false),
    });
    let store = common::store_with_user(db.clone(), USER).await;
    let grant = Grant {
        user_id: USER,
        amount: Credits::from_nanos(100_000_000_000),
        reason: Some("test"),
        created_by: None,
        reference: Some("test:grant".into()),
        expires_at: None,
        now_ms: now_ms(),
    };
    store.commit(vec![grant_stmt(&grant, GrantIf::Always)]).await.unwrap();

    let lessee = Lessee::new(store.clone(), LeasePolicy::new(30_000, 10_000));
    let one = Credits::from_nanos(1_000_000_000);
    db.late.store(true, Ordering::SeqCst);
    let hold = lessee.hold(USER, "call_1", one, HOUR_MS, now_ms, || "lse_left".into());
    let gave_up = tokio::time::timeout(Duration::from_millis(500), hold).await;
    assert!(gave_up.is_err(), "the caller left while the lease was being taken");
    assert!(held(&store).await > Credits::ZERO, "the lease's row was written");

    db.late.store(false, Ordering::SeqCst);
    lessee.upkeep(now_ms()).await.unwrap();
    assert_eq!(held(&store).await, Credits::ZERO, "released, not left for its TTL");

    // The next call takes a lease of its own as usual.
    let next = lessee
        .hold(USER, "call_2", one, HOUR_MS, now_ms, || "lse_next".into())
        .await
        .unwrap();
    assert_eq!(next.as_deref(), Some("lse_next"));
}
