//! The admin site, served for every path that is not Hub's API: the copy
//! built into the binary (build.rs), or static files from a directory
//! (`--ui-dir`, which overrides it). Unknown paths get `index.html`, so the
//! site's own routes survive a reload. A binary built without the site
//! answers with a short page saying how to get it.

use bytes::Bytes;
use std::path::{Component, Path, PathBuf};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/site_files.rs"));
}

/// Where the site comes from.
#[derive(Clone, Debug)]
enum Source {
    /// A directory holding an `index.html` (`--ui-dir`).
    Dir(PathBuf),
    /// Files compiled into the binary, sorted by path.
    Embedded(&'static [(&'static str, &'static [u8])]),
    /// Neither: `/` says how to get the site.
    Missing,
}

/// The admin site.
#[derive(Clone, Debug)]
pub struct Site {
    source: Source,
}

/// A file to send: its bytes and headers.
pub struct Asset {
    pub status: u16,
    pub content_type: &'static str,
    pub cache_control: &'static str,
    pub body: Bytes,
}

/// Hashed file names (Vite's `assets/`) never change content: cached for a year.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// What `/` says when this binary has no site and no `--ui-dir` was given.
const NO_SITE: &str = "<!doctype html><meta charset=utf-8><title>Hub</title>\n\
<h1>Hub is running</h1>\n\
<p>This <code>hub</code> was built without its admin site (Node.js was not available, or <code>HUB_EMBED_SITE=0</code>). \
The API works: see the README.</p>\n\
<p>To get the site, install Node.js and rebuild (<code>cargo build --release -p hub-server</code> builds it in), \
or build it yourself and point Hub at it: <code>cd admin-ui &amp;&amp; npm ci &amp;&amp; npm run build</code>, \
then <code>hub serve --ui-dir admin-ui/dist</code>.</p>\n";

fn asset(status: u16, content_type: &'static str, cache_control: &'static str, body: Bytes) -> Asset {
    Asset {
        status,
        content_type,
        cache_control,
        body,
    }
}

impl Site {
    pub fn open(dir: &Path) -> Result<Site, String> {
        let root = dir
            .canonicalize()
            .map_err(|e| format!("admin site directory {}: {e}", dir.display()))?;
        if !root.join("index.html").is_file() {
            return Err(format!(
                "admin site directory {} has no index.html (build it with `npm ci && npm run build` in admin-ui/)",
                root.display()
            ));
        }
        Ok(Site {
            source: Source::Dir(root),
        })
    }

    /// The site built into this binary, or the page saying how to get one.
    pub fn built_in() -> Site {
        Site::from_files(embedded::FILES)
    }

    fn from_files(files: &'static [(&'static str, &'static [u8])]) -> Site {
        let has_index = files.iter().any(|(p, _)| *p == "/index.html");
        Site {
            source: if has_index {
                Source::Embedded(files)
            } else {
                Source::Missing
            },
        }
    }

    /// Whether this is a real site (from a directory or built in).
    pub fn is_present(&self) -> bool {
        !matches!(self.source, Source::Missing)
    }

    /// The file for a request path; `index.html` for anything that is not a file.
    pub async fn get(&self, path: &str) -> Asset {
        match &self.source {
            Source::Dir(root) => from_dir(root, path).await,
            Source::Embedded(files) => from_files(files, path),
            Source::Missing => asset(
                if path == "/" { 200 } else { 404 },
                "text/html; charset=utf-8",
                "no-cache",
                Bytes::from_static(NO_SITE.as_bytes()),
            ),
        }
    }
}

fn cache_for(path: &str) -> &'static str {
    if path.starts_with("/assets/") {
        IMMUTABLE
    } else {
        "no-cache"
    }
}

fn from_files(files: &[(&'static str, &'static [u8])], path: &str) -> Asset {
    let found = files
        .binary_search_by(|(p, _)| (*p).cmp(path))
        .ok()
        .filter(|_| path != "/")
        .map(|i| files[i]);
    match found {
        Some((p, body)) => asset(200, content_type(Path::new(p)), cache_for(p), Bytes::from_static(body)),
        None => {
            let index = files
                .iter()
                .find(|(p, _)| *p == "/index.html")
                .map_or(&b""[..], |f| f.1);
            asset(200, "text/html; charset=utf-8", "no-cache", Bytes::from_static(index))
        }
    }
}

