//! The notification triggers on a real embedded database: every change that
//! announces something writes its event, and its deliveries, in the same
//! transaction, whichever code path made the change; a rolled-back change
//! announces nothing.

mod common;

use hub_core::ports::{SqlDb, SqlValue};
use hub_core::sql;
use hub_core::store::Store;
use hub_core::Credits;
use hub_libsql::LibSqlDb;
use std::sync::Arc;

const T: i64 = 1_767_225_600_000;

async fn db() -> (Arc<LibSqlDb>, Store, common::TempDir) {
    let dir = common::temp_dir("notify");
    let db = Arc::new(
        LibSqlDb::open(dir.0.join("hub.db").to_str().unwrap(), None)
            .await
            .unwrap(),
    );
    let store = Store::new(db.clone());
    store.migrate(T).await.unwrap();
    (db, store, dir)
}

async fn exec(db: &LibSqlDb, sql: &'static str, params: Vec<SqlValue>) {
    db.execute(hub_core::ports::Stmt::new(sql, params)).await.unwrap();
}

/// (type, user, amount in nanos) of every event, oldest first.
async fn events(db: &LibSqlDb) -> Vec<(String, Option<String>, Option<i64>)> {
    let r = db
        .query(sql!("SELECT type, user_id, amount FROM events ORDER BY rowid"))
        .await
        .unwrap();
    r.rows
        .iter()
        .map(|row| {
            let text = |v: &SqlValue| match v {
                SqlValue::Text(t) => Some(t.clone()),
                _ => None,
            };
            let int = |v: &SqlValue| match v {
                SqlValue::Integer(i) => Some(*i),
                _ => None,
            };
            (text(&row[0]).unwrap(), text(&row[1]), int(&row[2]))
        })
        .collect()
}

fn kinds(e: &[(String, Option<String>, Option<i64>)]) -> Vec<&str> {
    e.iter().map(|(k, _, _)| k.as_str()).collect()
}

fn c(text: &str) -> i64 {
    Credits::parse(text).unwrap().nanos()
}

async fn user(db: &LibSqlDb, id: &str, email: Option<&str>) {
    exec(
        db,
        "INSERT INTO users (id, name, email, role, created_at, updated_at) VALUES (?1, 'Ada', ?2, 'member', 0, 0)",
        vec![id.into(), email.into()],
    )
    .await;
}

async fn ledger(db: &LibSqlDb, user: &str, amount: &str, kind: &str) {
    exec(
        db,
        "INSERT INTO ledger (user_id, kind, amount, created_at) VALUES (?1, ?2, ?3, ?4)",
        vec![user.into(), kind.into(), c(amount).into(), T.into()],
    )
    .await;
}

