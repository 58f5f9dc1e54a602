//! AIGNE Hub's public surface, so AIGNE framework apps, the AIGNE CLI and the
//! `@aigne/aigne-hub` client work against Hub unchanged: discovery
//! (`/__blocklet__.js`), the v2 AI endpoints, the model catalogue, the status
//! preflight and the caller's credit info. Chat goes through the same pipeline
//! as every other protocol; embeddings and images through the same media calls,
//! with their answers reshaped.

use crate::auth::Caller;
use crate::error::ApiError;
use crate::http::{json, Request, Response, StatusCode};
use crate::hub::Hub;
use crate::kinds::ModelKind;
use crate::protocols::aigne::{parse_framework, parse_legacy, Shape};
use crate::protocols::openai::json_object;
use bytes::Bytes;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// AIGNE Hub's component DID: clients look for it among the mount points.
pub const COMPONENT_DID: &str = "z8ia3xzq2tMq8CRHfaXj1BTYJyYnEcHbqP8cJ";

fn query<'a>(req: &'a Request, key: &str) -> Option<&'a str> {
    req.uri()
        .query()?
        .split('&')
        .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
}

/// `GET /__blocklet__.js[?type=json]`: the Blocklet metadata clients discover the Hub by.
pub async fn blocklet(hub: &Hub, req: &Request) -> Result<Response, ApiError> {
    let snap = hub.snapshot().await?;
    let s = &snap.settings;
    let url = crate::origin::app_url(req, s.app_url.as_deref(), &hub.options().trusted_proxies);
    let (url, derived) = match url {
        crate::origin::AppUrl::Configured(u) => (u, false),
        crate::origin::AppUrl::FromRequest(u) => (u, true),
    };
    let meta = json!({
        "appId": s.app_pid,
        "appPid": s.app_pid,
        "appName": s.app_name,
        "appDescription": "An AI gateway with credit metering",
        "appUrl": url,
        "prefix": "/",
        "groupPrefix": "/",
        "componentMountPoints": [{
            "title": "AIGNE Hub",
            "name": "ai-kit",
            "did": COMPONENT_DID,
            "mountPoint": "/",
            "status": "running",
        }],
    });
    let mut res = if query(req, "type") == Some("json") {
        json(StatusCode::OK, &meta)
    } else {
        let script = format!("window.blocklet = {meta};\n");
        let mut res = http::Response::new(crate::http::Body::Full(Bytes::from(script)));
        res.headers_mut().insert(
            "content-type",
            http::HeaderValue::from_static("application/javascript; charset=utf-8"),
        );
        res
    };
    if derived {
        // The answer depends on these: a shared cache must not serve one host's to another.
        res.headers_mut().insert(
            http::header::VARY,
            http::HeaderValue::from_static("host, x-forwarded-host, x-forwarded-proto"),
        );
    }
    Ok(res)
}

/// The catalogue type of a model row.
fn catalogue_type(kind: ModelKind) -> &'static str {
    match kind {
        ModelKind::Image => "image_generation",
        ModelKind::Embedding => "embedding",
        ModelKind::Video => "video",
        ModelKind::Chat => "chat",
        ModelKind::Transcription => "audio_transcription",
        ModelKind::Speech => "audio_speech",
    }
}

