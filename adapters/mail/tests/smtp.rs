//! hub-mail against a real SMTP server: aiosmtpd 1.4.6 (tests/smtpd.py),
//! from the repository's `.venv-tools` (scripts/install-test-tools), with
//! certificates made by `openssl` for each run.

use hub_e2e::smtpd::Smtpd;
use hub_mail::{send_with, Field, Mail, MailError, Options, SmtpSecurity, SmtpServer, TlsProblem};
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A directory of its own under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "hub-mail-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A private authority and a server certificate it issued for `localhost`
/// (and nothing else), made by openssl.
struct Certificates {
    dir: TempDir,
}

impl Certificates {
    fn new() -> Certificates {
        let dir = TempDir::new();
        // Each command's arguments, split at spaces (none has a space inside).
        let run = |command: &str| {
            let status = Command::new("openssl")
                .args(command.split_whitespace())
                .current_dir(&dir.0)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("run openssl");
            assert!(status.success(), "openssl {command}");
        };
        let key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
        run(&format!(
            "req -x509 {key} -keyout ca.key -out ca.pem -days 2 -subj /CN=hub-test-authority"
        ));
        run(&format!(
            "req {key} -keyout server.key -out server.csr -subj /CN=localhost"
        ));
        let extensions = "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n";
        std::fs::write(dir.0.join("server.ext"), extensions).unwrap();
        run("x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile server.ext");
        Certificates { dir }
    }

    fn server_args(&self) -> [String; 2] {
        let path = |name: &str| self.dir.0.join(name).display().to_string();
        [path("server.pem"), path("server.key")]
    }

    fn trusted(&self) -> Options {
        let ca = std::fs::read(self.dir.0.join("ca.pem")).unwrap();
        Options {
            extra_roots_pem: vec![ca],
            ..Options::default()
        }
    }
}

fn settings(host: &str, port: u16, security: SmtpSecurity) -> SmtpServer {
    SmtpServer {
        host: host.into(),
        port,
        username: None,
        password: None,
        from: "Hub <hub@example.com>".into(),
        security,
    }
}

fn login(mut settings: SmtpServer, user: &str, password: &str) -> SmtpServer {
    settings.username = Some(user.into());
    settings.password = Some(password.into());
    settings
}

fn mail(to: &str) -> Mail {
    Mail {
        to: to.into(),
        subject: "Your sign-in link".into(),
        text: "Open the link.\n".into(),
        html: None,
    }
}

#[tokio::test]
async fn plain_smtp_to_loopback_delivers_envelope_headers_and_body() {
    let server = Smtpd::start(&[]);
    let mut settings = settings("127.0.0.1", server.port, SmtpSecurity::None);
    settings.from = "Hüb Støre <hub@example.com>".into();
    let subject = "Ihr Anmeldelink für Hub — café ✓";
    let text = "Hallo Ada,\n\n.a line that starts with a dot\nGrüße\n";
    let html = "<p>Hallo <b>Ada</b> — Grüße</p>\n";
    let mail = Mail {
        to: "Ada Lovelace <ada@example.org>".into(),
        subject: subject.into(),
        text: text.into(),
        html: Some(html.into()),
    };

    send_with(&settings, &mail, &Options::default()).await.unwrap();

    let got = server.only_message();
    assert_eq!(got["mail_from"], "hub@example.com");
    assert_eq!(got["rcpt_tos"], serde_json::json!(["ada@example.org"]));
    assert_eq!(got["tls"], false);
    assert_eq!(got["subject"], subject);
    assert_eq!(got["from"], "Hüb Støre <hub@example.com>");
    assert_eq!(got["to"], "Ada Lovelace <ada@example.org>");
    assert_eq!(got["text"], text);
    assert_eq!(got["html"], html);
    assert_eq!(got["defects"], serde_json::json!([]));
    assert_eq!(got["date_parses"], true);
    let id = got["message_id"].as_str().unwrap();
    assert!(id.starts_with('<') && id.ends_with("@example.com>"), "{id}");
    // The whole message went over the wire as ASCII (encoded words in the
    // headers, a transfer encoding for the bodies), so a server without
    // 8BITMIME takes it too.
    let raw = got["data"].as_str().unwrap();
    assert!(raw.is_ascii(), "{raw}");
}

