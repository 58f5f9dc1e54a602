//! Binaries of other workspace packages, for tests in a package that does not
//! build them: cargo hands a test `CARGO_BIN_EXE_<name>` only for its own
//! package's binaries. A fixed `target/debug/hub` is wrong twice over: under
//! another `CARGO_TARGET_DIR` (or `--target-dir`, or `--release`) it is some
//! older build, or none. So the binary is looked up next to the running test
//! executable (`<target dir>/<profile>/deps/<test>` → `<target dir>/<profile>/<bin>`),
//! which is what this cargo run built when it built the whole workspace, and it
//! is checked against its sources (cargo's dep-info file lists them); when it
//! is missing or older than one of them, it is built there first.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

/// Where this cargo run puts its binaries: its target directory and profile.
struct Output {
    target_dir: PathBuf,
    /// The profile's directory name (`debug` for the dev profile).
    profile: String,
}

fn output() -> Output {
    let exe = std::env::current_exe().expect("the test executable's path");
    // <target dir>/<profile>/deps/<test executable>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| panic!("{} is not in a cargo target directory", exe.display()));
    let target_dir = profile_dir.parent().unwrap().to_path_buf();
    let profile = profile_dir.file_name().unwrap().to_string_lossy().into_owned();
    Output { target_dir, profile }
}

/// The newest modification time among the sources cargo recorded for `bin`
/// (its `<bin>.d` dep-info file), or `None` if there is no such file.
fn newest_source(bin: &Path) -> Option<(SystemTime, PathBuf)> {
    let depinfo = std::fs::read_to_string(bin.with_extension("d")).ok()?;
    let (_, sources) = depinfo.lines().next()?.split_once(": ")?;
    // Paths are separated by spaces; a space inside a path is escaped as `\ `.
    let sources = sources.replace("\\ ", "\u{0}");
    sources
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(|s| PathBuf::from(s.replace('\u{0}', " ")))
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .max()
}

/// Why `bin` cannot be used as it is: missing, or older than a source.
fn stale(bin: &Path) -> Option<String> {
    let Ok(built) = std::fs::metadata(bin).and_then(|m| m.modified()) else {
        return Some(format!("{} does not exist", bin.display()));
    };
    match newest_source(bin) {
        None => Some(format!("{} has no dep-info file", bin.display())),
        Some((changed, source)) if changed > built => {
            Some(format!("{} is older than {}", bin.display(), source.display()))
        }
        Some(_) => None,
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// `cargo build -p <package> --bin <bin>` into this run's target dir and profile.
fn build(package: &str, bin: &str, out: &Output) -> Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let profile = if out.profile == "debug" { "dev" } else { &out.profile };
    let built = Command::new(cargo)
        .args(["build", "--quiet", "-p", package, "--bin", bin, "--profile", profile])
        .arg("--target-dir")
        .arg(&out.target_dir)
        .current_dir(workspace_root())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if built.status.success() {
        return Ok(());
    }
    Err(format!(
        "cargo build -p {package} --bin {bin} failed ({}):\n{}",
        built.status,
        String::from_utf8_lossy(&built.stderr)
    ))
}

/// The path of binary `bin` of workspace package `package`, as built by the
/// cargo run executing this test (built now if missing or out of date).
pub fn workspace_bin(package: &str, bin: &str) -> PathBuf {
    // One build at a time: parallel tests of one binary may all ask.
    static BUILDING: Mutex<()> = Mutex::new(());
    let _one = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    let out = output();
    let path = out.target_dir.join(&out.profile).join(bin);
    if let Some(why) = stale(&path) {
        build(package, bin, &out).unwrap_or_else(|e| panic!("{why}; building it: {e}"));
        if let Some(still) = stale(&path) {
            panic!("{still} after cargo build -p {package} --bin {bin}");
        }
    }
    path
}

/// The `hub` server binary (package hub-server) of this cargo run.
pub fn hub() -> &'static Path {
    static HUB: OnceLock<PathBuf> = OnceLock::new();
    HUB.get_or_init(|| workspace_bin("hub-server", "hub"))
}
