//! A real OpenID provider for the sign-in tests (npm `oidc-provider`, run by
//! `tests/oidc-provider/op.mjs` on loopback), and a browser without a
//! browser: a cookie jar shared by every port of 127.0.0.1 (as a browser's
//! is: cookies do not separate ports) that follows no redirects by itself,
//! so each step of a sign-in can be looked at.

use crate::worker::repo_root;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The provider process; stopped when dropped.
pub struct OidcProvider {
    pub issuer: String,
    child: Child,
}

impl OidcProvider {
    /// Starts a provider with one client (`hub` / `hub-secret`) allowed to
    /// redirect to `redirect_uris`, signing ID tokens with `alg` (RS256 or
    /// ES256). It starts in about a second; one that has not said it is ready
    /// within 15 s is stopped and started again (twice at most), its log
    /// printed, so one stalled start on a loaded machine fails no test.
    pub fn start(redirect_uris: &[String], alg: &str) -> OidcProvider {
        let dir = repo_root().join("tests/oidc-provider");
        crate::node::ensure_installed(&dir).expect("installing tests/oidc-provider");
        let mut failures = Vec::new();
        for _ in 0..3 {
            match Self::start_once(&dir, redirect_uris, alg) {
                Ok(provider) => return provider,
                Err(why) => {
                    eprintln!("the OpenID provider did not start, starting it again: {why}");
                    failures.push(why);
                }
            }
        }
        panic!("the OpenID provider did not start: {failures:#?}");
    }