#[tokio::test]
async fn auth_plain_succeeds_with_the_password_and_fails_clearly_without() {
    let server = Smtpd::start(&["--auth", "hub:s3cret pass", "--auth-over-plain"]);
    let plain = settings("127.0.0.1", server.port, SmtpSecurity::None);

    let wrong = login(plain.clone(), "hub", "guess");
    match send_with(&wrong, &mail("ada@example.org"), &Options::default()).await {
        Err(e @ MailError::AuthRejected(_)) => {
            let message = e.to_string();
            assert!(
                message.contains("refused the user name or password") && message.contains("535"),
                "{message}"
            );
            assert!(!message.contains("guess"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(server.received().is_empty());

    let right = login(plain, "hub", "s3cret pass");
    send_with(&right, &mail("ada@example.org"), &Options::default())
        .await
        .unwrap();
    assert_eq!(server.only_message()["user"], "hub");
}

#[tokio::test]
async fn starttls_refuses_a_certificate_not_issued_by_a_trusted_authority() {
    let certs = Certificates::new();
    let [cert, key] = certs.server_args();
    let server = Smtpd::start(&["--starttls", &cert, &key]);
    let settings = settings("localhost", server.port, SmtpSecurity::StartTls);

    let refused = send_with(&settings, &mail("ada@example.org"), &Options::default()).await;
    assert!(
        matches!(refused, Err(MailError::Tls(TlsProblem::UntrustedCertificate))),
        "{refused:?}"
    );
    assert!(server.received().is_empty());

    // The same server, its authority trusted: the refusal above was the
    // certificate check and nothing else.
    send_with(&settings, &mail("ada@example.org"), &certs.trusted())
        .await
        .unwrap();
    assert_eq!(server.only_message()["tls"], true);
}

#[tokio::test]
async fn starttls_comes_before_the_password_and_checks_the_host_name() {
    let certs = Certificates::new();
    let [cert, key] = certs.server_args();
    // aiosmtpd offers AUTH only once the session is encrypted.
    let server = Smtpd::start(&["--starttls", &cert, &key, "--auth", "hub:s3cret"]);
    let settings = login(
        settings("localhost", server.port, SmtpSecurity::StartTls),
        "hub",
        "s3cret",
    );

    send_with(&settings, &mail("ada@example.org"), &certs.trusted())
        .await
        .unwrap();
    let got = server.only_message();
    assert_eq!(
        (got["tls"].clone(), got["user"].clone()),
        (Value::Bool(true), Value::from("hub"))
    );

    // The certificate names `localhost`, not `127.0.0.1`.
    let by_address = SmtpServer {
        host: "127.0.0.1".into(),
        ..settings
    };
    let refused = send_with(&by_address, &mail("ada@example.org"), &certs.trusted()).await;
    assert!(
        matches!(refused, Err(MailError::Tls(TlsProblem::WrongName))),
        "{refused:?}"
    );
}

#[tokio::test]
async fn starttls_not_offered_is_not_a_reason_to_send_in_clear() {
    let certs = Certificates::new();
    let server = Smtpd::start(&[]);
    let settings = settings("localhost", server.port, SmtpSecurity::StartTls);

    let refused = send_with(&settings, &mail("ada@example.org"), &certs.trusted()).await;
    assert!(matches!(refused, Err(MailError::StartTlsUnavailable)), "{refused:?}");
    assert!(server.received().is_empty());
}

#[tokio::test]
async fn implicit_tls_verifies_the_certificate_too() {
    let certs = Certificates::new();
    let [cert, key] = certs.server_args();
    let server = Smtpd::start(&["--implicit-tls", &cert, &key]);
    let settings = settings("localhost", server.port, SmtpSecurity::Tls);

    let refused = send_with(&settings, &mail("ada@example.org"), &Options::default()).await;
    assert!(
        matches!(refused, Err(MailError::Tls(TlsProblem::UntrustedCertificate))),
        "{refused:?}"
    );
    assert!(server.received().is_empty());

    send_with(&settings, &mail("ada@example.org"), &certs.trusted())
        .await
        .unwrap();
    assert_eq!(server.only_message()["tls"], true);
}

#[tokio::test]
async fn plain_smtp_to_another_machine_is_refused_before_connecting() {
    for host in ["smtp.example.com", "192.0.2.10", "[2001:db8::1]"] {
        let settings = login(settings(host, 25, SmtpSecurity::None), "hub", "s3cret");
        let started = Instant::now();
        let refused = send_with(&settings, &mail("ada@example.org"), &Options::default()).await;
        match refused {
            Err(e @ MailError::PlainToRemote(_)) => assert!(e.to_string().contains("use STARTTLS or TLS"), "{e}"),
            other => panic!("{host}: {other:?}"),
        }
        // No resolver and no connection: these addresses do not answer, so
        // trying either would take far longer.
        assert!(started.elapsed() < Duration::from_secs(1), "{host}");
    }
}

#[tokio::test]
async fn line_breaks_in_header_values_are_refused_and_nothing_is_sent() {
    let server = Smtpd::start(&[]);
    let settings = settings("127.0.0.1", server.port, SmtpSecurity::None);

    let injected = mail("ada@example.org\r\nBcc: eve@example.net");
    let refused = send_with(&settings, &injected, &Options::default()).await;
    assert!(
        matches!(refused, Err(MailError::ControlCharacters(Field::To))),
        "{refused:?}"
    );

    let injected = Mail {
        subject: "Hi\nBcc: eve@example.net".into(),
        ..mail("ada@example.org")
    };
    let refused = send_with(&settings, &injected, &Options::default()).await;
    assert!(
        matches!(refused, Err(MailError::ControlCharacters(Field::Subject))),
        "{refused:?}"
    );

    let bad = send_with(&settings, &mail("ada.example.org"), &Options::default()).await;
    match bad {
        Err(e @ MailError::InvalidAddress { field: Field::To, .. }) => {
            assert_eq!(
                e.to_string(),
                "the recipient `ada.example.org` is not a valid email address"
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(server.received().is_empty());
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    // Accepts connections and holds them without a greeting.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let _stop = AbortOnDrop(silent);

    let options = Options {
        timeout: Duration::from_millis(500),
        ..Options::default()
    };
    let started = Instant::now();
    let outcome = send_with(
        &settings("127.0.0.1", port, SmtpSecurity::None),
        &mail("ada@example.org"),
        &options,
    )
    .await;
    assert!(matches!(outcome, Err(MailError::Timeout(_))), "{outcome:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
