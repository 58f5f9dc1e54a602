//! The container image's contents, without a container builder: the runtime
//! tree comes from scripts/build-image-rootfs (the script the Dockerfile's
//! build stage runs) applied to the binary these tests already built, with
//! the host's copies of the libraries the distroless base supplies; it is
//! started the way the image starts it (the Dockerfile's ENV, USER,
//! ENTRYPOINT and CMD, read from the Dockerfile itself) in a chroot of that
//! tree, as the image's non-root user. Only the listen address is narrowed to
//! loopback, the way `docker run -e HUB_LISTEN=…` would change it.

use hub_e2e::{eventually, free_port, temp_dir, ProcessGroup, ADMIN_KEY};
use serde_json::Value;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// What the Dockerfile's last stage says about how the image runs.
#[derive(Debug, Default)]
struct Image {
    env: Vec<(String, String)>,
    user: String,
    volume: Vec<String>,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    healthcheck: Vec<String>,
}

fn json_list(text: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not a JSON list: {text}: {e}"));
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// The last stage's instructions (continuation lines joined, comments dropped).
fn dockerfile() -> Image {
    let text = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let joined = text.replace("\\\n", " ");
    let lines: Vec<&str> = joined
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    let last = lines.iter().rposition(|l| l.starts_with("FROM ")).unwrap();
    let mut image = Image::default();
    for line in &lines[last + 1..] {
        let (word, rest) = line.split_once(' ').unwrap();
        match word {
            "ENV" => image.env.extend(rest.split_whitespace().map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k.to_string(), v.to_string())
            })),
            "USER" => image.user = rest.to_string(),
            "VOLUME" => image.volume = json_list(rest),
            "ENTRYPOINT" => image.entrypoint = json_list(rest),
            "CMD" => image.cmd = json_list(rest),
            "HEALTHCHECK" => image.healthcheck = json_list(rest.split_once("CMD ").unwrap().1),
            _ => {}
        }
    }
    image
}

/// The runtime tree, plus the host's copies of what the distroless base supplies (the dynamic loader, glibc).
fn rootfs(dir: &Path) -> PathBuf {
    let ui = dir.join("ui");
    std::fs::create_dir_all(&ui).unwrap();
    std::fs::write(ui.join("index.html"), "<title>Hub image test</title>").unwrap();
    let root = dir.join("rootfs");
    let out = Command::new(repo().join("scripts/build-image-rootfs"))
        .arg(env!("CARGO_BIN_EXE_hub"))
        .arg(&ui)
        .arg(&root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "build-image-rootfs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ldd = Command::new("ldd").arg(env!("CARGO_BIN_EXE_hub")).output().unwrap();
    for lib in String::from_utf8_lossy(&ldd.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
    {
        let target = root.join(lib.trim_start_matches('/'));
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(lib, &target).unwrap();
    }
    root
}

/// A command run in the image: chrooted into the tree as the image's user, with only the image's environment.
fn in_image(root: &Path, image: &Image, argv: &[String], listen: &str) -> Command {
    let mut c = Command::new(program("chroot"));
    c.arg(format!("--userspec={}", image.user)).arg(root).args(argv);
    c.env_clear()
        .envs(image.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    c.env("HUB_LISTEN", listen).env("HUB_ADMIN_KEY", ADMIN_KEY);
    c
}

/// A program's path on this machine's PATH (the commands run with the image's environment, which has none).
fn program(name: &str) -> PathBuf {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| panic!("{name} not found"))
}

fn healthy(root: &Path, image: &Image, listen: &str) -> bool {
    let mut c = in_image(root, image, &image.healthcheck, listen);
    c.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

#[tokio::test]
async fn the_image_runs_as_its_user_on_its_volume_and_reports_health() {
    assert_eq!(euid(), 0, "this test chroots and switches users: run it as root");
    let image = dockerfile();
    assert_eq!(
        (image.user.as_str(), image.volume.as_slice()),
        ("65532:65532", &["/data".to_string()][..])
    );
    assert!(
        image.env.contains(&("HUB_LISTEN".into(), "0.0.0.0:8787".into())),
        "{image:?}"
    );
    let dir = Scratch(temp_dir("image"));
    let dir = &dir.0;
    let root = rootfs(dir);
    let listen = format!("127.0.0.1:{}", free_port());
    assert!(!healthy(&root, &image, &listen), "healthy before the server runs");

    let argv: Vec<String> = image.entrypoint.iter().chain(&image.cmd).cloned().collect();
    let mut serve = in_image(&root, &image, &argv, &listen);
    serve
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("hub.log")).unwrap());
    let hub = ProcessGroup(serve.process_group(0).spawn().unwrap());
    let http = reqwest::Client::new();
    let base = format!("http://{listen}");
    eventually("the server is ready", Duration::from_secs(30), || async {
        let r = http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        (r.status() == 200).then_some(()).ok_or(format!("{}", r.status()))
    })
    .await;
    assert!(
        healthy(&root, &image, &listen),
        "the HEALTHCHECK command fails: {}",
        log(dir)
    );

    // The server is the image's user; what it writes is on the volume, private to it.
    let status = std::fs::read_to_string(format!("/proc/{}/status", hub.0.id())).unwrap();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(uid.split_whitespace().skip(1).all(|u| u == "65532"), "{uid}");
    for file in ["data/hub.db", "data/hub.db.key"] {
        let meta = std::fs::metadata(root.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!((meta.uid(), meta.mode() & 0o777), (65532, 0o600), "{file}");
    }
    // The admin key works, and the admin site is served from the image's HUB_UI_DIR.
    let me = http
        .get(format!("{base}/api/me"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let site = http.get(format!("{base}/")).send().await.unwrap().text().await.unwrap();
    assert!(site.contains("Hub image test"), "{site}");
    drop(hub);
}

fn log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("hub.log")).unwrap_or_default()
}

/// The effective user id (`id -u`: no libc binding in this crate).
fn euid() -> u32 {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// A directory removed when the test ends (it holds a copy of the binary).
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
