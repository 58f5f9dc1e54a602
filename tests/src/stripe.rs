//! A local stand-in for Stripe's API, for the payment tests: it serves
//! `POST /v1/checkout/sessions` on 127.0.0.1, checks each request against
//! Stripe's API reference for that endpoint (form-encoded, `Authorization:
//! Bearer sk_…` with the configured key, required and typed parameters,
//! unknown parameters refused, idempotency keys honoured as Stripe does) and
//! answers like Stripe: a Checkout Session object (`cs_test_…`, `url`,
//! `payment_status: unpaid`, …) or an error in Stripe's shape
//! (`{"error": {"type", "code", "message", "param"}}`). It also builds the
//! events Stripe would send about the sessions it created, and signs them
//! with the official `stripe` npm library (`tests/stripe/sign.mjs`).

use crate::worker::repo_root;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The secret key the stand-in accepts.
pub const SECRET_KEY: &str = "sk_test_51HubStandInKey0000000000000000";

/// A request the stand-in accepted (a session it created).
#[derive(Debug, Clone)]
pub struct Created {
    pub idempotency_key: String,
    /// The form's parameters, decoded, in order.
    pub params: Vec<(String, String)>,
    pub session: Value,
}

impl Created {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// A status and a JSON body, as the stand-in answers.
type Answer = (u16, Value);
/// A request's form parameters, decoded, in order.
type Form = Vec<(String, String)>;

#[derive(Default)]
struct State {
    /// Where a session's `url` points (Stripe's hosted checkout, or a test's page).
    checkout_base: String,
    created: Mutex<Vec<Created>>,
    /// Idempotency key → (the form it came with, the answer given).
    idempotent: Mutex<HashMap<String, (String, Answer)>>,
    /// The next request's answer, instead of a session (a test of Stripe's refusals).
    fail_next: Mutex<Option<Answer>>,
    refused: AtomicU64,
    seq: AtomicU64,
}

struct Stopper(Arc<tokio::sync::Notify>);

impl Drop for Stopper {
    fn drop(&mut self) {
        self.0.notify_one();
    }
}

/// The stand-in; its accept loop stops when the last clone is dropped.
#[derive(Clone)]
pub struct StripeStandIn {
    pub addr: SocketAddr,
    state: Arc<State>,
    _stop: Arc<Stopper>,
}

impl StripeStandIn {
    pub async fn start() -> StripeStandIn {
        StripeStandIn::start_with_checkout("https://checkout.stripe.com/c/pay").await
    }

    /// A stand-in whose sessions send the customer to `checkout_base/{session id}`
    /// (a page a browser test serves on loopback, in place of Stripe's).
    pub async fn start_with_checkout(checkout_base: &str) -> StripeStandIn {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind stripe stand-in");
        let addr = listener.local_addr().expect("stand-in address");
        let state = Arc::new(State {
            checkout_base: checkout_base.trim_end_matches('/').to_string(),
            ..State::default()
        });
        let stop = Arc::new(tokio::sync::Notify::new());
        let (st, sp) = (state.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let st = st.clone();
                        tokio::spawn(async move {
                            let svc = hyper::service::service_fn(move |req| answer(st.clone(), req));
                            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                        });
                    }
                    _ = sp.notified() => return,
                }
            }
        });
        StripeStandIn {
            addr,
            state,
            _stop: Arc::new(Stopper(stop)),
        }
    }

    /// The value of the `stripe_api_base` setting that reaches it.
    pub fn api_base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn created(&self) -> Vec<Created> {
        self.state.created.lock().unwrap().clone()
    }

    /// Requests answered with an error (the checks, or `fail_next`).
    pub fn refused(&self) -> u64 {
        self.state.refused.load(Ordering::SeqCst)
    }

    /// Answers the next request with this status and Stripe error object.
    pub fn fail_next(&self, status: u16, error: Value) {
        *self.state.fail_next.lock().unwrap() = Some((status, json!({ "error": error })));
    }
}

type Out = Full<Bytes>;

