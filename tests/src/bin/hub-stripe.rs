//! Stripe as a process, for the admin site's browser test: the Checkout API
//! stand-in of `hub_e2e::stripe` plus a hosted checkout page on loopback in
//! place of Stripe's. `hub-stripe --hub URL` prints
//! `stripe listening on http://API secret_key SK webhook_secret WHSEC` and
//! serves until killed.
//!
//! A session's `url` is `http://PAGE/c/pay/{id}`: a page with **Pay** and
//! **Cancel**. Pay sends the customer to the session's `success_url` and,
//! half a second later (the customer is back before the credits, as with
//! Stripe), delivers `checkout.session.completed` (paid) to `URL`'s webhook,
//! signed by the official `stripe` library; Cancel sends them to its
//! `cancel_url`.

use bytes::Bytes;
use http_body_util::Full;
use hub_e2e::stripe::{self, StripeStandIn};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

/// How long after the customer pays the webhook goes out.
const WEBHOOK_DELAY: Duration = Duration::from_millis(500);

struct Page {
    stripe: StripeStandIn,
    hub: String,
    http: reqwest::Client,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let hub = match args.iter().position(|a| a == "--hub").and_then(|i| args.get(i + 1)) {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => {
            eprintln!("usage: hub-stripe --hub http://127.0.0.1:PORT");
            std::process::exit(2);
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind checkout page");
    let pages = listener.local_addr().expect("page address");
    let stripe = StripeStandIn::start_with_checkout(&format!("http://{pages}/c/pay")).await;
    println!(
        "stripe listening on {} secret_key {} webhook_secret {}",
        stripe.api_base(),
        stripe::SECRET_KEY,
        stripe::WEBHOOK_SECRET
    );
    let page = Arc::new(Page {
        stripe,
        hub,
        http: reqwest::Client::new(),
    });
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let page = page.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| answer(page.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

type Out = hyper::Response<Full<Bytes>>;

fn respond(status: u16, content_type: &str, body: String) -> Out {
    hyper::Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

fn redirect(to: &str) -> Out {
    hyper::Response::builder()
        .status(303)
        .header("location", to)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

async fn answer(page: Arc<Page>, req: hyper::Request<hyper::body::Incoming>) -> Result<Out, Infallible> {
    let path = req.uri().path().to_string();
    let (action, id) = match path.strip_prefix("/c/").and_then(|p| p.split_once('/')) {
        Some((a, id)) => (a.to_string(), id.to_string()),
        None => return Ok(respond(404, "text/plain", "not found".into())),
    };
    let Some(created) = page
        .stripe
        .created()
        .into_iter()
        .find(|c| c.session["id"] == id.as_str())
    else {
        return Ok(respond(404, "text/plain", format!("no checkout session {id}")));
    };
    let session = &created.session;
    let url = |k: &str| session[k].as_str().unwrap_or("/").to_string();
    Ok(match (req.method().as_str(), action.as_str()) {
        ("GET", "pay") => respond(200, "text/html; charset=utf-8", checkout_page(&created)),
        ("POST", "pay") => {
            tokio::spawn(pay_later(page.clone(), created.clone()));
            redirect(&url("success_url"))
        }
        ("GET", "cancel") => redirect(&url("cancel_url")),
        _ => respond(405, "text/plain", "method not allowed".into()),
    })
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The hosted checkout page: what is bought, for how much, and the two ways out.
fn checkout_page(c: &stripe::Created) -> String {
    let id = c.session["id"].as_str().unwrap_or_default();
    let name = c.param("line_items[0][price_data][product_data][name]").unwrap_or("?");
    let amount = c.session["amount_total"].as_i64().unwrap_or(0);
    let currency = c.session["currency"].as_str().unwrap_or("?");
    format!(
        "<!doctype html><title>Checkout (Stripe stand-in)</title>\
         <h1>Pay {name}</h1><p data-testid=\"amount\">{amount} {currency} (minor units)</p>\
         <form method=\"post\" action=\"/c/pay/{id}\"><button type=\"submit\">Pay</button></form>\
         <p><a href=\"/c/cancel/{id}\">Cancel and go back</a></p>",
        name = escape(name),
        currency = escape(currency),
    )
}

/// Delivers the paid session's `checkout.session.completed`, as Stripe would.
async fn pay_later(page: Arc<Page>, created: stripe::Created) {
    tokio::time::sleep(WEBHOOK_DELAY).await;
    let intent = format!("pi_test_{}", hub_e2e::unique().replace('-', ""));
    let object = stripe::completed_session(&created, "paid", &intent);
    let payload = stripe::event(
        &format!("evt_test_{}", hub_e2e::unique().replace('-', "")),
        "checkout.session.completed",
        object,
    );
    let signing = payload.clone();
    let signature = tokio::task::spawn_blocking(move || stripe::sign(&signing, &[stripe::WEBHOOK_SECRET], None))
        .await
        .expect("signing");
    let sent = page
        .http
        .post(format!("{}/api/payments/stripe/webhook", page.hub))
        .header("content-type", "application/json; charset=utf-8")
        .header("stripe-signature", signature)
        .body(payload)
        .send()
        .await;
    match sent {
        Ok(r) => {
            let status = r.status();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            println!("webhook delivered: {status} {body}");
        }
        Err(e) => eprintln!("webhook delivery failed: {e}"),
    }
}
