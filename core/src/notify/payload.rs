//! What a webhook delivery carries: `{"type", "timestamp", "data"}`, built
//! from the stored event alone, so every attempt of a delivery sends the
//! same bytes. Money is a decimal string of credits, as everywhere in Hub.

use crate::store::EventRow;
use serde_json::{Map, Value};

/// The JSON body of an event's webhook deliveries.
pub fn body(e: &EventRow) -> Vec<u8> {
    let payload = serde_json::json!({
        "type": e.kind,
        "timestamp": crate::time::iso8601(e.created_at),
        "data": data(e),
    });
    serde_json::to_vec(&payload).unwrap_or_default()
}

/// The event's `data`: its detail, with the stored columns named for its type.
pub fn data(e: &EventRow) -> Value {
    let mut data = match &e.detail {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    let mut put = |k: &str, v: Value| {
        if !v.is_null() {
            data.insert(k.to_string(), v);
        }
    };
    put("user_id", e.user_id.clone().into());
    put("balance", e.balance.map(|c| c.to_string()).into());
    put("threshold", e.threshold.map(|c| c.to_string()).into());
    let (amount_name, subject_name) = names(&e.kind);
    put(amount_name, e.amount.map(|c| c.to_string()).into());
    if let Some(name) = subject_name {
        put(name, e.subject.clone().into());
    }
    Value::Object(data)
}

/// What the amount and the subject columns are called in an event's data.
fn names(kind: &str) -> (&'static str, Option<&'static str>) {
    match kind {
        "balance.low" | "balance.exhausted" => ("change", None),
        "credits.granted" => ("credits", Some("reference")),
        "credits.purchased" | "payment.failed" | "payment.refunded" => ("credits", Some("payment_id")),
        "credential.disabled" | "credential.enabled" => ("amount", Some("credential_id")),
        "key.budget_reached" => ("amount", Some("key_id")),
        "model.below_cost" => ("amount", Some("model_id")),
        "webhook.test" => ("amount", Some("webhook_id")),
        _ => ("amount", Some("subject")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Credits;

    fn low() -> EventRow {
        EventRow {
            id: "msg_1".into(),
            kind: "balance.low".into(),
            user_id: Some("usr_1".into()),
            amount: Some(Credits::parse("-0.5").unwrap()),
            balance: Some(Credits::parse("0.75").unwrap()),
            threshold: Some(Credits::parse("1").unwrap()),
            subject: None,
            detail: Some(serde_json::json!({"email": "a@example.com", "name": "Ada"})),
            created_at: 1_700_000_000_123,
        }
    }

    #[test]
    fn money_is_decimal_text_and_the_body_is_stable() {
        let e = low();
        let v: Value = serde_json::from_slice(&body(&e)).unwrap();
        assert_eq!(v["type"], "balance.low");
        assert_eq!(v["timestamp"], "2023-11-14T22:13:20.123Z");
        assert_eq!(v["data"]["balance"], "0.75");
        assert_eq!(v["data"]["threshold"], "1");
        assert_eq!(v["data"]["change"], "-0.5");
        assert_eq!(v["data"]["email"], "a@example.com");
        assert_eq!(body(&e), body(&e.clone()), "every attempt sends the same bytes");
    }
}