fn reply(status: u16, body: &Value) -> hyper::Response<Out> {
    hyper::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("request-id", "req_standin")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

/// Stripe's error object.
fn error(kind: &str, code: Option<&str>, message: String, param: Option<&str>) -> Answer {
    let status = if kind == "authentication_error" { 401 } else { 400 };
    let mut e = json!({"type": kind, "message": message});
    if let Some(c) = code {
        e["code"] = json!(c);
    }
    if let Some(p) = param {
        e["param"] = json!(p);
    }
    (status, json!({ "error": e }))
}

async fn answer(
    state: Arc<State>,
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Out>, Infallible> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (auth, content_type, key) = (
        header("authorization"),
        header("content-type"),
        header("idempotency-key"),
    );
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let raw = req
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let form = String::from_utf8_lossy(&raw).to_string();
    let (status, body) = if method != hyper::Method::POST || path != "/v1/checkout/sessions" {
        error(
            "invalid_request_error",
            None,
            format!("Unrecognized request URL ({method}: {path})."),
            None,
        )
    } else if let Some(failure) = state.fail_next.lock().unwrap().take() {
        failure
    } else {
        match check_request(auth.as_deref(), content_type.as_deref(), key.as_deref(), &form) {
            Err(e) => e,
            Ok((key, params)) => create(&state, key, params, &form),
        }
    };
    if status >= 400 {
        state.refused.fetch_add(1, Ordering::SeqCst);
    }
    Ok(reply(status, &body))
}

/// Everything Stripe checks before looking at the parameters' meaning.
fn check_request(
    auth: Option<&str>,
    content_type: Option<&str>,
    key: Option<&str>,
    form: &str,
) -> Result<(String, Form), Answer> {
    match auth.and_then(|a| a.strip_prefix("Bearer ")) {
        None => return Err(error("invalid_request_error", None, "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').".into(), None).map_status(401)),
        Some(k) if k != SECRET_KEY => {
            let masked = format!("{}****{}", &k[..k.len().min(8)], &k[k.len().saturating_sub(4)..]);
            return Err(error("invalid_request_error", Some("api_key_invalid"), format!("Invalid API Key provided: {masked}"), None).map_status(401));
        }
        Some(_) => {}
    }
    if !content_type.is_some_and(|c| c.starts_with("application/x-www-form-urlencoded")) {
        return Err(error(
            "invalid_request_error",
            None,
            format!("Invalid request: the body must be form-encoded, not {content_type:?}."),
            None,
        ));
    }
    // Hub must make retries safe: Stripe accepts requests without a key, Hub's must carry one.
    let key = match key {
        Some(k) if !k.is_empty() && k.len() <= 255 => k.to_string(),
        _ => {
            return Err(error(
                "idempotency_error",
                None,
                "Hub's requests must carry an Idempotency-Key of 1-255 characters.".into(),
                None,
            ))
        }
    };
    let params: Vec<(String, String)> = url::form_urlencoded::parse(form.as_bytes()).into_owned().collect();
    check_params(&params)?;
    Ok((key, params))
}

trait MapStatus {
    fn map_status(self, status: u16) -> Self;
}

impl MapStatus for Answer {
    fn map_status(self, status: u16) -> Self {
        (status, self.1)
    }
}

/// The parameters of `POST /v1/checkout/sessions` the stand-in knows (a
/// subset of Stripe's; anything else is refused as Stripe refuses an
/// unknown parameter).
const KNOWN: &[&str] = &[
    "mode",
    "line_items",
    "success_url",
    "cancel_url",
    "client_reference_id",
    "customer_email",
    "customer",
    "metadata",
    "payment_intent_data",
    "expires_at",
    "locale",
    "allow_promotion_codes",
];

/// Currencies Stripe charges in, the ones a test may use, with their minimum charge.
const CURRENCIES: &[(&str, i64)] = &[("usd", 50), ("eur", 50), ("gbp", 30), ("jpy", 50)];

fn invalid(message: String, param: &str) -> Answer {
    error("invalid_request_error", Some("parameter_invalid"), message, Some(param))
}

fn missing(param: &str) -> Answer {
    error(
        "invalid_request_error",
        Some("parameter_missing"),
        format!("Missing required param: {param}."),
        Some(param),
    )
}

/// A form parameter's value.
fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

fn check_params(params: &[(String, String)]) -> Result<(), Answer> {
    let get = |k: &str| param(params, k);
    for (name, _) in params {
        let top = name.split('[').next().unwrap_or("");
        if !KNOWN.contains(&top) {
            return Err(error(
                "invalid_request_error",
                Some("parameter_unknown"),
                format!("Received unknown parameter: {name}"),
                Some(name),
            ));
        }
    }
    match get("mode") {
        None => return Err(missing("mode")),
        Some("payment" | "setup" | "subscription") => {}
        Some(m) => {
            return Err(invalid(
                format!("Invalid mode: must be one of payment, setup, or subscription (got {m})"),
                "mode",
            ))
        }
    }
    check_line_item(params)?;
    for url_param in ["success_url", "cancel_url"] {
        match get(url_param) {
            None if url_param == "success_url" => return Err(missing("success_url")),
            Some(u) if !(u.starts_with("https://") || u.starts_with("http://")) || u.len() > 5000 => {
                return Err(invalid("Not a valid URL".into(), url_param))
            }
            _ => {}
        }
    }
    if get("client_reference_id").is_some_and(|c| c.is_empty() || c.len() > 200) {
        return Err(invalid(
            "client_reference_id must be 1-200 characters".into(),
            "client_reference_id",
        ));
    }
    if get("customer_email").is_some_and(|e| !e.contains('@')) {
        return Err(invalid("Invalid email address".into(), "customer_email"));
    }
    check_metadata(params)
}

/// One line item with inline price data, as Hub sends it.
fn check_line_item(params: &[(String, String)]) -> Result<(), Answer> {
    let p = |s: &str| format!("line_items[0][{s}]");
    let get = |k: &str| param(params, k);
    let quantity = get(&p("quantity")).ok_or_else(|| missing(&p("quantity")))?;
    if !quantity.parse::<i64>().is_ok_and(|q| q > 0) {
        return Err(invalid("quantity must be a positive integer".into(), &p("quantity")));
    }
    let currency = get(&p("price_data][currency")).ok_or_else(|| missing(&p("price_data][currency")))?;
    let Some((_, minimum)) = CURRENCIES.iter().find(|(c, _)| *c == currency) else {
        return Err(invalid(
            format!("Invalid currency: {currency}. Stripe currently supports these currencies: usd, eur, gbp, jpy, …"),
            &p("price_data][currency"),
        ));
    };
    let amount = get(&p("price_data][unit_amount")).ok_or_else(|| missing(&p("price_data][unit_amount")))?;
    let amount: i64 = amount
        .parse()
        .ok()
        .filter(|a| (0..=99_999_999).contains(a))
        .ok_or_else(|| invalid(format!("Invalid integer: {amount}"), &p("price_data][unit_amount")))?;
    if amount < *minimum {
        return Err(error(
            "invalid_request_error",
            Some("amount_too_small"),
            format!(
                "The Checkout Session's total amount due must add up to at least {minimum} {currency} minor units."
            ),
            None,
        ));
    }
    match get(&p("price_data][product_data][name")) {
        Some(n) if !n.is_empty() => Ok(()),
        _ => Err(missing(&p("price_data][product_data][name"))),
    }
}

fn check_metadata(params: &[(String, String)]) -> Result<(), Answer> {
    let meta: Vec<(&str, &str)> = params
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("metadata[")?.strip_suffix(']')?, v.as_str())))
        .collect();
    if meta.len() > 50 {
        return Err(invalid("metadata may hold at most 50 keys".into(), "metadata"));
    }
    for (k, v) in meta {
        if k.is_empty() || k.len() > 40 || v.len() > 500 || k.contains('[') {
            return Err(invalid(
                format!("Invalid metadata key or value: {k}"),
                &format!("metadata[{k}]"),
            ));
        }
    }
    Ok(())
}

