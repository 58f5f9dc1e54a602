//! The audit log's store, on a real embedded database: an admin request's
//! entry commits in the same transaction as its first change (there before
//! the request is finished), a write that changes nothing or rolls back
//! leaves none, one entry per request however many writes, and finishing
//! records the outcome once (a request refused before any change included).

mod common;

use hub_core::kinds::{AuditAction, AuditResource};
use hub_core::store::{Actor, AuditEntry, AuditFinish, AuditTrail, PackRow, Store};
use hub_core::Credits;
use hub_libsql::LibSqlDb;
use std::sync::Arc;

async fn store(dir: &common::TempDir) -> Store {
    let db = LibSqlDb::open(dir.0.join("hub.db").to_str().unwrap(), None)
        .await
        .unwrap();
    let store = Store::new(Arc::new(db));
    store.migrate(0).await.unwrap();
    store
}

fn trail(id: &str) -> Arc<AuditTrail> {
    AuditTrail::new(AuditEntry {
        id: id.into(),
        at: 1_000,
        actor: Actor {
            user_id: "usr_admin".into(),
            key_id: Some("key_admin".into()),
            session_id: None,
        },
        request_id: format!("req_{id}"),
        method: "POST".into(),
        path: "/api/admin/credit-packs".into(),
        resource: AuditResource::CreditPack,
        resource_id: None,
        action: AuditAction::Create,
        request: Some(serde_json::json!({"name": "Starter"})),
        before: None,
    })
}

fn pack(id: &str) -> PackRow {
    PackRow {
        id: id.into(),
        name: "Starter".into(),
        currency: hub_core::kinds::Currency::parse("usd").unwrap(),
        unit_amount: 500,
        credits: Credits::from_nanos(5_000_000_000),
        active: true,
        created_at: 1_000,
        updated_at: 1_000,
    }
}

fn finish(status: u16, id: Option<&str>) -> AuditFinish<'_> {
    AuditFinish {
        status,
        resource_id: id,
        after: Some(serde_json::json!({"id": id})),
        now_ms: 2_000,
    }
}

#[tokio::test]
async fn the_entry_commits_with_the_first_change() {
    let dir = common::temp_dir("audit");
    let plain = store(&dir).await;
    let t = trail("aud_1");
    let audited = plain.audited(t.clone());
    // A write that changes nothing writes no entry.
    assert!(!audited.delete_pack("pck_none").await.unwrap());
    assert!(!t.written());
    assert!(plain.get_audit("aud_1").await.unwrap().is_none());
    // The change and its entry, together: the entry is there, unfinished, before any finish.
    audited.insert_pack(&pack("pck_1")).await.unwrap();
    assert!(t.written());
    let e = plain
        .get_audit("aud_1")
        .await
        .unwrap()
        .expect("written with the change");
    assert_eq!(
        (e.status, e.resource.as_str(), e.actor.key_id.as_deref()),
        (None, "credit_pack", Some("key_admin"))
    );
    // More writes of the same request: still one entry.
    audited.delete_pack("pck_1").await.unwrap();
    plain.finish_audit(&t, &finish(201, Some("pck_1"))).await.unwrap();
    let page = plain.list_audit(&Default::default(), None, 10).await.unwrap();
    assert_eq!(page.items.len(), 1);
    let e = &page.items[0];
    assert_eq!(
        (e.status, e.resource_id.as_deref(), e.finished_at),
        (Some(201), Some("pck_1"), Some(2_000))
    );
    // Finished: later writes through the same store (background work) are not the request's.
    audited.insert_pack(&pack("pck_2")).await.unwrap();
    assert_eq!(
        plain
            .list_audit(&Default::default(), None, 10)
            .await
            .unwrap()
            .items
            .len(),
        1
    );
}

#[tokio::test]
async fn a_rolled_back_write_leaves_no_entry_and_a_refusal_is_recorded_at_the_finish() {
    let dir = common::temp_dir("audit");
    let plain = store(&dir).await;
    plain.insert_pack(&pack("pck_taken")).await.unwrap();
    let t = trail("aud_2");
    let err = plain.audited(t.clone()).insert_pack(&pack("pck_taken")).await;
    assert!(err.is_err(), "the id is taken");
    assert!(!t.written());
    assert!(
        plain.get_audit("aud_2").await.unwrap().is_none(),
        "rolled back with the write"
    );
    plain.finish_audit(&t, &finish(409, None)).await.unwrap();
    let e = plain
        .get_audit("aud_2")
        .await
        .unwrap()
        .expect("the refusal is on record");
    assert_eq!((e.status, e.request_id.as_str()), (Some(409), "req_aud_2"));
    // Finished entries do not change.
    plain.finish_audit(&t, &finish(200, Some("x"))).await.unwrap();
    let again = plain.get_audit("aud_2").await.unwrap().unwrap();
    assert_eq!((again.status, again.resource_id), (Some(409), None));
}