#[tokio::test]
async fn a_balance_crossing_is_announced_once_per_crossing_with_the_default_threshold() {
    let (db, store, _dir) = db().await;
    user(&db, "u1", None).await;
    // The setting as Hub stores it: canonical decimal text in JSON.
    store
        .put_settings(vec![("low_balance_threshold".into(), "\"0.25\"".into())], T)
        .await
        .unwrap();
    ledger(&db, "u1", "1", "grant").await;
    ledger(&db, "u1", "-0.5", "usage").await; // 0.5: above
    ledger(&db, "u1", "-0.25", "usage").await; // 0.25: at, not below
    ledger(&db, "u1", "-0.000000001", "usage").await; // below: once
    ledger(&db, "u1", "-0.1", "usage").await; // still below: nothing
    let e = events(&db).await;
    assert_eq!(kinds(&e), vec!["credits.granted", "balance.low"]);
    assert_eq!(e[1].2, Some(-1), "the change that crossed");
    // Back above, and below again: a second crossing.
    ledger(&db, "u1", "1", "adjustment").await;
    ledger(&db, "u1", "-1", "usage").await;
    // To zero: exhausted, not low.
    ledger(&db, "u1", "-0.149999999", "usage").await;
    let e = events(&db).await;
    assert_eq!(
        kinds(&e),
        vec!["credits.granted", "balance.low", "balance.low", "balance.exhausted"]
    );
    // A user's own threshold wins; 0 turns it off.
    store
        .set_notification_prefs(
            "u1",
            &hub_core::store::PrefsPatch {
                low_balance_threshold: Some(Some(Credits::ZERO)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    ledger(&db, "u1", "5", "adjustment").await;
    ledger(&db, "u1", "-4.9", "usage").await;
    assert_eq!(events(&db).await.len(), 4);
}

#[tokio::test]
async fn payments_announce_purchases_refunds_and_failures_from_their_own_writes() {
    let (db, store, _dir) = db().await;
    user(&db, "u1", Some("ada@example.com")).await;
    for (id, session) in [("pay_1", "cs_1"), ("pay_2", "cs_2")] {
        exec(
            &db,
            "INSERT INTO payments (id, user_id, pack_name, credits, amount, currency, status, session_id, created_at, updated_at)
             VALUES (?1, 'u1', 'Starter', ?2, 1000, 'usd', 'open', ?3, 0, 0)",
            vec![id.into(), c("100").into(), session.into()],
        )
        .await;
    }
    let open = store.payment_by_session("cs_1").await.unwrap().unwrap();
    assert!(store
        .grant_payment(&open, "cs_1", "evt_1", Some("pi_1"), T)
        .await
        .unwrap());
    assert!(!store
        .grant_payment(&open, "cs_1", "evt_1", Some("pi_1"), T)
        .await
        .unwrap());
    let paid = store.get_payment("pay_1").await.unwrap().unwrap();
    store
        .refund_payment(&paid, 250, Credits::from_nanos(c("25")), T)
        .await
        .unwrap();
    store
        .close_payment(
            "pay_2",
            hub_core::kinds::PaymentStatus::Failed,
            Some("card declined"),
            T,
        )
        .await
        .unwrap();
    let e = events(&db).await;
    assert_eq!(
        kinds(&e),
        vec!["credits.purchased", "payment.refunded", "payment.failed"],
        "a purchase is not also a grant, and a replay announces nothing"
    );
    assert_eq!(e[0].2, Some(c("100")));
    assert_eq!(e[1].2, Some(-c("25")));
    // No SMTP server configured: no mail deliveries, whatever the user chose.
    let r = db.query(sql!("SELECT COUNT(*) FROM deliveries")).await.unwrap();
    assert_eq!(r.rows[0][0], SqlValue::Integer(0));
}

#[tokio::test]
async fn events_fan_out_to_subscribed_webhooks_and_to_mail_the_customer_wants() {
    let (db, store, _dir) = db().await;
    store
        .put_settings(vec![("smtp_host".into(), "\"127.0.0.1\"".into())], T)
        .await
        .unwrap();
    user(&db, "u1", Some("ada@example.com")).await;
    exec(
        &db,
        "UPDATE users SET low_balance_threshold = ?1 WHERE id = 'u1'",
        vec![c("1").into()],
    )
    .await;
    for (id, events, enabled) in [("w_all", "*", 1), ("w_low", ",balance.low,", 1), ("w_off", "*", 0)] {
        exec(
            &db,
            "INSERT INTO webhooks (id, url, events, secret_enc, secret_hint, enabled, created_at, updated_at)
             VALUES (?1, 'http://127.0.0.1:9/', ?2, 'x', 'x', ?3, 0, 0)",
            vec![id.into(), events.into(), enabled.into()],
        )
        .await;
    }
    ledger(&db, "u1", "2", "grant").await; // credits.granted: w_all
    ledger(&db, "u1", "-1.5", "usage").await; // balance.low: w_all, w_low, mail
    let r = db
        .query(sql!(
            "SELECT e.type, d.channel, COALESCE(d.webhook_id, d.recipient) FROM deliveries d
             JOIN events e ON e.id = d.event_id ORDER BY e.rowid, d.channel, 3"
        ))
        .await
        .unwrap();
    let got: Vec<String> = r
        .rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|v| match v {
                    SqlValue::Text(t) => t.clone(),
                    other => format!("{other:?}"),
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    assert_eq!(
        got,
        vec![
            "credits.granted webhook w_all",
            "balance.low email ada@example.com",
            "balance.low webhook w_all",
            "balance.low webhook w_low",
        ]
    );
}

#[tokio::test]
async fn a_change_that_rolls_back_announces_nothing() {
    let (db, _store, _dir) = db().await;
    user(&db, "u1", None).await;
    exec(
        &db,
        "UPDATE users SET low_balance_threshold = ?1 WHERE id = 'u1'",
        vec![c("1").into()],
    )
    .await;
    ledger(&db, "u1", "2", "grant").await;
    // The batch's last statement fails: the usage entry and its event go with it.
    let failed = db
        .batch(vec![
            sql!(
                "INSERT INTO ledger (user_id, kind, amount, created_at) VALUES ('u1', 'usage', ?1, ?2)",
                -c("1.5"),
                T
            ),
            sql!("INSERT INTO ledger (user_id, kind, amount, created_at) VALUES ('u1', 'nonsense', 1, 0)"),
        ])
        .await;
    assert!(failed.is_err());
    assert_eq!(kinds(&events(&db).await), vec!["credits.granted"]);
}

#[tokio::test]
async fn credential_health_changes_are_announced_once_each_way() {
    let (db, _store, _dir) = db().await;
    exec(
        &db,
        "INSERT INTO providers (id, name, kind, created_at, updated_at) VALUES ('p', 'p', 'openai', 0, 0)",
        vec![],
    )
    .await;
    exec(
        &db,
        "INSERT INTO credentials (id, provider_id, name, secret_enc, secret_hint, created_at, updated_at)
         VALUES ('crd_1', 'p', 'main', 'x', 'x', 0, 0)",
        vec![],
    )
    .await;
    for status in ["disabled", "disabled", "active", "error", "active"] {
        exec(
            &db,
            "UPDATE credentials SET status = ?1, last_error = 'rejected', updated_at = 1 WHERE id = 'crd_1'",
            vec![status.into()],
        )
        .await;
    }
    assert_eq!(
        kinds(&events(&db).await),
        vec!["credential.disabled", "credential.enabled"]
    );
}