/// `GET /api/ai/models[?type=]` (also `/api/ai-providers/models`): the public
/// catalogue, rates per token as decimal strings.
pub async fn catalogue(hub: &Hub, req: &Request) -> Result<Response, ApiError> {
    let wanted = match query(req, "type") {
        None | Some("") => None,
        Some("chat" | "chatCompletion") => Some(ModelKind::Chat),
        Some("image" | "image_generation" | "imageGeneration") => Some(ModelKind::Image),
        Some("embedding") => Some(ModelKind::Embedding),
        Some("video") => Some(ModelKind::Video),
        Some("audio_transcription" | "transcription") => Some(ModelKind::Transcription),
        Some("audio_speech" | "speech") => Some(ModelKind::Speech),
        Some(other) => {
            return Err(ApiError::invalid_field(
                "type",
                format!("must be chat, image, image_generation, embedding, video, audio_transcription or audio_speech (got `{other}`)"),
            ))
        }
    };
    let snap = hub.snapshot().await?;
    let mut list: Vec<Value> = Vec::new();
    for routes in snap.routes.values() {
        for r in routes {
            if wanted.is_some_and(|w| w != r.model.kind) {
                continue;
            }
            list.push(catalogue_entry(r));
        }
    }
    for alias in snap.aliases.values() {
        // Priced as its first target, which serves it when all is well.
        let Some(r) = crate::gateway::routing::alias_routes(&snap, alias).next() else {
            continue;
        };
        if wanted.is_some_and(|w| w != r.model.kind) {
            continue;
        }
        let mut entry = catalogue_entry(r);
        entry["key"] = json!(alias.name);
        entry["model"] = json!(alias.name);
        // The catalogue is public: the targets and their overrides stay private.
        entry["modelMetadata"] = json!({"alias": true});
        list.push(entry);
    }
    list.sort_by(|a, b| a["key"].as_str().cmp(&b["key"].as_str()));
    Ok(json(StatusCode::OK, &Value::Array(list)))
}

/// One route as AIGNE Hub lists a model.
fn catalogue_entry(r: &crate::config::Route) -> Value {
    let rates = &r.model.rates;
    // Images and video are priced per image and per second, as AIGNE Hub lists them;
    // audio per second (transcription) or per million characters (speech).
    let output = match r.model.kind {
        ModelKind::Image => rates.image.to_string(),
        ModelKind::Video => rates.video.to_string(),
        ModelKind::Transcription | ModelKind::Speech => rates.audio.to_string(),
        ModelKind::Chat | ModelKind::Embedding => rates.output.per_unit_string(),
    };
    json!({
        "key": format!("{}/{}", r.provider.name, r.model.model),
        "model": r.model.model,
        "type": catalogue_type(r.model.kind),
        "provider": r.provider.name,
        "providerId": r.provider.id,
        "providerDisplayName": r.provider.vendor.display_name,
        "input_credits_per_token": rates.input.per_unit_string(),
        "output_credits_per_token": output,
        "modelMetadata": r.model.metadata.clone().unwrap_or_else(|| json!({})),
        "status": {"available": true},
    })
}

/// `GET /api/v2/status[?model=]`: always 200, `{available}` or why not.
pub async fn status(
    hub: &Hub,
    caller: Option<Result<Arc<Caller>, ApiError>>,
    req: &Request,
) -> Result<Response, ApiError> {
    let unavailable = |error: String, code: u16, link: Option<String>| {
        let mut v = json!({"available": false, "error": error, "code": code});
        if let Some(l) = link {
            v["link"] = json!(l);
        }
        Ok(json(StatusCode::OK, &v))
    };
    let snap = hub.snapshot().await?;
    let caller = match caller.transpose() {
        Ok(c) => c,
        Err(e) => return unavailable(e.message, e.status.as_u16(), None),
    };
    if let (Some(c), true) = (&caller, snap.settings.billing_enabled) {
        let free = hub.free_credit(&c.user_id).await?;
        if free.nanos() <= 0 {
            let e = hub.not_enough(&snap.settings, None);
            let link = settings_link(&e);
            return unavailable(e.message, 402, link);
        }
    }
    if snap.providers.is_empty() {
        return unavailable("No provider is enabled on this Hub.".into(), 503, None);
    }
    if let Some(model) = query(req, "model").map(percent_decode).filter(|m| !m.is_empty()) {
        let alias = snap.aliases.get(model.as_str());
        let known = alias.is_some_and(|a| crate::gateway::routing::alias_routes(&snap, a).next().is_some())
            || ModelKind::ALL
                .iter()
                .any(|kind| !snap.resolve(&model, *kind).is_empty());
        if !known {
            return unavailable(format!("The model `{model}` is not available on this Hub."), 404, None);
        }
    }
    Ok(json(StatusCode::OK, &json!({"available": true})))
}

