//! Where Hub may send provider requests: the one outbound address policy.
//!
//! An admin configures provider base URLs, and the credential test shows
//! them what the provider answered, so a base URL pointing at the host's
//! cloud metadata service would hand its credentials to whoever can create a
//! provider. The decision is made on addresses, not on URL text:
//!
//! - [`OutboundPolicy::check_url`] parses a URL the way the HTTP clients do
//!   (WHATWG rules, the `url` crate reqwest itself uses; the Workers runtime
//!   uses the same standard), so every spelling of an address (hex, octal,
//!   dotless, percent-encoded, full-width) becomes the address it really is;
//!   it runs when a base URL is saved and again before every provider request
//!   on every runtime.
//! - [`OutboundPolicy::check_ip`] classifies one address; the native runtime
//!   also applies it to every address a host name resolves to, at connect
//!   time, so a name (or a DNS answer that changes later) cannot lead there.
//!
//! Loopback and private addresses stay allowed: local models (Ollama) and
//! the test suites live there. `HUB_ALLOW_LINK_LOCAL=1` lifts the refusal
//! for deployments that really serve a model on a link-local address.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is not a place for provider requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    /// 169.254.0.0/16 and fe80::/10, where AWS, GCP, Azure, ECS and others
    /// serve instance metadata and credentials.
    LinkLocal,
    /// A cloud metadata or host-agent address outside link-local space.
    CloudMetadata,
    /// 0.0.0.0/8 and `::`: not a destination; connecting there reaches this host.
    ThisNetwork,
    /// A private network (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7):
    /// refused only for webhook endpoints, which anyone with an admin key may
    /// point anywhere (providers live there, webhook receivers rarely do).
    Private,
}

impl AddressClass {
    fn describe(self) -> &'static str {
        match self {
            AddressClass::LinkLocal => "a link-local address (where cloud metadata services answer)",
            AddressClass::CloudMetadata => "a cloud metadata address",
            AddressClass::ThisNetwork => "an unspecified (\"this network\") address",
            AddressClass::Private => "a private network address",
        }
    }

    /// The switch that allows it.
    fn switch(self) -> &'static str {
        match self {
            AddressClass::Private => "HUB_ALLOW_PRIVATE_WEBHOOKS",
            _ => "HUB_ALLOW_LINK_LOCAL",
        }
    }
}

/// An address the policy refuses, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forbidden {
    pub address: IpAddr,
    pub class: AddressClass,
}

impl fmt::Display for Forbidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is {}; start Hub with {}=1 to allow it",
            self.address,
            self.class.describe(),
            self.class.switch()
        )
    }
}

impl std::error::Error for Forbidden {}

/// Why a provider URL is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlProblem {
    /// Not parseable as a URL at all.
    Malformed(String),
    NotHttp,
    /// Whitespace or control characters, which URL parsers silently drop.
    ControlCharacters,
    /// A backslash, which URL parsers read as `/` and other tools do not.
    Backslash,
    /// `user:password@` before the host: never needed for a provider, and the
    /// classic way to make a URL look like it points elsewhere.
    Userinfo,
    /// The host is a name cloud platforms resolve to their metadata service.
    MetadataName(String),
    Forbidden(Forbidden),
}

impl fmt::Display for UrlProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrlProblem::Malformed(e) => write!(f, "is not a valid URL ({e})"),
            UrlProblem::NotHttp => f.write_str("must be an http(s) URL"),
            UrlProblem::ControlCharacters => f.write_str("must not contain whitespace or control characters"),
            UrlProblem::Backslash => f.write_str("must not contain a backslash"),
            UrlProblem::Userinfo => f.write_str("must not contain a user name or password before the host"),
            UrlProblem::MetadataName(host) => write!(
                f,
                "points at `{host}`, a cloud metadata service name; start Hub with HUB_ALLOW_LINK_LOCAL=1 to allow it"
            ),
            UrlProblem::Forbidden(why) => write!(
                f,
                "points at {}, {}; start Hub with {}=1 to allow it",
                why.address,
                why.class.describe(),
                why.class.switch()
            ),
        }
    }
}