async fn from_dir(root: &Path, path: &str) -> Asset {
    if let Some(file) = file_for(root, path) {
        if let Ok(body) = tokio::fs::read(&file).await {
            return asset(200, content_type(&file), cache_for(path), body.into());
        }
    }
    match tokio::fs::read(root.join("index.html")).await {
        Ok(body) => asset(200, "text/html; charset=utf-8", "no-cache", body.into()),
        Err(_) => asset(
            404,
            "text/plain; charset=utf-8",
            "no-cache",
            Bytes::from_static(b"admin site not found"),
        ),
    }
}

/// Maps a URL path into the root, refusing anything that could leave it.
fn file_for(root: &Path, path: &str) -> Option<PathBuf> {
    let rel = path.trim_start_matches('/');
    if rel.is_empty() {
        return None;
    }
    let rel = Path::new(rel);
    if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return None;
    }
    let full = root.join(rel);
    // A symlink pointing outside the root is not served either.
    let real = full.canonicalize().ok()?;
    (real.starts_with(root) && real.is_file()).then_some(real)
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "ico" => "image/x-icon",
        "webp" => "image/webp",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_files_falls_back_to_index_and_never_leaves_the_root() {
        // A parent of its own, so the file outside the root is this test's alone.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let parent = std::env::temp_dir().join(format!("hub-site-{}-{nanos}", std::process::id()));
        let dir = parent.join("site");
        std::fs::create_dir_all(dir.join("assets")).unwrap();
        std::fs::write(dir.join("index.html"), "<html>index</html>").unwrap();
        std::fs::write(dir.join("assets/app-1.js"), "console.log(1)").unwrap();
        std::fs::write(dir.parent().unwrap().join("hub-site-secret.txt"), "secret").unwrap();
        let site = Site::open(&dir).unwrap();

        let js = site.get("/assets/app-1.js").await;
        assert_eq!(&js.body[..], b"console.log(1)");
        assert_eq!(js.content_type, "text/javascript; charset=utf-8");
        assert!(js.cache_control.contains("immutable"));

        for path in [
            "/",
            "/users/42",
            "/../hub-site-secret.txt",
            "/assets/../../hub-site-secret.txt",
        ] {
            let page = site.get(path).await;
            assert_eq!(&page.body[..], b"<html>index</html>", "{path}");
        }
        std::fs::remove_dir_all(&parent).unwrap();
    }

    #[tokio::test]
    async fn built_in_files_with_index_fallback_and_long_cache_for_assets() {
        static FILES: &[(&str, &[u8])] = &[
            ("/assets/app-1.js", b"console.log(1)"),
            ("/favicon.svg", b"<svg/>"),
            ("/index.html", b"<html>index</html>"),
        ];
        let site = Site::from_files(FILES);
        assert!(site.is_present());
        let js = site.get("/assets/app-1.js").await;
        assert_eq!(
            (&js.body[..], js.content_type),
            (&b"console.log(1)"[..], "text/javascript; charset=utf-8")
        );
        assert_eq!(js.cache_control, IMMUTABLE);
        let icon = site.get("/favicon.svg").await;
        assert_eq!((icon.content_type, icon.cache_control), ("image/svg+xml", "no-cache"));
        for path in ["/", "/users/42", "/../index.html", "/assets/missing.js"] {
            let page = site.get(path).await;
            assert_eq!(
                (page.status, &page.body[..]),
                (200, &b"<html>index</html>"[..]),
                "{path}"
            );
            assert_eq!(page.cache_control, "no-cache", "{path}");
        }
    }

    #[tokio::test]
    async fn without_a_site_the_root_says_how_to_get_one() {
        let site = Site::from_files(&[]);
        assert!(!site.is_present());
        let root = site.get("/").await;
        let text = String::from_utf8(root.body.to_vec()).unwrap();
        assert_eq!(root.status, 200);
        assert!(
            text.contains("--ui-dir admin-ui/dist") && text.contains("npm ci"),
            "{text}"
        );
        assert_eq!(site.get("/users/42").await.status, 404);
    }
}
