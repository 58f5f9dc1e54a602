//! The mail a customer gets about their own account: a low or exhausted
//! balance, and a receipt for a purchase. Plain text, from the stored event.

use crate::config::Settings;
use crate::ports::Mail;
use crate::store::EventRow;
use serde_json::Value;

/// The mail for an event, or `None` for a type customers get no mail about.
pub(crate) fn compose(settings: &Settings, e: &EventRow, to: &str) -> Option<Mail> {
    let detail = |k: &str| e.detail.as_ref().and_then(|d| d.get(k)).cloned().unwrap_or(Value::Null);
    let name = detail("name").as_str().map(str::to_string).unwrap_or_default();
    let credits = |c: Option<crate::Credits>| format!("{}{}", settings.currency_prefix, c.unwrap_or_default());
    let app = &settings.app_name;
    let (subject, body) = match e.kind.as_str() {
        "balance.low" => (
            format!("Your {app} balance is low"),
            format!(
                "Your balance is {}, below the {} you asked to be told about.",
                credits(e.balance),
                credits(e.threshold)
            ),
        ),
        "balance.exhausted" => (
            format!("Your {app} credits have run out"),
            format!(
                "Your balance is {}: calls that need credits are refused until you add more.",
                credits(e.balance)
            ),
        ),
        "credits.purchased" => (format!("Your {app} receipt"), receipt(&detail, &credits(e.amount), e)),
        _ => return None,
    };
    let greeting = if name.is_empty() {
        "Hello,".to_string()
    } else {
        format!("Hello {name},")
    };
    let more = match (&settings.app_url, &settings.payment_link) {
        (_, Some(link)) if e.kind != "credits.purchased" => format!("\n\nBuy more credits at {link}"),
        (Some(url), _) => format!("\n\n{url}"),
        _ => String::new(),
    };
    Some(Mail {
        to: to.to_string(),
        subject,
        text: format!(
            "{greeting}\n\n{body}{more}\n\nYou can turn these emails off in your account's notification settings.\n"
        ),
        html: None,
    })
}

fn receipt(detail: &dyn Fn(&str) -> Value, credits: &str, e: &EventRow) -> String {
    let pack = detail("pack").as_str().unwrap_or("credits").to_string();
    let currency = detail("currency").as_str().unwrap_or("").to_string();
    let price = detail("price")
        .as_i64()
        .map(|p| money(p, &currency))
        .unwrap_or_default();
    format!(
        "Thank you for your purchase.\n\n  {pack}: {credits} credits\n  Paid: {price}\n  Date: {}\n  Reference: {}",
        crate::time::iso8601(e.created_at),
        e.subject.as_deref().unwrap_or(&e.id)
    )
}

/// Currencies Stripe counts in whole units (no minor unit).
const ZERO_DECIMAL: &[&str] = &[
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf",
];

/// An amount in minor units, as a person reads it: `12.50 USD`, `1200 JPY`.
pub(crate) fn money(minor: i64, currency: &str) -> String {
    let code = currency.to_ascii_uppercase();
    if ZERO_DECIMAL.contains(&currency) {
        return format!("{minor} {code}");
    }
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    format!("{sign}{}.{:02} {code}", abs / 100, abs % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_read_in_their_currency() {
        assert_eq!(money(1250, "usd"), "12.50 USD");
        assert_eq!(money(5, "eur"), "0.05 EUR");
        assert_eq!(money(1200, "jpy"), "1200 JPY");
    }
}
