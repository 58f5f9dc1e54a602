//! Hub's outgoing mail on native runtimes (`hub serve`, Lambda): one message
//! to one recipient over SMTP.
//!
//! One call is one connection: resolve and check the host (see
//! [`destination`]), connect, encrypt (implicit TLS, or STARTTLS which must
//! be offered: no silent downgrade), log in with AUTH PLAIN or LOGIN when a
//! user name is set, send, quit. Certificates are verified against the
//! webpki roots, the same Mozilla set reqwest uses here. The whole exchange
//! is bounded by [`TIMEOUT`].

mod destination;
mod error;
mod message;

pub use error::{Field, MailError, TlsProblem};
pub use hub_core::net::OutboundPolicy;

use destination::Host;
use error::{classify, Step};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, CertificateStore, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use std::net::SocketAddr;
use std::time::Duration;

/// How long connecting and sending one message may take, all steps together.
pub const TIMEOUT: Duration = Duration::from_secs(20);

pub use hub_core::accounts::settings::SmtpSecurity;
/// What Hub sends, and where to (the settings' SMTP server, password decrypted).
pub use hub_core::ports::{Mail, SmtpServer};

/// Knobs beyond the settings, for the runtime and for tests.
#[derive(Debug, Clone)]
pub struct Options {
    /// Bounds the whole exchange; [`TIMEOUT`] by default.
    pub timeout: Duration,
    /// The instance's outbound address policy (`HUB_ALLOW_LINK_LOCAL`).
    pub policy: OutboundPolicy,
    /// PEM certificates trusted in addition to the webpki roots (a relay
    /// with a private authority; the tests' own authority).
    pub extra_roots_pem: Vec<Vec<u8>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            timeout: TIMEOUT,
            policy: OutboundPolicy::default(),
            extra_roots_pem: Vec::new(),
        }
    }
}

/// Sends `mail` with the default [`Options`].
pub async fn send(settings: &SmtpServer, mail: &Mail) -> Result<(), MailError> {
    send_with(settings, mail, &Options::default()).await
}

/// Sends `mail`. Everything that can be checked without the network (the
/// addresses, the header values, plain SMTP to another machine) is checked
/// before any DNS query or connection.
pub async fn send_with(settings: &SmtpServer, mail: &Mail, options: &Options) -> Result<(), MailError> {
    let prepared = message::prepare(&settings.from, mail)?;
    let host = Host::parse(&settings.host)?;
    host.allows(settings.security)?;
    let tls = tls_parameters(&host, settings.security, options)?;
    let exchange = async {
        let addrs = destination::resolve(&host, settings.port, settings.security, options.policy).await?;
        let mut conn = connect(&addrs, settings.security, tls, options.timeout).await?;
        if let Some(username) = &settings.username {
            let password = settings.password.as_deref().unwrap_or_default();
            authenticate(&mut conn, username, password, options.timeout).await?;
        }
        conn.send(&prepared.envelope, &prepared.bytes)
            .await
            .map_err(|e| classify(e, Step::Send, options.timeout))?;
        // The message is accepted; a server that hangs up instead of saying
        // goodbye does not make it unsent.
        let _ = conn.quit().await;
        Ok(())
    };
    tokio::time::timeout(options.timeout, exchange)
        .await
        .map_err(|_| MailError::Timeout(options.timeout))?
}

/// The TLS configuration for the host, or `None` for plain SMTP.
fn tls_parameters(host: &Host, security: SmtpSecurity, options: &Options) -> Result<Option<TlsParameters>, MailError> {
    if security == SmtpSecurity::None {
        return Ok(None);
    }
    let mut builder = TlsParameters::builder(host.tls_name()).certificate_store(CertificateStore::WebpkiRoots);
    for pem in &options.extra_roots_pem {
        let root = Certificate::from_pem(pem).map_err(|e| MailError::Tls(TlsProblem::Other(e.to_string())))?;
        builder = builder.add_root_certificate(root);
    }
    builder
        .build_rustls()
        .map(Some)
        .map_err(|e| MailError::Tls(TlsProblem::Other(e.to_string())))
}

/// Connects, greets, and encrypts as the settings say.
async fn connect(
    addrs: &[SocketAddr],
    security: SmtpSecurity,
    tls: Option<TlsParameters>,
    total: Duration,
) -> Result<AsyncSmtpConnection, MailError> {
    let hello = ClientId::default();
    let implicit = if security == SmtpSecurity::Tls {
        tls.clone()
    } else {
        None
    };
    // Each connection attempt and each reply may take half the budget, so an
    // address that swallows packets (IPv6 without a route) leaves time for
    // the next one; the clock around the whole exchange still bounds it all.
    let step = Some(total / 2);
    let mut conn = AsyncSmtpConnection::connect_tokio1(addrs, step, &hello, implicit, None)
        .await
        .map_err(|e| classify(e, Step::Connect, total))?;
    if let (SmtpSecurity::StartTls, Some(tls)) = (security, tls) {
        if !conn.can_starttls() {
            return Err(MailError::StartTlsUnavailable);
        }
        conn.starttls(tls, &hello)
            .await
            .map_err(|e| classify(e, Step::StartTls, total))?;
    }
    Ok(conn)
}

async fn authenticate(
    conn: &mut AsyncSmtpConnection,
    username: &str,
    password: &str,
    total: Duration,
) -> Result<(), MailError> {
    const MECHANISMS: [Mechanism; 2] = [Mechanism::Plain, Mechanism::Login];
    if conn.server_info().get_auth_mechanism(&MECHANISMS).is_none() {
        return Err(MailError::AuthUnavailable);
    }
    let credentials = Credentials::new(username.to_string(), password.to_string());
    conn.auth(&MECHANISMS, &credentials)
        .await
        .map(drop)
        .map_err(|e| classify(e, Step::Auth, total))
}

/// Hub's mail port on native runtimes: SMTP under the instance's outbound policy.
pub struct SmtpMailer {
    pub policy: OutboundPolicy,
}

#[async_trait::async_trait]
impl hub_core::ports::Mailer for SmtpMailer {
    async fn send(&self, server: &SmtpServer, mail: &Mail) -> Result<(), hub_core::ports::MailError> {
        let options = Options {
            policy: self.policy,
            ..Options::default()
        };
        send_with(server, mail, &options)
            .await
            .map_err(|e| hub_core::ports::MailError(e.to_string()))
    }
}
