//! The files `hub serve` keeps beside an embedded database (the database, its
//! WAL and shared memory, its lock, the generated master key) are readable
//! by their owner only, whether Hub created them or found them wider.

use hub_e2e::{Api, HubServer, Launch};
use reqwest::Method;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_hub"))
}

/// Every file in `dir` but the test's own logs, with its permission bits.
/// The mode of every file Hub made in `dir` (not the test's own logs), and of
/// the files in its directories (the settlement journal), as `dir/file`.
/// Directories are reported as 0600 when they are 0700 (private, and searchable).
fn modes(dir: &Path) -> Vec<(String, u32)> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().map(|e| e.unwrap()) {
        let name = e.file_name().to_string_lossy().into_owned();
        let mode = e.metadata().unwrap().permissions().mode() & 0o777;
        if name.starts_with("hub-") && name.ends_with(".log") {
            continue;
        }
        if e.path().is_dir() {
            files.push((name.clone(), if mode == 0o700 { 0o600 } else { mode }));
            for (inner, m) in modes(&e.path()) {
                files.push((format!("{name}/{inner}"), m));
            }
        } else {
            files.push((name, mode));
        }
    }
    files.sort();
    files
}

/// Starts Hub on `dir` and writes through it, so the WAL and its index exist.
async fn start_and_write(dir: std::path::PathBuf) -> HubServer {
    let hub = tokio::task::spawn_blocking(move || HubServer::start_in(bin(), Launch::default(), dir))
        .await
        .unwrap();
    Api::new(&hub.base)
        .admin(Method::POST, "/api/admin/users", Some(json!({"name": "wal"})))
        .await;
    hub
}

#[tokio::test]
async fn database_and_key_files_are_private() {
    // Whatever the umask would allow.
    let dir = hub_e2e::temp_dir("files");
    let hub = start_and_write(dir.clone()).await;
    let files = modes(&dir);
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    for expected in ["hub.db", "hub.db-shm", "hub.db-wal", "hub.db.key", "hub.db.lock"] {
        assert!(names.contains(&expected), "{expected} missing: {files:?}");
    }
    for (name, mode) in &files {
        assert_eq!(*mode, 0o600, "{name} is {mode:o}: {files:?}");
    }
    let mut hub = hub;
    assert!(hub.terminate(Duration::from_secs(30)).is_some(), "hub did not stop");

    // Files left readable by others (an older Hub, a careless copy) are tightened at start-up.
    for (name, _) in modes(&dir) {
        std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let _hub = start_and_write(dir.clone()).await;
    for (name, mode) in modes(&dir) {
        assert_eq!(mode, 0o600, "{name} is {mode:o} after a restart");
    }
}
