//! Turning a [`Mail`] into the bytes and envelope of one RFC 5322 message.
//!
//! Every header value a caller supplies is checked before the message is
//! built: addresses must parse as mailboxes, and no value may hold a control
//! character, so a line break can never start a header of the caller's
//! choosing (header injection). Non-ASCII subjects and display names are
//! encoded (RFC 2047) by the builder.

use crate::error::{Field, MailError};
use crate::Mail;
use lettre::address::Envelope;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::Message;

/// A message ready for the SMTP `DATA` command.
pub(crate) struct Prepared {
    pub envelope: Envelope,
    pub bytes: Vec<u8>,
}

pub(crate) fn prepare(from: &str, mail: &Mail) -> Result<Prepared, MailError> {
    let from = mailbox(Field::From, from)?;
    let to = mailbox(Field::To, &mail.to)?;
    no_control_characters(Field::Subject, &mail.subject)?;
    let builder = Message::builder()
        .message_id(Some(message_id(from.email.domain())?))
        .date_now()
        .from(from)
        .to(to)
        .subject(mail.subject.clone());
    let built = match &mail.html {
        None => builder.singlepart(SinglePart::plain(mail.text.clone())),
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(mail.text.clone(), html.clone())),
    };
    // Both addresses were checked above, so the builder has nothing left to refuse.
    let message = built.map_err(|e| MailError::Protocol(format!("could not build the message: {e}")))?;
    Ok(Prepared {
        envelope: message.envelope().clone(),
        bytes: message.formatted(),
    })
}

/// One address, bare (`a@example.com`) or with a display name
/// (`Hub <hub@example.com>`).
fn mailbox(field: Field, value: &str) -> Result<Mailbox, MailError> {
    no_control_characters(field, value)?;
    value.trim().parse::<Mailbox>().map_err(|_| MailError::InvalidAddress {
        field,
        value: value.to_string(),
    })
}

/// Refuses CR, LF and every other control character. The address parser
/// would accept a line break as folding white space inside a display name,
/// so this is checked before parsing, not left to it.
fn no_control_characters(field: Field, value: &str) -> Result<(), MailError> {
    if value.chars().any(char::is_control) {
        return Err(MailError::ControlCharacters(field));
    }
    Ok(())
}

/// `<128 random bits in hex@the sender's domain>`: unique without naming the
/// machine Hub runs on.
fn message_id(domain: &str) -> Result<String, MailError> {
    let mut random = [0u8; 16];
    getrandom::fill(&mut random).map_err(|e| MailError::Random(e.to_string()))?;
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("<{hex}@{domain}>"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(to: &str, subject: &str) -> Mail {
        Mail {
            to: to.into(),
            subject: subject.into(),
            text: "hello".into(),
            html: None,
        }
    }

    /// The value of header `name` in the prepared message.
    fn header(prepared: &Prepared, name: &str) -> Option<String> {
        let text = String::from_utf8(prepared.bytes.clone()).unwrap();
        let head = text.split("\r\n\r\n").next().unwrap().to_string();
        head.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(": ").map(str::to_string))
    }

    #[test]
    fn sets_a_fresh_message_id_on_the_senders_domain_and_a_date() {
        let first = prepare("Hub <hub@example.com>", &mail("ada@example.org", "Hi")).unwrap();
        let id = header(&first, "Message-ID").expect("a Message-ID");
        assert!(id.starts_with('<') && id.ends_with("@example.com>"), "{id}");
        assert!(header(&first, "Date").is_some());
        let second = prepare("Hub <hub@example.com>", &mail("ada@example.org", "Hi")).unwrap();
        assert_ne!(Some(id), header(&second, "Message-ID"));
    }

    #[test]
    fn line_breaks_in_any_header_value_are_refused() {
        let injected = "ada@example.org\r\nBcc: eve@example.net";
        assert!(matches!(
            prepare("hub@example.com", &mail(injected, "Hi")),
            Err(MailError::ControlCharacters(Field::To))
        ));
        assert!(matches!(
            prepare("hub@example.com", &mail("ada@example.org", "Hi\nBcc: eve@example.net")),
            Err(MailError::ControlCharacters(Field::Subject))
        ));
        assert!(matches!(
            prepare(
                "\"Hub\r\nBcc: eve@example.net\" <hub@example.com>",
                &mail("ada@example.org", "Hi")
            ),
            Err(MailError::ControlCharacters(Field::From))
        ));
    }

    #[test]
    fn a_bad_address_is_named() {
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.org",
            "ada@@example.org",
            "Ada <ada@example.org",
        ] {
            match prepare("hub@example.com", &mail(bad, "Hi")) {
                Err(MailError::InvalidAddress {
                    field: Field::To,
                    value,
                }) => assert_eq!(value, bad),
                other => panic!("{bad:?}: {:?}", other.map(|_| ())),
            }
        }
        assert!(matches!(
            prepare("Hub", &mail("ada@example.org", "Hi")),
            Err(MailError::InvalidAddress { field: Field::From, .. })
        ));
    }
}
