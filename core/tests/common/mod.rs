//! What the in-process suites share: a Hub on a real embedded database in a
//! directory of its own, with the `hub_core::testing` fakes for the rest.
#![allow(dead_code)] // each suite uses part of it

use hub_core::crypto::MasterKey;
use hub_core::ports::{Journal, Rng};
use hub_core::testing::{Collector, ManualClock, ScriptedUpstream, SeqRng};
use hub_core::{Hub, HubOptions};
use hub_libsql::LibSqlDb;
use std::path::PathBuf;
use std::sync::Arc;

/// A directory removed when the test is done with it.
pub struct TempDir(pub PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A store on `db` with the schema applied and one member, `user`, holding nothing.
pub async fn store_with_user(db: Arc<dyn hub_core::ports::SqlDb>, user: &str) -> hub_core::store::Store {
    use hub_core::store::{Store, UserRow};
    use hub_core::Credits;
    let store = Store::new(db);
    store.migrate(0).await.unwrap();
    let row = UserRow {
        id: user.into(),
        name: "u".into(),
        email: None,
        role: "member".into(),
        balance: Credits::ZERO,
        held: Credits::ZERO,
        leased: Credits::ZERO,
        disabled: false,
        created_at: 0,
        updated_at: 0,
    };
    store.insert_user(&row, Credits::ZERO, vec![]).await.unwrap();
    store
}

/// A fresh directory; the counter keeps parallel tests of one binary apart.
pub fn temp_dir(tag: &str) -> TempDir {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("hub-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

/// A started Hub and the fakes behind it.
pub struct Fixture {
    pub hub: Hub,
    pub upstream: Arc<ScriptedUpstream>,
    pub clock: Arc<ManualClock>,
    pub background: Arc<Collector>,
    pub dir: TempDir,
}

/// How a suite wants its Hub; `Setup::default()` is a plain one.
pub struct Setup {
    pub options: HubOptions,
    pub rng: Arc<dyn Rng>,
    pub journal: Option<Arc<dyn Journal>>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            options: HubOptions::default(),
            rng: Arc::new(SeqRng::default()),
            journal: None,
        }
    }
}

/// Starts a Hub on the database in `dir` with `admin` as its owner key.
pub async fn start(dir: TempDir, admin: &str, setup: Setup) -> Fixture {
    let path = dir.0.join("hub.db");
    // A database just closed by a "dead" Hub may still be releasing its lock for a moment.
    let mut tries = 0;
    let db = loop {
        match LibSqlDb::open(path.to_str().unwrap(), None).await {
            Ok(db) => break db,
            Err(_) if tries < 200 => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            Err(e) => panic!("open the database: {e}"),
        }
    };
    let upstream = Arc::new(ScriptedUpstream::default());
    let clock = Arc::new(ManualClock::at(1_767_225_600_000));
    let background = Arc::new(Collector::default());
    let hub = Hub::new(
        Arc::new(db),
        upstream.clone(),
        clock.clone(),
        setup.rng,
        background.clone(),
        MasterKey::from_bytes(&[7; 32]).unwrap(),
        setup.options,
    );
    if let Some(j) = setup.journal {
        hub.set_journal(j);
    }
    hub.start().await.unwrap();
    hub.ensure_owner_key(admin).await.unwrap();
    Fixture {
        hub,
        upstream,
        clock,
        background,
        dir,
    }
}
