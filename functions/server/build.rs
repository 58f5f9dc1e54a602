//! Builds the admin site (`admin-ui/`) into the `hub` binary, so `hub serve`
//! shows it at `/` with no other step.
//!
//! With Node and `admin-ui/node_modules`, the site is built by Vite into
//! this build's `OUT_DIR` (never into `admin-ui/dist`, which the browser
//! tests and `--ui-dir` use) and every file is embedded with `include_bytes!`.
//! A release build on a machine with Node but no `node_modules` runs
//! `npm ci` first. Without Node, or with `HUB_EMBED_SITE=0`, nothing is
//! embedded and `/` answers a short page saying how to get the site.
//!
//! Cargo runs this script again only when the site's sources, lock file or
//! installed packages change, and the script skips Vite when the last build
//! is newer than every source, so test builds do not rebuild the site.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

/// What the site's build reads, relative to `admin-ui/`.
const INPUTS: &[&str] = &[
    "src",
    "index.html",
    "package.json",
    "package-lock.json",
    "vite.config.ts",
    "node_modules/.package-lock.json",
];
/// Written after a successful Vite build, to tell whether sources changed since.
const STAMP: &str = ".hub-site-built";

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let ui = manifest.join("../../admin-ui");
    watch(&ui);
    let site = out.join("site");
    let files = match embed_wanted().and_then(|()| build(&ui, &site)) {
        Ok(()) => site_files(&site),
        Err(why) => {
            println!("cargo:warning=the admin site is not embedded in `hub` ({why}); `hub serve` answers `/` with how to get it");
            Vec::new()
        }
    };
    let code = generated(&files);
    fs::write(out.join("site_files.rs"), code).expect("write site_files.rs");
}

/// Tells cargo what to watch: only paths that exist (a missing one would
/// make cargo run this script on every build). Without `node_modules`, the
/// whole `admin-ui` directory, so installing the packages is noticed.
fn watch(ui: &Path) {
    println!("cargo:rerun-if-env-changed=HUB_EMBED_SITE");
    println!("cargo:rerun-if-changed=build.rs");
    if !ui.join("node_modules").is_dir() {
        println!("cargo:rerun-if-changed={}", ui.display());
        return;
    }
    for input in INPUTS {
        let path = ui.join(input);
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}

fn embed_wanted() -> Result<(), String> {
    match std::env::var("HUB_EMBED_SITE").as_deref() {
        Ok("0") | Ok("false") => Err("HUB_EMBED_SITE=0".into()),
        _ => Ok(()),
    }
}

/// The built site in `site`: built again only when a source is newer than the last build.
fn build(ui: &Path, site: &Path) -> Result<(), String> {
    if !ui.join("package.json").is_file() {
        return Err(format!("no admin-ui at {}", ui.display()));
    }
    run("node", &["--version"], ui).map_err(|e| format!("Node.js is not available: {e}"))?;
    if !ui.join("node_modules/vite").is_dir() {
        install(ui)?;
    }
    let stamp = site.join(STAMP);
    if site.join("index.html").is_file() && modified(&stamp) >= newest(ui) {
        return Ok(());
    }
    let vite = ui.join("node_modules/vite/bin/vite.js");
    let out_dir = site.to_str().ok_or("the build directory's path is not UTF-8")?;
    let vite = vite.to_str().ok_or("the admin-ui path is not UTF-8")?;
    run(
        "node",
        &[
            vite,
            "build",
            "--outDir",
            out_dir,
            "--emptyOutDir",
            "--logLevel",
            "warn",
        ],
        ui,
    )?;
    fs::write(&stamp, b"").map_err(|e| format!("{}: {e}", stamp.display()))
}

/// `npm ci` for a release build (the README's run command); a debug build
/// never reaches the network: it embeds the site only once the packages are installed.
fn install(ui: &Path) -> Result<(), String> {
    if std::env::var("PROFILE").as_deref() != Ok("release") {
        return Err("admin-ui/node_modules is missing: run `npm ci` in admin-ui".into());
    }
    run("npm", &["ci", "--no-audit", "--no-fund"], ui).map_err(|e| format!("`npm ci` in admin-ui failed: {e}"))
}

fn run(program: &str, args: &[&str], dir: &Path) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
    Err(format!(
        "{program} {} exited with {}: {}",
        args.join(" "),
        out.status,
        tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
    ))
}

fn modified(path: &Path) -> SystemTime {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// The latest change among the site's inputs.
fn newest(ui: &Path) -> SystemTime {
    INPUTS
        .iter()
        .map(|input| newest_in(&ui.join(input)))
        .max()
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

fn newest_in(path: &Path) -> SystemTime {
    let own = modified(path);
    let Ok(entries) = fs::read_dir(path) else {
        return own;
    };
    entries
        .flatten()
        .map(|e| newest_in(&e.path()))
        .fold(own, SystemTime::max)
}

/// Every file of the built site: its URL path and where it is on disk.
fn site_files(site: &Path) -> Vec<(String, PathBuf)> {
    let mut files = Vec::new();
    collect(site, site, &mut files);
    files.retain(|(url, _)| url != &format!("/{STAMP}"));
    files.sort();
    files
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for path in entries.flatten().map(|e| e.path()) {
        if path.is_dir() {
            collect(root, &path, files);
        } else if let Ok(rel) = path.strip_prefix(root) {
            let url: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            files.push((format!("/{}", url.join("/")), path));
        }
    }
}

/// `FILES`: each URL path with its bytes, sorted by path.
fn generated(files: &[(String, PathBuf)]) -> String {
    let mut code = String::from("/// The admin site built into this binary (see build.rs), sorted by path.\npub static FILES: &[(&str, &[u8])] = &[\n");
    for (url, path) in files {
        let _ = writeln!(code, "    ({url:?}, include_bytes!({:?})),", path.display().to_string());
    }
    code.push_str("];\n");
    code
}
