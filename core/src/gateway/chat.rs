//! Chat calls end to end, for OpenAI (`POST /v1/chat/completions`) and
//! Anthropic (`POST /v1/messages`) callers alike.
//!
//! Validate → resolve candidates → hold credit → try providers in order until
//! one answers with a first byte → relay (streamed or whole, converted to the
//! caller's protocol unless both sides speak OpenAI) → settle in the
//! background. Failover happens only before anything reached the client.

use super::failover::Attempt;
use super::pipeline::{self, Exchange, Plan, Whole};
use super::relay::Mode;
use crate::auth::Caller;
use crate::chat::{Chat, Reply};
use crate::codec::{Billed, Encode, Meta};
use crate::config::{Route, Settings};
use crate::error::ApiError;
use crate::http::Response;
use crate::kinds::{Endpoint, ModelKind};
use crate::metering::estimate::{PromptSize, UNSENT_OUTPUT_BOUND};
use crate::metering::Usage;
use crate::ports::UpstreamRequest;
use crate::protocols::openai::{parse_chat, ChatRequest, ChunkView};
use crate::protocols::{aigne, anthropic, openai};
use crate::providers::anthropic as anthropic_wire;
use crate::providers::{self, Wire};
use crate::Hub;
use bytes::Bytes;
use std::sync::Arc;

/// Largest non-streamed provider answer Hub will read.
const MAX_UPSTREAM_BODY: usize = 64 * 1024 * 1024;

/// A chat request as it came in.
pub(crate) enum Inbound {
    OpenAi(ChatRequest),
    Anthropic(Box<AnthropicIn>),
    /// AIGNE Hub's own protocols, in one of their answer shapes.
    Aigne(Box<Chat>, aigne::Shape),
}

/// An Anthropic caller's Messages request: the internal model for
/// providers that need it converted, and the body and headers an Anthropic
/// provider gets as they were sent.
pub(crate) struct AnthropicIn {
    chat: Chat,
    /// What the internal model cannot carry: refused for other providers.
    unconvertible: Option<ApiError>,
    body: Bytes,
    forwarded: anthropic_wire::Forwarded,
}

impl AnthropicIn {
    pub(crate) fn read(req: &crate::http::Request, endpoint: anthropic::Endpoint) -> Result<AnthropicIn, ApiError> {
        let m = anthropic::parse_messages(req.body(), endpoint)?;
        Ok(AnthropicIn {
            chat: m.chat,
            unconvertible: m.unconvertible,
            body: req.body().clone(),
            forwarded: anthropic_wire::Forwarded::from_headers(req.headers()),
        })
    }

    pub(crate) fn chat(&self) -> &Chat {
        &self.chat
    }

    /// The request in the internal model, unless it holds what only Anthropic takes.
    pub(crate) fn convertible(&self) -> Result<&Chat, ApiError> {
        match &self.unconvertible {
            Some(e) => Err(e.clone()),
            None => Ok(&self.chat),
        }
    }

    /// The caller's body as sent, but for the provider's model name.
    pub(crate) fn upstream_body(&self, provider_model: &str) -> Result<Bytes, ApiError> {
        let model = serde_json::Value::String(provider_model.to_string()).to_string();
        crate::protocols::splice::replace_member(&self.body, "model", &model)
            .ok_or_else(|| ApiError::internal("The request body is not a JSON object."))
    }

    /// The caller's body as sent, to an Anthropic provider's `path`.
    pub(crate) fn passthrough_request(
        &self,
        path: &str,
        target: &providers::Target,
    ) -> Result<UpstreamRequest, ApiError> {
        Ok(providers::anthropic_passthrough_request(
            path,
            self.upstream_body(target.model)?,
            &self.forwarded,
            target,
        ))
    }
}

impl Inbound {
    /// The request in the internal model (an Anthropic request may hold more).
    fn chat(&self) -> Option<&Chat> {
        match self {
            Inbound::OpenAi(_) => None,
            Inbound::Anthropic(a) => Some(&a.chat),
            Inbound::Aigne(c, _) => Some(c),
        }
    }

    fn model(&self) -> &str {
        match (self, self.chat()) {
            (Inbound::OpenAi(r), _) => &r.model,
            (_, chat) => chat.map_or("", |c| c.model.as_str()),
        }
    }

    fn stream(&self) -> bool {
        match (self, self.chat()) {
            (Inbound::OpenAi(r), _) => r.stream,
            (_, chat) => chat.is_some_and(|c| c.stream),
        }
    }

    fn prompt(&self) -> PromptSize {
        match (self, self.chat()) {
            (Inbound::OpenAi(r), _) => r.prompt,
            (_, chat) => chat.map(|c| c.prompt).unwrap_or_default(),
        }
    }