/// A session for a checked request, or the answer already given to its idempotency key.
fn create(state: &State, key: String, params: Vec<(String, String)>, form: &str) -> Answer {
    let mut seen = state.idempotent.lock().unwrap();
    if let Some((earlier, answer)) = seen.get(&key) {
        if earlier != form {
            return error("idempotency_error", None, format!("Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '{key}' if you meant to execute a different request."), None);
        }
        return answer.clone();
    }
    let n = state.seq.fetch_add(1, Ordering::SeqCst);
    let session = session_object(&params, n, &state.checkout_base);
    state.created.lock().unwrap().push(Created {
        idempotency_key: key.clone(),
        params,
        session: session.clone(),
    });
    seen.insert(key, (form.to_string(), (200, session.clone())));
    (200, session)
}

fn session_object(params: &[(String, String)], n: u64, checkout_base: &str) -> Value {
    let get = |k: &str| params.iter().find(|(name, _)| name == k).map(|(_, v)| v.clone());
    let metadata: Map<String, Value> = params
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("metadata[")?.strip_suffix(']')?.to_string(), json!(v))))
        .collect();
    let amount: i64 = get("line_items[0][price_data][unit_amount]")
        .and_then(|a| a.parse().ok())
        .unwrap_or(0);
    let quantity: i64 = get("line_items[0][quantity]").and_then(|q| q.parse().ok()).unwrap_or(1);
    let id = format!("cs_test_a1StandIn{n:06}{}", crate::unique().replace('-', ""));
    json!({
        "id": id,
        "object": "checkout.session",
        "amount_subtotal": amount * quantity,
        "amount_total": amount * quantity,
        "cancel_url": get("cancel_url"),
        "client_reference_id": get("client_reference_id"),
        "created": now_s(),
        "currency": get("line_items[0][price_data][currency]"),
        "customer": null,
        "customer_email": get("customer_email"),
        "expires_at": now_s() + 86_400,
        "livemode": false,
        "metadata": metadata,
        "mode": get("mode"),
        "payment_intent": null,
        "payment_status": "unpaid",
        "status": "open",
        "success_url": get("success_url"),
        "url": format!("{checkout_base}/{id}"),
    })
}