impl std::error::Error for UrlProblem {}

/// Host names that cloud platforms resolve to their metadata service. The
/// connect-time check catches them anyway where Hub resolves names itself;
/// refusing them by name gives a clear error at save time on every runtime.
const METADATA_NAMES: &[&str] = &[
    "metadata",
    "metadata.google.internal",
    "metadata.goog",
    "instance-data",
    "instance-data.ec2.internal",
    "metadata.tencentyun.com",
];

/// The outbound address policy of one Hub instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutboundPolicy {
    /// `HUB_ALLOW_LINK_LOCAL=1`: every address is allowed.
    pub allow_link_local: bool,
    /// Private networks are refused too (webhook endpoints, unless
    /// `HUB_ALLOW_PRIVATE_WEBHOOKS=1`). Loopback stays allowed: a receiver
    /// beside Hub on the same machine.
    pub refuse_private: bool,
}

impl OutboundPolicy {
    pub fn new(allow_link_local: bool) -> Self {
        OutboundPolicy {
            allow_link_local,
            refuse_private: false,
        }
    }

    /// Whether Hub may connect to `ip`.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Forbidden> {
        match classify(ip) {
            Some(class) if !self.allow_link_local => Err(Forbidden { address: ip, class }),
            None if self.refuse_private && is_private(ip) => Err(Forbidden {
                address: ip,
                class: AddressClass::Private,
            }),
            _ => Ok(()),
        }
    }

    /// Parses a provider URL as the HTTP client will and checks where it
    /// points. A host name passes here; its addresses are checked when it is
    /// resolved (see the module documentation).
    pub fn check_url(&self, text: &str) -> Result<url::Url, UrlProblem> {
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(UrlProblem::ControlCharacters);
        }
        if text.contains('\\') {
            return Err(UrlProblem::Backslash);
        }
        let url = url::Url::parse(text).map_err(|e| UrlProblem::Malformed(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(UrlProblem::NotHttp);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlProblem::Userinfo);
        }
        let ip = match url.host() {
            Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
            Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
            Some(url::Host::Domain(name)) => {
                let name = name.trim_end_matches('.');
                if !self.allow_link_local && METADATA_NAMES.contains(&name) {
                    return Err(UrlProblem::MetadataName(name.to_string()));
                }
                return Ok(url);
            }
            None => return Err(UrlProblem::Malformed("no host".into())),
        };
        self.check_ip(ip).map_err(UrlProblem::Forbidden)?;
        Ok(url)
    }
}

/// The class of a forbidden address, or `None` for an allowed one. IPv6
/// forms that carry an IPv4 address (mapped, compatible, NAT64) are judged
/// by the IPv4 address they reach.
pub fn classify(ip: IpAddr) -> Option<AddressClass> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => classify_v4(v4),
            None => classify_v6(v6),
        },
    }
}

