//! Running the repository's Node test suites (the admin site's, the AIGNE
//! client's) from Rust tests: `npm ci` when a lockfile's packages are not
//! installed yet, then one npm script, bounded in time, its output kept.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn run_bounded(mut cmd: Command, limit: Duration, what: &str) -> Result<String, String> {
    let out_path = crate::temp_dir("npm").join("npm.log");
    let log = std::fs::File::create(&out_path).map_err(|e| e.to_string())?;
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().map_err(|e| format!("{what}: cannot start: {e}"))?;
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    let _ = std::fs::remove_dir_all(out_path.parent().unwrap());
    match status {
        Some(s) if s.success() => Ok(output),
        Some(s) => Err(format!("{what} failed ({s}):\n{output}")),
        None => Err(format!("{what} did not finish within {limit:?}:\n{output}")),
    }
}

/// Installs a package's locked dependencies if they are missing.
pub fn ensure_installed(dir: &Path) -> Result<(), String> {
    if dir.join("node_modules/.package-lock.json").exists() {
        return Ok(());
    }
    let mut cmd = Command::new("npm");
    cmd.args(["ci", "--no-audit", "--no-fund"]).current_dir(dir);
    run_bounded(cmd, Duration::from_secs(600), &format!("npm ci in {}", dir.display())).map(|_| ())
}

/// Runs `npm run <script>` in `dir` with extra environment; returns its output.
pub fn run_script(dir: &Path, script: &str, env: &[(&str, String)], limit: Duration) -> Result<String, String> {
    ensure_installed(dir)?;
    let mut cmd = Command::new("npm");
    cmd.args(["run", "--silent", script]).current_dir(dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_bounded(cmd, limit, &format!("npm run {script} in {}", dir.display()))
}