    fn output_budget(&self) -> (Option<u64>, u64) {
        match (self, self.chat()) {
            (Inbound::OpenAi(r), _) => (r.max_tokens, r.n),
            (_, chat) => (chat.and_then(|c| c.max_tokens), 1),
        }
    }

    fn endpoint(&self) -> Endpoint {
        match self {
            Inbound::OpenAi(_) => Endpoint::Chat,
            Inbound::Anthropic(_) => Endpoint::Messages,
            Inbound::Aigne(_, shape) => shape.endpoint(),
        }
    }

    fn encoder(&self, meta: Meta) -> Box<dyn Encode> {
        match self {
            Inbound::OpenAi(r) => Box::new(openai::Encoder::new(
                &meta.call_id,
                &r.model,
                meta.created,
                r.include_usage,
            )),
            Inbound::Anthropic(a) => Box::new(anthropic::Encoder::new(&meta.call_id, &a.chat.model)),
            Inbound::Aigne(c, shape) => shape.encoder(c, meta),
        }
    }

    fn render(&self, meta: &Meta, reply: &Reply, billed: &Billed) -> Response {
        let json_response = |v: serde_json::Value| crate::http::json(crate::http::StatusCode::OK, &v);
        match self {
            Inbound::OpenAi(r) => json_response(openai::render_reply(&meta.call_id, &r.model, meta.created, reply)),
            Inbound::Anthropic(a) => json_response(anthropic::render_reply(&meta.call_id, &a.chat.model, reply)),
            Inbound::Aigne(c, shape) => shape.render(c, meta, reply, billed),
        }
    }

    /// The content type of a streamed answer.
    fn stream_content_type(&self) -> &'static str {
        match self {
            Inbound::Aigne(_, shape) => shape.content_type(),
            _ => "text/event-stream; charset=utf-8",
        }
    }
}

/// `POST /v1/chat/completions`.
pub async fn completions(
    hub: &Hub,
    caller: Arc<Caller>,
    req: crate::http::Request,
    request_id: &str,
) -> Result<Response, ApiError> {
    let chat = parse_chat(req.body())?;
    call(hub, caller, &req, request_id, Inbound::OpenAi(chat)).await
}

/// `POST /v1/messages`.
pub async fn messages(
    hub: &Hub,
    caller: Arc<Caller>,
    req: crate::http::Request,
    request_id: &str,
) -> Result<Response, ApiError> {
    let messages = AnthropicIn::read(&req, anthropic::Endpoint::Create)?;
    call(hub, caller, &req, request_id, Inbound::Anthropic(Box::new(messages))).await
}

/// A parsed request of one of AIGNE Hub's chat endpoints.
pub(crate) async fn aigne(
    hub: &Hub,
    caller: Arc<Caller>,
    req: &crate::http::Request,
    request_id: &str,
    chat: Chat,
    shape: aigne::Shape,
) -> Result<Response, ApiError> {
    call(hub, caller, req, request_id, Inbound::Aigne(Box::new(chat), shape)).await
}

async fn call(
    hub: &Hub,
    caller: Arc<Caller>,
    req: &crate::http::Request,
    request_id: &str,
    inbound: Inbound,
) -> Result<Response, ApiError> {
    let mut exchange = ChatExchange {
        plan: Plan {
            endpoint: inbound.endpoint(),
            kind: ModelKind::Chat,
            model: inbound.model().to_string(),
            prompt: inbound.prompt(),
            stream: inbound.stream(),
            answer_limit: MAX_UPSTREAM_BODY,
        },
        inbound,
        converted: None,
    };
    pipeline::run(hub, caller, req, request_id, &mut exchange).await
}

/// A chat call in whichever protocol it came, sent in whichever protocol
/// each candidate speaks.
struct ChatExchange {
    plan: Plan,
    inbound: Inbound,
    /// An OpenAI request in the internal model, made once if a provider needs it.
    converted: Option<Result<Chat, ApiError>>,
}

impl ChatExchange {
    /// Both sides speak OpenAI, or both Anthropic: the body and the answer
    /// pass through as they are.
    fn passthrough(&self, route: &Route) -> bool {
        match self.inbound {
            Inbound::OpenAi(_) => route.provider.vendor.wire == Wire::OpenAi,
            Inbound::Anthropic(_) => route.provider.vendor.wire == Wire::Anthropic,
            Inbound::Aigne(..) => false,
        }
    }

    fn default_max_tokens(route: &Route, settings: &Settings) -> u64 {
        default_max_tokens(route, settings)
    }
}

/// The output budget Hub sends when the caller set none: the model's, or the default.
pub(super) fn default_max_tokens(route: &Route, settings: &Settings) -> u64 {
    route
        .model
        .max_output_tokens
        .unwrap_or(settings.default_max_output_tokens)
        .max(1) as u64
}

