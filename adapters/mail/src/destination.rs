//! Where a message may be sent: the SMTP host, checked before anything
//! leaves this machine.
//!
//! - Without encryption (`SmtpSecurity::None`) the password and the mail
//!   travel in clear, so only this machine is allowed: a loopback address,
//!   or `localhost` when every address it resolves to is loopback. Any other
//!   host is refused from its text alone, before a DNS query or a connection.
//! - With TLS, the host's addresses go through Hub's outbound address policy
//!   (`hub_core::net`) like a provider's: a name resolving to a cloud
//!   metadata address leads nowhere. Hub connects to the addresses it
//!   checked, so a second DNS answer cannot differ from the first.

use crate::error::MailError;
use crate::SmtpSecurity;
use hub_core::net::OutboundPolicy;
use std::net::{IpAddr, SocketAddr};

/// The SMTP host as written in the settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Host {
    Ip(IpAddr),
    /// A DNS name (internationalised names in their ASCII form).
    Name(String),
}

impl Host {
    pub(crate) fn parse(text: &str) -> Result<Host, MailError> {
        let invalid = || MailError::InvalidHost(text.to_string());
        if text.is_empty() || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid());
        }
        // `::1` as well as `[::1]`; the URL host parser wants the brackets.
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(Host::Ip(ip));
        }
        match url::Host::parse(text).map_err(|_| invalid())? {
            url::Host::Ipv4(v4) => Ok(Host::Ip(v4.into())),
            url::Host::Ipv6(v6) => Ok(Host::Ip(v6.into())),
            url::Host::Domain(name) => Ok(Host::Name(name.trim_end_matches('.').to_string())),
        }
    }

    /// The name the server's certificate must carry.
    pub(crate) fn tls_name(&self) -> String {
        match self {
            Host::Ip(ip) => ip.to_string(),
            Host::Name(name) => name.clone(),
        }
    }

    /// Refuses plain SMTP to anything but this machine, from the host's text
    /// alone: no DNS query, no connection.
    pub(crate) fn allows(&self, security: SmtpSecurity) -> Result<(), MailError> {
        let local = match self {
            Host::Ip(ip) => is_loopback(*ip),
            Host::Name(name) => name.eq_ignore_ascii_case("localhost"),
        };
        if security == SmtpSecurity::None && !local {
            return Err(MailError::PlainToRemote(self.tls_name()));
        }
        Ok(())
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// The addresses to connect to, after the checks described above.
pub(crate) async fn resolve(
    host: &Host,
    port: u16,
    security: SmtpSecurity,
    policy: OutboundPolicy,
) -> Result<Vec<SocketAddr>, MailError> {
    host.allows(security)?;
    let addrs = match host {
        Host::Ip(ip) => vec![SocketAddr::new(*ip, port)],
        Host::Name(name) => lookup(name, port).await?,
    };
    let plain = security == SmtpSecurity::None;
    for addr in &addrs {
        // `localhost` counts as this machine only if it resolves so.
        if plain && !is_loopback(addr.ip()) {
            return Err(MailError::PlainToRemote(format!("{} ({})", host.tls_name(), addr.ip())));
        }
        let refused = |why| MailError::Refused {
            host: host.tls_name(),
            why,
        };
        policy.check_ip(addr.ip()).map_err(refused)?;
    }
    Ok(addrs)
}

async fn lookup(name: &str, port: u16) -> Result<Vec<SocketAddr>, MailError> {
    let failed = |reason: String| MailError::Resolve {
        host: name.to_string(),
        reason,
    };
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name, port))
        .await
        .map_err(|e| failed(e.to_string()))?
        .collect();
    if addrs.is_empty() {
        return Err(failed("no addresses".into()));
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn hosts_parse_as_addresses_or_names() {
        assert_eq!(Host::parse("127.0.0.1").unwrap(), Host::Ip(Ipv4Addr::LOCALHOST.into()));
        assert_eq!(Host::parse("::1").unwrap(), Host::Ip("::1".parse().unwrap()));
        assert_eq!(Host::parse("[::1]").unwrap(), Host::Ip("::1".parse().unwrap()));
        // Spelled as URL parsers read it, so the check and the connection agree.
        assert_eq!(Host::parse("0x7f.1").unwrap(), Host::Ip(Ipv4Addr::LOCALHOST.into()));
        assert_eq!(
            Host::parse("Smtp.Example.COM.").unwrap(),
            Host::Name("smtp.example.com".into())
        );
        for bad in ["", "smtp example.com", "smtp.example.com\r\n", "a/b", "[::1"] {
            assert!(matches!(Host::parse(bad), Err(MailError::InvalidHost(_))), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn plain_smtp_goes_only_to_this_machine() {
        let policy = OutboundPolicy::default();
        for local in ["127.0.0.1", "127.1.2.3", "::1", "[::ffff:127.0.0.1]", "localhost"] {
            let addrs = resolve(&Host::parse(local).unwrap(), 25, SmtpSecurity::None, policy)
                .await
                .unwrap();
            assert!(
                addrs.iter().all(|a| a.ip().to_canonical().is_loopback()),
                "{local}: {addrs:?}"
            );
        }
        // Refused on the text alone: these never reach a resolver.
        for remote in [
            "10.0.0.5",
            "192.168.1.1",
            "smtp.example.com",
            "localhost.example.com",
            "0.0.0.0",
        ] {
            let refused = resolve(&Host::parse(remote).unwrap(), 25, SmtpSecurity::None, policy).await;
            assert!(matches!(refused, Err(MailError::PlainToRemote(_))), "{remote}");
        }
    }

    #[tokio::test]
    async fn tls_destinations_follow_the_outbound_policy() {
        let policy = OutboundPolicy::default();
        for forbidden in ["169.254.169.254", "[fe80::1]", "0.0.0.0", "[::ffff:169.254.169.254]"] {
            let refused = resolve(&Host::parse(forbidden).unwrap(), 465, SmtpSecurity::Tls, policy).await;
            assert!(matches!(refused, Err(MailError::Refused { .. })), "{forbidden}");
        }
        let metadata = Host::parse("169.254.169.254").unwrap();
        assert!(resolve(&metadata, 465, SmtpSecurity::Tls, OutboundPolicy::new(true))
            .await
            .is_ok());
        let private = Host::parse("10.0.0.5").unwrap();
        assert!(resolve(&private, 587, SmtpSecurity::StartTls, policy).await.is_ok());
    }
}