/// Whether `ip` is in a private network (RFC 1918, carrier-grade NAT,
/// IPv6 unique local), judged by the IPv4 address an IPv6 form carries.
pub fn is_private(ip: IpAddr) -> bool {
    let v4 = match ip {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(v6) => embedded_v4(v6),
    };
    match (v4, ip) {
        (Some(v4), _) => {
            let [a, b, ..] = v4.octets();
            v4.is_private() || (a == 100 && (64..128).contains(&b))
        }
        (None, IpAddr::V6(v6)) => v6.segments()[0] & 0xfe00 == 0xfc00,
        _ => false,
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<AddressClass> {
    const METADATA: [Ipv4Addr; 3] = [
        Ipv4Addr::new(100, 100, 100, 200), // Alibaba Cloud
        Ipv4Addr::new(192, 0, 0, 192),     // Oracle Cloud (legacy)
        Ipv4Addr::new(168, 63, 129, 16),   // Azure WireServer
    ];
    if ip.is_link_local() {
        Some(AddressClass::LinkLocal)
    } else if METADATA.contains(&ip) {
        Some(AddressClass::CloudMetadata)
    } else if ip.octets()[0] == 0 {
        Some(AddressClass::ThisNetwork)
    } else {
        None
    }
}

fn classify_v6(ip: Ipv6Addr) -> Option<AddressClass> {
    // AWS's IPv6 instance metadata endpoint.
    const AWS_METADATA: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);
    if ip.segments()[0] & 0xffc0 == 0xfe80 {
        Some(AddressClass::LinkLocal)
    } else if ip == AWS_METADATA {
        Some(AddressClass::CloudMetadata)
    } else if ip.is_unspecified() {
        Some(AddressClass::ThisNetwork)
    } else {
        None
    }
}

/// The IPv4 address an IPv6 address leads to, if it embeds one: IPv4-mapped
/// (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`, deprecated but still
/// routed by some stacks) and NAT64 (`64:ff9b::/96`, `64:ff9b:1::/48`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let last32 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let compatible = s[..6].iter().all(|&x| x == 0) && !ip.is_unspecified() && !ip.is_loopback();
    let nat64 = s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1);
    (compatible || nat64).then_some(last32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_destinations_refuse_private_networks_but_not_loopback() {
        let webhooks = OutboundPolicy {
            allow_link_local: false,
            refuse_private: true,
        };
        for url in [
            "http://10.0.0.5/hook",
            "http://172.16.1.1/",
            "http://192.168.1.10:8080/",
            "http://100.64.0.1/",
            "http://[fd12::1]/",
            "http://[::ffff:10.1.2.3]/",
            "http://0x0a000001/",
        ] {
            let problem = webhooks.check_url(url).expect_err(url);
            assert!(
                problem.to_string().contains("HUB_ALLOW_PRIVATE_WEBHOOKS"),
                "{url}: {problem}"
            );
        }
        assert!(webhooks.check_url("http://169.254.169.254/").is_err());
        for url in ["http://127.0.0.1:9/x", "http://[::1]/", "https://hooks.example.com/"] {
            assert!(webhooks.check_url(url).is_ok(), "{url}");
        }
        assert!(
            OutboundPolicy::default().check_url("http://10.0.0.5/").is_ok(),
            "providers may"
        );
    }

    fn refused(url: &str) -> UrlProblem {
        OutboundPolicy::default().check_url(url).expect_err(url)
    }

    #[test]
    fn every_spelling_of_a_metadata_address_is_refused() {
        for url in [
            "http://169.254.169.254/latest/meta-data",
            "http://169.254.169.254:80/",
            "HTTP://169.254.169.254/",
            "http://169.254.169.254./",
            "http://0xa9.0xfe.0xa9.0xfe/",
            "http://0xA9FEA9FE/",
            "http://2852039166/",
            "http://169.254.43518/",
            "http://169.16689662/",
            "http://0251.254.169.254/",
            "http://0251.0376.0251.0376/",
            "http://%31%36%39.254.169.254/",
            "http://169%2E254%2E169%2E254/",
            "http://169\u{3002}254\u{3002}169\u{3002}254/",
            "http://169\u{ff0e}254\u{ff0e}169\u{ff0e}254/",
            "http://\u{ff11}\u{ff16}\u{ff19}.254.169.254/",
            "http://169.254.170.2/v2/credentials",
            "http://[::ffff:169.254.169.254]/",
            "http://[::ffff:a9fe:a9fe]/",
            "http://[::169.254.169.254]/",
            "http://[64:ff9b::169.254.169.254]/",
            "http://[64:ff9b:1::a9fe:a9fe]/",
            "http://[fe80::1]:8080/v1",
            "http://[FE80::a:b]/",
            "https://[fd00:ec2::254]/",
            "http://100.100.100.200/latest/meta-data",
            "http://[::ffff:100.100.100.200]/",
            "http://192.0.0.192/",
            "http://168.63.129.16/",
            "http://0/",
            "http://0.0.0.0:11434/v1",
            "http://[::]/",
        ] {
            match refused(url) {
                UrlProblem::Forbidden(f) => {
                    let msg = UrlProblem::Forbidden(f).to_string();
                    assert!(msg.contains("HUB_ALLOW_LINK_LOCAL=1"), "{url}: {msg}");
                }
                other => panic!("{url}: refused for the wrong reason: {other}"),
            }
        }
    }

    #[test]
    fn misleading_urls_are_refused_whatever_they_point_at() {
        for (url, problem) in [
            ("http://169.254.169.254\\@example.com/", UrlProblem::Backslash),
            ("http://example.com\\@127.0.0.1/", UrlProblem::Backslash),
            ("http://example.com@169.254.169.254/", UrlProblem::Userinfo),
            ("http://user:pw@127.0.0.1:8080/", UrlProblem::Userinfo),
            ("http://169.254.1\t69.254/", UrlProblem::ControlCharacters),
            ("http://api.example.com /v1", UrlProblem::ControlCharacters),
            ("http://api.example.com/v1\n", UrlProblem::ControlCharacters),
            ("ftp://127.0.0.1/", UrlProblem::NotHttp),
            ("file:///etc/passwd", UrlProblem::NotHttp),
        ] {
            assert_eq!(refused(url), problem, "{url}");
            let allowing = OutboundPolicy::new(true);
            assert_eq!(
                allowing.check_url(url).unwrap_err(),
                problem,
                "{url}, even when allowed"
            );
        }
        assert!(matches!(refused("http://"), UrlProblem::Malformed(_)));
        assert!(matches!(refused("not a url"), UrlProblem::ControlCharacters));
        assert!(matches!(refused("api.openai.com/v1"), UrlProblem::Malformed(_)));
    }

    #[test]
    fn metadata_names_are_refused_by_name() {
        for url in [
            "http://metadata.google.internal/computeMetadata/v1",
            "http://METADATA.GOOGLE.INTERNAL./",
            "http://metadata/",
            "http://instance-data.ec2.internal/",
        ] {
            assert!(matches!(refused(url), UrlProblem::MetadataName(_)), "{url}");
        }
    }

    #[test]
    fn providers_loopback_and_private_networks_are_allowed() {
        let policy = OutboundPolicy::default();
        for url in [
            "https://api.openai.com/v1",
            "https://generativelanguage.googleapis.com/v1beta",
            "http://localhost:11434/v1",
            "http://127.0.0.1:11434/v1",
            "http://10.0.0.5/v1",
            "http://192.168.1.20:8000/v1",
            "http://100.64.0.1/v1",
            "http://[::1]:8080/",
            "http://[fd12::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://169.255.0.1/",
            "http://169.253.255.255/",
        ] {
            assert!(policy.check_url(url).is_ok(), "{url}");
        }
    }

    #[test]
    fn the_switch_allows_link_local_and_metadata_addresses() {
        let allowing = OutboundPolicy::new(true);
        for url in [
            "http://169.254.169.254/",
            "http://metadata.google.internal/",
            "http://[fe80::1]/",
            "http://0/",
        ] {
            assert!(allowing.check_url(url).is_ok(), "{url}");
        }
    }

    #[test]
    fn resolved_addresses_are_classified() {
        let policy = OutboundPolicy::default();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        for (addr, class) in [
            ("169.254.169.254", AddressClass::LinkLocal),
            ("169.254.0.1", AddressClass::LinkLocal),
            ("169.254.255.255", AddressClass::LinkLocal),
            ("fe80::1", AddressClass::LinkLocal),
            ("febf:ffff::1", AddressClass::LinkLocal),
            ("::ffff:169.254.170.2", AddressClass::LinkLocal),
            ("64:ff9b::a9fe:a9fe", AddressClass::LinkLocal),
            ("fd00:ec2::254", AddressClass::CloudMetadata),
            ("100.100.100.200", AddressClass::CloudMetadata),
            ("0.1.2.3", AddressClass::ThisNetwork),
            ("::", AddressClass::ThisNetwork),
        ] {
            assert_eq!(
                policy.check_ip(ip(addr)),
                Err(Forbidden {
                    address: ip(addr),
                    class
                }),
                "{addr}"
            );
        }
        for addr in [
            "127.0.0.1",
            "::1",
            "10.1.2.3",
            "fec0::1",
            "fd00:ec2::253",
            "64:ff9b::a01:203",
            "8.8.8.8",
        ] {
            assert_eq!(policy.check_ip(ip(addr)), Ok(()), "{addr}");
        }
    }
}