    fn start_once(dir: &std::path::Path, redirect_uris: &[String], alg: &str) -> Result<OidcProvider, String> {
        let log = crate::temp_dir("oidc-provider").join("op.log");
        let mut cmd = Command::new("node");
        cmd.arg(dir.join("op.mjs"))
            .env("OP_PORT", "0")
            .env("OP_CLIENT_ID", CLIENT_ID)
            .env("OP_CLIENT_SECRET", CLIENT_SECRET)
            .env("OP_REDIRECT_URIS", redirect_uris.join(","))
            .env("OP_ALG", alg)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"));
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd.spawn().expect("node tests/oidc-provider/op.mjs");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        // Stopped when dropped, started or not.
        let mut provider = OidcProvider {
            issuer: String::new(),
            child,
        };
        let line = rx.recv_timeout(Duration::from_secs(15)).unwrap_or_default();
        match line.trim().strip_prefix("ready ") {
            Some(issuer) => {
                provider.issuer = issuer.to_string();
                Ok(provider)
            }
            None => Err(format!(
                "said {line:?}; its log: {:?}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )),
        }
    }

    /// Makes the provider's next ID token wrong in one way (`signature`,
    /// `aud`, `nonce`, `expired`, `iss`); the claims are re-signed with its
    /// own key, so only the claim check catches them.
    pub async fn tamper(&self, mode: &str) {
        let r = reqwest::Client::new()
            .post(format!("{}/__test/tamper", self.issuer))
            .json(&serde_json::json!({ "mode": mode }))
            .send()
            .await
            .expect("tamper switch");
        assert_eq!(r.status(), 200, "tamper {mode}");
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        // Closing stdin stops it; the group kill makes sure.
        drop(self.child.stdin.take());
        crate::stop_group(&mut self.child, Duration::from_secs(5));
    }
}

pub const CLIENT_ID: &str = "hub";
pub const CLIENT_SECRET: &str = "hub-secret";

/// A cookie as a browser keeps it.
#[derive(Debug, Clone)]
struct Cookie {
    name: String,
    value: String,
    path: String,
    http_only: bool,
}

/// One person's browser, reduced to what sign-in needs.
pub struct Browser {
    client: reqwest::Client,
    cookies: Vec<Cookie>,
    pub user_agent: String,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub set_cookies: Vec<String>,
    pub body: String,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    pub fn new() -> Browser {
        Browser {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            cookies: Vec::new(),
            user_agent: "HubTest/1.0 (sign-in)".into(),
        }
    }

    /// The cookies this browser would send to `url`.
    fn cookie_header(&self, url: &str) -> String {
        let path = reqwest::Url::parse(url)
            .map(|u| u.path().to_string())
            .unwrap_or_default();
        self.cookies
            .iter()
            .filter(|c| path == c.path || path.starts_with(&format!("{}/", c.path.trim_end_matches('/'))))
            .map(|c| format!("{}={}", c.name, c.value))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn store(&mut self, set_cookies: &[String]) {
        for line in set_cookies {
            let mut parts = line.split(';').map(str::trim);
            let Some((name, value)) = parts.next().and_then(|p| p.split_once('=')) else {
                continue;
            };
            let attrs: Vec<&str> = parts.collect();
            let attr = |k: &str| {
                attrs.iter().find_map(|a| {
                    a.split_once('=')
                        .filter(|(n, _)| n.eq_ignore_ascii_case(k))
                        .map(|(_, v)| v)
                })
            };
            let path = attr("path").unwrap_or("/").to_string();
            self.cookies.retain(|c| !(c.name == name && c.path == path));
            let removed = value.is_empty() || attr("max-age") == Some("0");
            if !removed {
                self.cookies.push(Cookie {
                    name: name.to_string(),
                    value: value.to_string(),
                    path,
                    http_only: attrs.iter().any(|a| a.eq_ignore_ascii_case("httponly")),
                });
            }
        }
    }

    /// The value of a cookie this browser holds, if any.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.iter().find(|c| c.name == name).map(|c| c.value.clone())
    }

    /// Whether the browser holds the cookie as HttpOnly.
    pub fn cookie_http_only(&self, name: &str) -> Option<bool> {
        self.cookies.iter().find(|c| c.name == name).map(|c| c.http_only)
    }

    /// Forgets a cookie (a browser whose storage was cleared, or an attacker's).
    pub fn forget(&mut self, name: &str) {
        self.cookies.retain(|c| c.name != name);
    }

    /// Signs out of the OpenID provider (forgets its session cookies), so the
    /// next sign-in there asks who is logging in.
    pub fn forget_provider_session(&mut self) {
        self.cookies.retain(|c| !c.name.starts_with("_session"));
    }

    /// Sets a cookie by hand (what an attacker's browser would send).
    pub fn set_cookie(&mut self, name: &str, value: &str) {
        self.store(&[format!("{name}={value}; Path=/")]);
    }

    pub async fn request(
        &mut self,
        method: reqwest::Method,
        url: &str,
        body: Option<Body>,
        headers: &[(&str, &str)],
    ) -> Page {
        let mut req = self.client.request(method, url).header("user-agent", &self.user_agent);
        let cookies = self.cookie_header(url);
        if !cookies.is_empty() {
            req = req.header("cookie", cookies);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req = match body {
            Some(Body::Form(pairs)) => req.form(&pairs),
            Some(Body::Json(v)) => req.json(&v),
            None => req,
        };
        let r = req.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
        let set_cookies: Vec<String> = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        self.store(&set_cookies);
        let location = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(|l| r.url().join(l).map(|u| u.to_string()).unwrap_or(l.to_string()));
        Page {
            status: r.status().as_u16(),
            location,
            set_cookies,
            body: r.text().await.unwrap_or_default(),
        }
    }

    pub async fn get(&mut self, url: &str) -> Page {
        self.request(reqwest::Method::GET, url, None, &[]).await
    }

    /// A GET whose answer is JSON: its status and body.
    pub async fn get_json(&mut self, url: &str) -> (u16, serde_json::Value) {
        let page = self.get(url).await;
        (
            page.status,
            serde_json::from_str(&page.body).unwrap_or(serde_json::Value::Null),
        )
    }

    /// Starts signing in at Hub and logs in at the provider as `login`;
    /// returns Hub's answer to the provider's redirect back (the callback).
    pub async fn sign_in_oidc(&mut self, hub: &str, login: &str, return_to: &str) -> Page {
        let start = self
            .get(&format!("{hub}/auth/oidc/start?return_to={}", encode(return_to)))
            .await;
        assert_eq!(start.status, 302, "start: {}", start.body);
        let callback = self.log_in_at_provider(start.location.as_deref().unwrap(), login).await;
        self.get(&callback).await
    }

    /// Follows the provider's pages from its authorization URL as `login`
    /// would; returns the URL it sends the browser back to (Hub's callback).
    pub async fn log_in_at_provider(&mut self, authorize: &str, login: &str) -> String {
        let mut page = self.get(authorize).await;
        if page.status == 303 && page.location.as_deref().is_some_and(|l| l.contains("/interaction/")) {
            let interaction = page.location.clone().unwrap();
            let form = vec![
                ("login".to_string(), login.to_string()),
                ("password".to_string(), "x".to_string()),
            ];
            let posted = self
                .request(
                    reqwest::Method::POST,
                    &format!("{interaction}/login"),
                    Some(Body::Form(form)),
                    &[],
                )
                .await;
            assert_eq!(posted.status, 303, "login at the provider: {}", posted.body);
            page = self.get(posted.location.as_deref().unwrap()).await;
        }
        assert_eq!(page.status, 303, "the provider's redirect back: {}", page.body);
        page.location.expect("a redirect back to Hub")
    }
}

/// A request body.
pub enum Body {
    Form(Vec<(String, String)>),
    Json(serde_json::Value),
}

/// Percent-encodes a query value.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
