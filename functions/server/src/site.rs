//! The admin site: static files from a directory (`--ui-dir`), served for
//! every path that is not Hub's API. Unknown paths get `index.html`, so the
//! site's own routes survive a reload.

use bytes::Bytes;
use std::path::{Component, Path, PathBuf};

/// A static site rooted at a directory holding an `index.html`.
#[derive(Clone, Debug)]
pub struct Site {
    root: PathBuf,
}

/// A file to send: its bytes and headers.
pub struct Asset {
    pub status: u16,
    pub content_type: &'static str,
    pub cache_control: &'static str,
    pub body: Bytes,
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
        Ok(Site { root })
    }

    /// The file for a request path; `index.html` for anything that is not a file.
    pub async fn get(&self, path: &str) -> Asset {
        if let Some(file) = self.file_for(path) {
            if let Ok(body) = tokio::fs::read(&file).await {
                let hashed = path.starts_with("/assets/");
                return Asset {
                    status: 200,
                    content_type: content_type(&file),
                    cache_control: if hashed {
                        "public, max-age=31536000, immutable"
                    } else {
                        "no-cache"
                    },
                    body: body.into(),
                };
            }
        }
        match tokio::fs::read(self.root.join("index.html")).await {
            Ok(body) => Asset {
                status: 200,
                content_type: "text/html; charset=utf-8",
                cache_control: "no-cache",
                body: body.into(),
            },
            Err(_) => Asset {
                status: 404,
                content_type: "text/plain; charset=utf-8",
                cache_control: "no-cache",
                body: Bytes::from_static(b"admin site not found"),
            },
        }
    }

    /// Maps a URL path into the root, refusing anything that could leave it.
    fn file_for(&self, path: &str) -> Option<PathBuf> {
        let rel = path.trim_start_matches('/');
        if rel.is_empty() {
            return None;
        }
        let rel = Path::new(rel);
        if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
            return None;
        }
        let full = self.root.join(rel);
        // A symlink pointing outside the root is not served either.
        let real = full.canonicalize().ok()?;
        (real.starts_with(&self.root) && real.is_file()).then_some(real)
    }
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
}
