//! This Hub's public URL (origin), as callers reached it: announced to AIGNE
//! clients, and the base of sign-in redirects and cookies.

use crate::http::Request;

/// Where this Hub's public URL came from.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AppUrl {
    /// The `app_url` setting.
    Configured(String),
    /// Derived from the request (its Host, or a trusted proxy's forwarded headers).
    FromRequest(String),
}

impl AppUrl {
    pub(crate) fn url(&self) -> &str {
        match self {
            AppUrl::Configured(u) | AppUrl::FromRequest(u) => u,
        }
    }
}

/// The public URL of this Hub: the `app_url` setting; else what a trusted
/// proxy says the request came to (`X-Forwarded-Host`/`-Proto`, believed only
/// from a peer in `trusted_proxies`); else the request's own Host and scheme.
/// A value that is not a plain host[:port] is never reflected.
pub(crate) fn app_url(req: &Request, configured: Option<&str>, trusted: &[ipnet::IpNet]) -> AppUrl {
    if let Some(u) = configured {
        return AppUrl::Configured(u.trim_end_matches('/').to_string());
    }
    let headers = req.headers();
    let forwarded = |name: &str| {
        crate::http::header(headers, name)
            .and_then(|v| v.split(',').next())
            .map(str::trim)
    };
    let from_proxy = req
        .extensions()
        .get::<crate::http::PeerAddr>()
        .is_some_and(|peer| trusted.iter().any(|net| net.contains(&peer.0.to_canonical())));
    let proxied_host = from_proxy.then(|| forwarded("x-forwarded-host")).flatten();
    let host = proxied_host
        .or_else(|| crate::http::header(headers, "host"))
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .filter(|h| is_plain_host(h))
        .unwrap_or("localhost");
    let proxied_scheme = from_proxy.then(|| forwarded("x-forwarded-proto")).flatten();
    let scheme = proxied_scheme
        .or_else(|| req.uri().scheme_str())
        .filter(|s| matches!(*s, "http" | "https"))
        .unwrap_or("http");
    AppUrl::FromRequest(format!("{scheme}://{host}"))
}

/// A host name or address with an optional port, nothing else (no path,
/// credentials, spaces or markup).
fn is_plain_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

#[cfg(test)]
mod tests {
    use super::{app_url, AppUrl};
    use crate::http::PeerAddr;

    fn request(headers: &[(&str, &str)], peer: Option<&str>) -> crate::http::Request {
        let mut req = http::Request::new(bytes::Bytes::new());
        for (k, v) in headers {
            req.headers_mut().insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        if let Some(p) = peer {
            req.extensions_mut().insert(PeerAddr(p.parse().unwrap()));
        }
        req
    }

    fn derived(url: &str) -> AppUrl {
        AppUrl::FromRequest(url.to_string())
    }

    const FORGED: [(&str, &str); 3] = [
        ("host", "hub.example.com"),
        ("x-forwarded-host", "evil.example"),
        ("x-forwarded-proto", "https"),
    ];

    #[test]
    fn the_setting_wins_over_every_header() {
        let req = request(&FORGED, Some("10.0.0.1"));
        let trusted = ["10.0.0.0/8".parse().unwrap()];
        assert_eq!(
            app_url(&req, Some("https://hub.example.org/"), &trusted),
            AppUrl::Configured("https://hub.example.org".into())
        );
    }

    #[test]
    fn forwarded_headers_count_only_from_a_trusted_proxy() {
        let trusted = ["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
        // No proxies configured, an untrusted peer, or no peer known: the Host.
        assert_eq!(
            app_url(&request(&FORGED, Some("10.0.0.1")), None, &[]),
            derived("http://hub.example.com")
        );
        assert_eq!(
            app_url(&request(&FORGED, Some("192.0.2.7")), None, &trusted),
            derived("http://hub.example.com")
        );
        assert_eq!(
            app_url(&request(&FORGED, None), None, &trusted),
            derived("http://hub.example.com")
        );
        // A trusted proxy, also as an IPv4-mapped IPv6 peer; the first of a list.
        assert_eq!(
            app_url(&request(&FORGED, Some("10.1.2.3")), None, &trusted),
            derived("https://evil.example")
        );
        assert_eq!(
            app_url(&request(&FORGED, Some("::ffff:10.1.2.3")), None, &trusted),
            derived("https://evil.example")
        );
        let listed = request(
            &[("host", "a"), ("x-forwarded-host", "b.example, c.example")],
            Some("::1"),
        );
        assert_eq!(app_url(&listed, None, &trusted), derived("http://b.example"));
    }

    #[test]
    fn only_plain_hosts_are_reflected() {
        for bad in ["evil.example/</script>", "a b", "user@evil.example", "\"x\""] {
            let req = request(&[("host", bad)], None);
            assert_eq!(app_url(&req, None, &[]), derived("http://localhost"), "{bad}");
        }
        let req = request(&[("host", "[::1]:8787")], None);
        assert_eq!(app_url(&req, None, &[]), derived("http://[::1]:8787"));
        // A runtime that knows the scheme passes an absolute URI.
        let mut req = request(&[("host", "hub.example.com")], None);
        *req.uri_mut() = "https://hub.example.com/__blocklet__.js".parse().unwrap();
        assert_eq!(app_url(&req, None, &[]), derived("https://hub.example.com"));
        let req = request(&[("host", "h"), ("x-forwarded-proto", "javascript")], Some("10.0.0.1"));
        assert_eq!(
            app_url(&req, None, &["10.0.0.0/8".parse().unwrap()]),
            derived("http://h")
        );
    }
}