fn settings_link(e: &ApiError) -> Option<String> {
    e.payment.as_ref().and_then(|p| p.link.clone())
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(v) => {
                    out.push(v);
                    i += 3;
                    continue;
                }
                Err(_) => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `GET /api/user/info`: who the caller is and their credit, as the AIGNE CLI shows it.
pub async fn user_info(hub: &Hub, caller: &Caller) -> Result<Response, ApiError> {
    let snap = hub.snapshot().await?;
    let s = &snap.settings;
    let user = hub
        .store()
        .get_user(&caller.user_id)
        .await?
        .map(|u| hub.live_user(u))
        .ok_or_else(|| ApiError::unauthorized("The key's user no longer exists."))?;
    let mut v = json!({
        "user": {"did": user.id, "fullName": user.name, "email": user.email},
        "enableCredit": s.billing_enabled,
        "creditBalance": Value::Null,
        "paymentLink": s.payment_link,
        "currency": {"symbol": s.currency_prefix},
        "profileLink": Value::Null,
    });
    if !s.currency_prefix.is_empty() {
        v["creditPrefix"] = json!(s.currency_prefix);
    }
    if s.billing_enabled {
        let grants = hub.store().grant_count(&user.id).await?;
        v["creditBalance"] = json!({
            "balance": user.balance.saturating_sub(user.held).to_string(),
            "total": user.balance.to_string(),
            "grantCount": grants,
            "pendingCredit": user.held.to_string(),
        });
    }
    Ok(json(StatusCode::OK, &v))
}

/// `POST /api/v2/chat`: the AIGNE framework's chat protocol. A failure
/// before the first byte (auth, credit, validation) is an HTTP status with a
/// JSON body even for a streamed request, as AIGNE Hub answers it: the client
/// sends `Accept: */*` and keeps the error's `type` (`NOT_ENOUGH`) only from a
/// JSON body.
pub async fn chat(hub: &Hub, caller: Arc<Caller>, req: Request, request_id: &str) -> Result<Response, ApiError> {
    let chat = parse_framework(req.body(), None)?;
    crate::gateway::chat::aigne(hub, caller, &req, request_id, chat, Shape::Framework).await
}

/// `POST /api/v2/chat/completions` and `/api/v2/completions`: the legacy schema,
/// in the answer shape the request asks for.
pub async fn completions(hub: &Hub, caller: Arc<Caller>, req: Request, request_id: &str) -> Result<Response, ApiError> {
    let (mut chat, stream) = parse_legacy(req.body(), None)?;
    let shape = if accepts_sse(&req) {
        Shape::LegacySse
    } else if stream {
        Shape::LegacyText
    } else {
        Shape::LegacyJson
    };
    chat.stream = shape != Shape::LegacyJson;
    crate::gateway::chat::aigne(hub, caller, &req, request_id, chat, shape).await
}

pub fn accepts_sse(req: &Request) -> bool {
    crate::http::header(req.headers(), "accept").is_some_and(|a| a.contains("text/event-stream"))
}

/// Runs an OpenAI-shaped media call with a rebuilt body; returns its JSON answer and credits.
async fn media(
    hub: &Hub,
    caller: Arc<Caller>,
    req: &Request,
    request_id: &str,
    body: Value,
    images: bool,
) -> Result<(Value, Value), ApiError> {
    let mut inner = http::Request::new(Bytes::from(serde_json::to_vec(&body).unwrap_or_default()));
    *inner.headers_mut() = req.headers().clone();
    let res = if images {
        crate::gateway::media::images(hub, caller, inner, request_id).await?
    } else {
        crate::gateway::media::embeddings(hub, caller, inner, request_id).await?
    };
    let credits = credits_of(&res);
    let answer = match res.body() {
        crate::http::Body::Full(b) => serde_json::from_slice(b).unwrap_or(Value::Null),
        crate::http::Body::Stream(_) => Value::Null,
    };
    Ok((answer, credits))
}

/// The framework's usage object; `credits` is a JSON number, as its schema types `aigneHubCredits`.
fn usage(credits: Value, prefix: &str, input_tokens: u64) -> Value {
    let mut u = json!({"inputTokens": input_tokens, "outputTokens": 0, "aigneHubCredits": credits});
    if !prefix.is_empty() {
        u["creditPrefix"] = json!(prefix);
    }
    u
}

fn camel_to_openai(body: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in body {
        let key = match k.as_str() {
            "responseFormat" => "response_format",
            other => other,
        };
        out.insert(key.to_string(), v.clone());
    }
    out
}

/// The image URLs (or inline data) of an OpenAI images answer.
fn image_items(answer: &Value) -> Vec<Value> {
    answer["data"].as_array().cloned().unwrap_or_default()
}

/// `POST /api/v2/image/generations`: OpenAI-like, answered as `{images, data, model, usage}`.
pub async fn image_generations(
    hub: &Hub,
    caller: Arc<Caller>,
    req: Request,
    request_id: &str,
) -> Result<Response, ApiError> {
    let body = json_object(req.body())?;
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut openai = camel_to_openai(&body);
    openai.remove("outputFileType");
    let prefix = hub.snapshot().await?.settings.currency_prefix.clone();
    let (answer, credits) = media(hub, caller, &req, request_id, Value::Object(openai), true).await?;
    let images: Vec<Value> = image_items(&answer)
        .into_iter()
        .map(|d| {
            let b64 = d.get("b64_json").cloned().unwrap_or(Value::Null);
            json!({"url": d.get("url").cloned().unwrap_or(Value::Null), "b64_json": b64, "b64Json": b64, "base64": b64})
        })
        .collect();
    Ok(json(
        StatusCode::OK,
        &json!({"images": images, "data": images, "model": model, "usage": usage(credits, &prefix, 0)}),
    ))
}

/// `POST /api/v2/image`: the AIGNE framework's image protocol (`AIGNEHubImageModel`).
pub async fn image(hub: &Hub, caller: Arc<Caller>, req: Request, request_id: &str) -> Result<Response, ApiError> {
    let body = json_object(req.body())?;
    let input = body
        .get("input")
        .and_then(Value::as_object)
        .ok_or_else(|| ApiError::invalid_field("input", "is required and must be an object"))?;
    let model = framework_model(&body, input)?;
    let mut openai = Map::new();
    openai.insert("model".into(), json!(model));
    for (from, to) in [
        ("prompt", "prompt"),
        ("n", "n"),
        ("size", "size"),
        ("quality", "quality"),
        ("style", "style"),
    ] {
        if let Some(v) = input.get(from) {
            openai.insert(to.into(), v.clone());
        }
    }
    let prefix = hub.snapshot().await?.settings.currency_prefix.clone();
    let (answer, credits) = media(hub, caller, &req, request_id, Value::Object(openai), true).await?;
    let images: Vec<Value> = image_items(&answer)
        .into_iter()
        .map(|d| {
            match (
                d.get("url").and_then(Value::as_str),
                d.get("b64_json").and_then(Value::as_str),
            ) {
                (Some(url), _) => json!({"type": "url", "url": url, "mimeType": "image/png"}),
                (None, Some(data)) => json!({"type": "file", "data": data, "mimeType": "image/png"}),
                _ => json!({"type": "url", "url": Value::Null, "mimeType": "image/png"}),
            }
        })
        .collect();
    let route = model.clone();
    Ok(json(
        StatusCode::OK,
        &json!({"images": images, "usage": usage(credits, &prefix, 0), "model": model, "modelWithProvider": route}),
    ))
}

/// The model of a framework call: `model`, else `input.model`, else `input.modelOptions.model`.
fn framework_model(body: &Map<String, Value>, input: &Map<String, Value>) -> Result<String, ApiError> {
    [
        body.get("model"),
        input.get("model"),
        input.get("modelOptions").and_then(|o| o.get("model")),
    ]
    .into_iter()
    .flatten()
    .find_map(|v| v.as_str().filter(|s| !s.is_empty()))
    .map(str::to_string)
    .ok_or_else(|| ApiError::invalid_field("input.modelOptions.model", "is required"))
}

/// The credits a call's answer was billed, as the framework's number.
fn credits_of(res: &Response) -> Value {
    res.headers()
        .get("x-hub-credits")
        .and_then(|v| v.to_str().ok())
        .and_then(|c| crate::Credits::parse(c).ok())
        .map(crate::Credits::to_json_number)
        .unwrap_or(json!(0))
}

/// `POST /api/v2/video`: the AIGNE framework's video protocol
/// (`AIGNEHubVideoModel`): `{input: {prompt, seconds?, size?, modelOptions:
/// {model}}}`, answered once the video is generated, inline, with the seconds
/// generated and the credits billed.
pub async fn video(hub: &Hub, caller: Arc<Caller>, req: Request, request_id: &str) -> Result<Response, ApiError> {
    let body = json_object(req.body())?;
    let input = body
        .get("input")
        .and_then(Value::as_object)
        .ok_or_else(|| ApiError::invalid_field("input", "is required and must be an object"))?;
    let model = framework_model(&body, input)?;
    let prompt = match input.get("prompt") {
        Some(Value::String(p)) if !p.trim().is_empty() => p.clone(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(ApiError::invalid_field("input.prompt", "is required"))
        }
        Some(_) => return Err(ApiError::invalid_field("input.prompt", "must be a string")),
    };
    let size = match input.get("size") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(ApiError::invalid_field("input.size", "must be a string")),
    };
    let ask = crate::providers::video::VideoAsk {
        prompt,
        seconds: crate::gateway::video::seconds_of(input.get("seconds"), "input.seconds")?,
        size,
    };
    let prefix = hub.snapshot().await?.settings.currency_prefix.clone();
    let (video, res) = crate::gateway::video::generate(hub, caller, &req, request_id, model.clone(), ask).await?;
    Ok(json(
        StatusCode::OK,
        &json!({
            "videos": [{"type": "file", "data": video.base64, "mimeType": "video/mp4"}],
            "seconds": video.seconds,
            "usage": usage(credits_of(&res), &prefix, 0),
            "model": model,
            "modelWithProvider": model,
        }),
    ))
}

