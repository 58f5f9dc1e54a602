//! What can go wrong sending mail, in words an operator can act on, and how
//! the SMTP client's errors map onto them.

use hub_core::net::Forbidden;
use lettre::transport::smtp::Error as SmtpError;
use std::fmt;
use std::time::Duration;

/// A header of the message a caller supplies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    To,
    From,
    Subject,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::To => "recipient",
            Field::From => "sender (`from`)",
            Field::Subject => "subject",
        })
    }
}

/// Why a TLS session with the server was not established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsProblem {
    /// The certificate does not chain to a trusted root (self-signed, or a
    /// private authority).
    UntrustedCertificate,
    /// The certificate is valid, but for another host name.
    WrongName,
    Expired,
    Other(String),
}

impl fmt::Display for TlsProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsProblem::UntrustedCertificate => {
                f.write_str("the server's certificate is not trusted (self-signed or not issued by a public authority)")
            }
            TlsProblem::WrongName => f.write_str("the server's certificate is not valid for this host name"),
            TlsProblem::Expired => f.write_str("the server's certificate has expired"),
            TlsProblem::Other(why) => f.write_str(why),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("the {field} `{value}` is not a valid email address")]
    InvalidAddress { field: Field, value: String },
    #[error("the {0} must not contain line breaks or other control characters")]
    ControlCharacters(Field),
    #[error("the SMTP host `{0}` is not a valid host name or address")]
    InvalidHost(String),
    #[error(
        "SMTP without encryption is only allowed to this machine (localhost, 127.0.0.1, ::1), not to `{0}`: \
         the password and the mail would cross the network in clear; use STARTTLS or TLS"
    )]
    PlainToRemote(String),
    #[error("the SMTP host `{host}` resolves to {why}")]
    Refused { host: String, why: Forbidden },
    #[error("could not resolve the SMTP host `{host}`: {reason}")]
    Resolve { host: String, reason: String },
    #[error("could not connect to the SMTP server: {0}")]
    Connect(String),
    #[error("the SMTP server does not offer STARTTLS, and Hub does not send without encryption")]
    StartTlsUnavailable,
    #[error("TLS with the SMTP server failed: {0}")]
    Tls(TlsProblem),
    #[error("the SMTP server offers no password login (AUTH PLAIN or LOGIN) on this connection")]
    AuthUnavailable,
    #[error("the SMTP server refused the user name or password: {0}")]
    AuthRejected(String),
    #[error("the SMTP server refused the message: {0}")]
    Rejected(String),
    /// The budget for the whole exchange (a single step gets half of it).
    #[error("the SMTP server did not answer in time (connecting and sending may take {} s)", .0.as_secs_f32())]
    Timeout(Duration),
    #[error("no random source for the Message-ID: {0}")]
    Random(String),
    #[error("SMTP failed: {0}")]
    Protocol(String),
}

/// Which step of the conversation an SMTP error came from: the same error
/// kind means different things in each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// TCP, implicit TLS, the greeting, EHLO.
    Connect,
    StartTls,
    Auth,
    /// MAIL FROM, RCPT TO, DATA.
    Send,
}

/// Maps an error of the SMTP client to what it means at `step`; `budget` is
/// the exchange's whole timeout.
pub(crate) fn classify(e: SmtpError, step: Step, budget: Duration) -> MailError {
    if e.is_timeout() {
        return MailError::Timeout(budget);
    }
    if let Some(problem) = tls_problem(&e) {
        return MailError::Tls(problem);
    }
    let answered = e.status().is_some();
    match step {
        Step::Auth if answered => MailError::AuthRejected(e.to_string()),
        _ if answered => MailError::Rejected(e.to_string()),
        Step::Connect => MailError::Connect(e.to_string()),
        Step::StartTls if e.is_tls() => MailError::Tls(TlsProblem::Other(e.to_string())),
        _ => MailError::Protocol(e.to_string()),
    }
}

/// The TLS library's own error, if the chain holds one. It travels inside an
/// `io::Error`, whose `source()` skips the wrapped error, so each I/O error
/// is opened with `get_ref`.
fn tls_problem(e: &SmtpError) -> Option<TlsProblem> {
    use rustls::{CertificateError, Error as TlsError};
    let mut next: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(err) = next {
        let inner = err.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref());
        let tls = err
            .downcast_ref::<TlsError>()
            .or_else(|| inner.and_then(|i| i.downcast_ref::<TlsError>()));
        if let Some(tls) = tls {
            return Some(match tls {
                TlsError::InvalidCertificate(CertificateError::UnknownIssuer) => TlsProblem::UntrustedCertificate,
                TlsError::InvalidCertificate(CertificateError::NotValidForName)
                | TlsError::InvalidCertificate(CertificateError::NotValidForNameContext { .. }) => {
                    TlsProblem::WrongName
                }
                TlsError::InvalidCertificate(CertificateError::Expired)
                | TlsError::InvalidCertificate(CertificateError::ExpiredContext { .. }) => TlsProblem::Expired,
                other => TlsProblem::Other(other.to_string()),
            });
        }
        next = err.source();
    }
    None
}
