//! Running the repository's Node test suites (the admin site's, the AIGNE
//! client's) from Rust tests: `npm ci` when a lockfile's packages are not
//! installed yet, then one npm script, bounded in time, its output kept.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Installs a package's locked dependencies if they are missing.
pub fn ensure_installed(dir: &Path) -> Result<(), String> {
    if dir.join("node_modules/.package-lock.json").exists() {
        return Ok(());
    }
    let mut cmd = Command::new("npm");
    cmd.args(["ci", "--no-audit", "--no-fund"]).current_dir(dir);
    crate::run_bounded(cmd, Duration::from_secs(600), &format!("npm ci in {}", dir.display())).map(|_| ())
}

/// Runs `npm run <script>` in `dir` with extra environment; returns its output.
pub fn run_script(dir: &Path, script: &str, env: &[(&str, String)], limit: Duration) -> Result<String, String> {
    ensure_installed(dir)?;
    let mut cmd = Command::new("npm");
    cmd.args(["run", "--silent", script]).current_dir(dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    crate::run_bounded(cmd, limit, &format!("npm run {script} in {}", dir.display()))
}