/// `POST /api/v2/embeddings`: `{input: {input, modelOptions}, model?}`.
pub async fn embeddings(hub: &Hub, caller: Arc<Caller>, req: Request, request_id: &str) -> Result<Response, ApiError> {
    let body = json_object(req.body())?;
    let input = body.get("input");
    // `{input: {input: …}}` (framework), or `{input: "text"}` (the Playground's direct call).
    let (texts, options) = match input {
        Some(Value::Object(i)) => (i.get("input").cloned(), i.get("modelOptions").cloned()),
        Some(v @ (Value::String(_) | Value::Array(_))) => (Some(v.clone()), None),
        _ => (None, None),
    };
    let texts = texts.ok_or_else(|| ApiError::invalid_field("input.input", "is required"))?;
    let model = [body.get("model"), options.as_ref().and_then(|o| o.get("model"))]
        .into_iter()
        .flatten()
        .find_map(|v| v.as_str().filter(|s| !s.is_empty()))
        .ok_or_else(|| ApiError::invalid_field("model", "is required for embeddings"))?
        .to_string();
    let prefix = hub.snapshot().await?.settings.currency_prefix.clone();
    let (answer, credits) = media(
        hub,
        caller,
        &req,
        request_id,
        json!({"model": model, "input": texts}),
        false,
    )
    .await?;
    let embeddings: Vec<Value> = answer["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| d["embedding"].clone())
        .collect();
    let tokens = answer["usage"]["prompt_tokens"].as_u64().unwrap_or(0);
    Ok(json(
        StatusCode::OK,
        &json!({"embeddings": embeddings, "model": model, "modelWithProvider": model, "usage": usage(credits, &prefix, tokens)}),
    ))
}