impl Exchange for ChatExchange {
    fn plan(&self) -> &Plan {
        &self.plan
    }

    /// OpenAI and Anthropic callers' answers; AIGNE's carry each call's credits.
    fn cacheable(&self) -> bool {
        matches!(self.inbound, Inbound::OpenAi(_) | Inbound::Anthropic(_))
    }

    fn worst_output(&self, route: &Route, settings: &Settings) -> Usage {
        let (max_tokens, n) = self.inbound.output_budget();
        Usage {
            // At most 128 × 2^32: exact, as is its cost (see MAX_OUTPUT_TOKENS).
            output_tokens: n.saturating_mul(max_tokens.unwrap_or_else(|| Self::default_max_tokens(route, settings))),
            ..Default::default()
        }
    }

    fn output_bound(&self, route: &Route, settings: &Settings) -> Usage {
        let (max_tokens, n) = self.inbound.output_budget();
        Usage {
            output_tokens: output_bound(route, max_tokens, n, Self::default_max_tokens(route, settings)),
            ..Default::default()
        }
    }

    fn request(&mut self, hub: &Hub, at: &Attempt, settings: &Settings) -> Result<UpstreamRequest, ApiError> {
        let route = at.route;
        let target = at.target(hub, Self::default_max_tokens(route, settings));
        let passthrough = self.passthrough(route);
        match &self.inbound {
            Inbound::OpenAi(r) if passthrough => Ok(providers::passthrough_request(
                r.upstream_body(&route.model.model, route.provider.vendor.takes_max_completion_tokens()),
                &target,
            )),
            Inbound::OpenAi(r) => match self.converted.get_or_insert_with(|| r.to_chat()) {
                Ok(chat) => providers::chat_request(chat, &target),
                Err(e) => Err(e.clone()),
            },
            Inbound::Anthropic(a) if passthrough => a.passthrough_request("messages", &target),
            Inbound::Anthropic(a) => providers::chat_request(a.convertible()?, &target),
            Inbound::Aigne(chat, _) => providers::chat_request(chat, &target),
        }
    }

    /// As is when both sides speak OpenAI, else into the internal model.
    fn read(&self, route: &Route, body: Bytes, meta: &Meta) -> Result<Whole, ApiError> {
        if self.passthrough(route) {
            return read_raw(&self.inbound, body);
        }
        let deltas = providers::chat_decode_whole(route.provider.vendor.wire, &body, &meta.call_id)?;
        let reply = Reply::from_deltas(deltas)?;
        if reply.text.is_empty() && reply.tool_calls.is_empty() && reply.finish.is_none() && reply.usage.is_none() {
            return Err(not_json());
        }
        Ok(Whole::Reply(reply))
    }

    fn relay(&self, route: &Route, meta: Meta) -> Option<(Mode, &'static str)> {
        let mode = match &self.inbound {
            Inbound::OpenAi(r) if self.passthrough(route) => Mode::passthrough(!r.include_usage),
            Inbound::Anthropic(_) if self.passthrough(route) => Mode::anthropic_passthrough(),
            _ => Mode::transcode(
                providers::chat_decoder(route.provider.vendor.wire, &meta.call_id),
                self.inbound.encoder(meta),
            ),
        };
        Some((mode, self.inbound.stream_content_type()))
    }

    fn render(&self, meta: &Meta, reply: &Reply, billed: &Billed) -> Response {
        self.inbound.render(meta, reply, billed)
    }
}

/// A whole answer passed through: read for its usage, relayed as it is.
fn read_raw(inbound: &Inbound, body: Bytes) -> Result<Whole, ApiError> {
    let (usage, output_bytes) = match inbound {
        Inbound::Anthropic(_) => anthropic_wire::read_whole(&body)?,
        _ => {
            let view = serde_json::from_slice::<ChunkView>(&body).map_err(|_| not_json())?;
            (view.usage.as_ref().map(|u| u.to_usage()), view.output_bytes())
        }
    };
    Ok(Whole::Raw {
        body,
        usage,
        output_bytes,
    })
}

fn not_json() -> ApiError {
    ApiError::provider("The provider answered with something that is not JSON.")
}

/// The most output tokens a route's answer can hold: the budget sent to the
/// provider (the caller's, or Hub's default where the protocol requires one),
/// else the model's known limit, times `n`.
pub(super) fn output_bound(route: &Route, max_tokens: Option<u64>, n: u64, default_max_tokens: u64) -> u64 {
    let per_answer = max_tokens.unwrap_or_else(|| match route.provider.vendor.wire {
        // Anthropic requires a budget: Hub sends its default.
        Wire::Anthropic => default_max_tokens,
        _ => route
            .model
            .max_output_tokens
            .map_or(UNSENT_OUTPUT_BOUND, |m| m.max(1) as u64),
    });
    n.saturating_mul(per_answer)
}