pub fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A Stripe event around `object`, as Stripe delivers it.
pub fn event(id: &str, kind: &str, object: Value) -> String {
    json!({
        "id": id,
        "object": "event",
        "api_version": "2025-03-31.basil",
        "created": now_s(),
        "data": {"object": object},
        "livemode": false,
        "pending_webhooks": 1,
        "request": {"id": null, "idempotency_key": null},
        "type": kind,
    })
    .to_string()
}

/// The session as `checkout.session.completed` reports it once the
/// customer has gone through the checkout (`paid` or, for an async method
/// such as a bank debit, `unpaid`).
pub fn completed_session(created: &Created, payment_status: &str, payment_intent: &str) -> Value {
    let mut s = created.session.clone();
    s["status"] = json!("complete");
    s["payment_status"] = json!(payment_status);
    s["payment_intent"] = json!(payment_intent);
    s
}

/// A charge of `amount` with `refunded` of it refunded, as `charge.refunded` reports it.
pub fn refunded_charge(payment_intent: &str, amount: i64, refunded: i64, currency: &str) -> Value {
    json!({
        "id": format!("ch_test_{}", crate::unique().replace('-', "")),
        "object": "charge",
        "amount": amount,
        "amount_captured": amount,
        "amount_refunded": refunded,
        "currency": currency,
        "paid": true,
        "payment_intent": payment_intent,
        "refunded": refunded == amount,
        "status": "succeeded",
    })
}

/// The `Stripe-Signature` header for `payload`, made by the official
/// library's `stripe.webhooks.generateTestHeaderString` (one `v1` per
/// secret), at `timestamp` (seconds; now when `None`).
pub fn sign(payload: &str, secrets: &[&str], timestamp: Option<i64>) -> String {
    let dir = repo_root().join("tests/stripe");
    crate::node::ensure_installed(&dir).expect("installing tests/stripe");
    let mut cmd = Command::new("node");
    cmd.arg(dir.join("sign.mjs"))
        .env("STRIPE_PAYLOAD", payload)
        .env("STRIPE_SECRETS", secrets.join(","));
    if let Some(t) = timestamp {
        cmd.env("STRIPE_TIMESTAMP", t.to_string());
    }
    let out = crate::run_bounded(cmd, Duration::from_secs(30), "node tests/stripe/sign.mjs").expect("signing");
    out.lines()
        .find_map(|l| l.strip_prefix("header "))
        .unwrap_or_else(|| panic!("the signer printed no header: {out}"))
        .to_string()
}

/// The webhook signing secret the payment tests configure.
pub const WEBHOOK_SECRET: &str = "whsec_test_HubStandInSigningSecret0001";

/// A customer ready to buy: Stripe configured on `api`'s Hub (pointing at
/// the stand-in), one pack of 100 credits for 20.00 usd, and a user with an
/// email address and a key.
pub struct Shop {
    pub user: String,
    pub key: String,
    pub pack: String,
}

impl Shop {
    pub async fn open(api: &crate::Api, stripe: &StripeStandIn) -> Shop {
        use reqwest::Method;
        api.admin(
            Method::PATCH,
            "/api/admin/settings",
            Some(json!({
                "stripe_secret_key": SECRET_KEY,
                "stripe_webhook_secret": WEBHOOK_SECRET,
                "stripe_api_base": stripe.api_base(),
            })),
        )
        .await;
        let pack = api
            .admin(
                Method::POST,
                "/api/admin/credit-packs",
                Some(json!({"name": "100 credits", "currency": "usd", "unit_amount": 2000, "credits": "100"})),
            )
            .await;
        let name = format!("buyer-{}", crate::unique());
        let u = api
            .admin(
                Method::POST,
                "/api/admin/users",
                Some(json!({"name": name, "email": format!("{name}@example.com")})),
            )
            .await;
        let user = u["id"].as_str().unwrap().to_string();
        let k = api
            .admin(
                Method::POST,
                &format!("/api/admin/users/{user}/keys"),
                Some(json!({"label": "shop"})),
            )
            .await;
        Shop {
            user,
            key: k["key"].as_str().unwrap().to_string(),
            pack: pack["id"].as_str().unwrap().to_string(),
        }
    }

    /// `POST /api/me/checkout` for the pack: its status and answer.
    pub async fn checkout(&self, api: &crate::Api) -> Answer {
        api.call(
            reqwest::Method::POST,
            "/api/me/checkout",
            &self.key,
            Some(json!({"pack_id": self.pack})),
        )
        .await
    }
}

/// Delivers a webhook as Stripe does: the payload as the body, byte for
/// byte, with its `Stripe-Signature`.
pub async fn deliver(api: &crate::Api, payload: &str, signature: &str) -> Answer {
    let resp = api
        .http
        .post(format!("{}/api/payments/stripe/webhook", api.base))
        .header("content-type", "application/json; charset=utf-8")
        .header("stripe-signature", signature)
        .body(payload.to_string())
        .send()
        .await
        .expect("webhook delivery");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}
