//! `POST /v1/responses` (OpenAI Responses) on the one call pipeline.
//!
//! To a provider that speaks Responses (OpenAI; see `Vendor::responses`)
//! the caller's body goes as it came but for the model name, and the answer
//! comes back as the provider sent it, billed from the usage in its
//! terminal event. Every other provider gets the request converted through
//! the internal chat model, and its answer is rendered as Responses events
//! (or a Response object). Either way: holds, failover before the first
//! byte, key limits, call log and billing as for chat completions.

use super::chat::{default_max_tokens, output_bound};
use super::failover::Attempt;
use super::pipeline::{self, Exchange, Plan, Whole};
use super::relay::Mode;
use crate::auth::Caller;
use crate::chat::{Chat, Reply};
use crate::codec::{Billed, Meta};
use crate::config::{Route, Settings};
use crate::error::ApiError;
use crate::http::Response;
use crate::kinds::{Endpoint, ModelKind};
use crate::metering::Usage;
use crate::ports::UpstreamRequest;
use crate::protocols::responses::convert::ToolNames;
use crate::protocols::responses::render::{render_reply, Echo, Encoder};
use crate::protocols::responses::{self, tap, ResponsesRequest};
use crate::providers;
use crate::Hub;
use bytes::Bytes;
use std::sync::Arc;

/// Largest non-streamed provider answer Hub will read.
const MAX_UPSTREAM_BODY: usize = 64 * 1024 * 1024;

/// `POST /v1/responses`.
pub async fn create(
    hub: &Hub,
    caller: Arc<Caller>,
    req: crate::http::Request,
    request_id: &str,
) -> Result<Response, ApiError> {
    let parsed = responses::parse(req.body())?;
    let mut exchange = ResponsesExchange {
        plan: Plan {
            endpoint: Endpoint::Responses,
            kind: ModelKind::Chat,
            model: parsed.model.clone(),
            prompt: parsed.prompt,
            stream: parsed.stream,
            answer_limit: MAX_UPSTREAM_BODY,
        },
        echo: Echo::of(&parsed),
        req: parsed,
        converted: None,
    };
    pipeline::run(hub, caller, &req, request_id, &mut exchange).await
}

struct ResponsesExchange {
    plan: Plan,
    req: ResponsesRequest,
    echo: Echo,
    /// The request in the internal model, made once if a provider needs it.
    converted: Option<Result<(Chat, ToolNames), ApiError>>,
}

impl ResponsesExchange {
    /// The provider speaks Responses: the body and the answer pass through.
    fn passthrough(route: &Route) -> bool {
        route.provider.vendor.responses
    }

    fn converted(&mut self) -> Result<&(Chat, ToolNames), ApiError> {
        let req = &self.req;
        self.converted
            .get_or_insert_with(|| req.to_chat())
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The flattened tool names of the converted request (none if not converted).
    fn names(&self) -> ToolNames {
        match &self.converted {
            Some(Ok((_, names))) => names.clone(),
            _ => ToolNames::default(),
        }
    }
}

impl Exchange for ResponsesExchange {
    fn plan(&self) -> &Plan {
        &self.plan
    }

    fn worst_output(&self, route: &Route, settings: &Settings) -> Usage {
        Usage {
            output_tokens: self
                .req
                .max_output_tokens
                .unwrap_or_else(|| default_max_tokens(route, settings)),
            ..Default::default()
        }
    }

    fn output_bound(&self, route: &Route, settings: &Settings) -> Usage {
        let budget = self.req.max_output_tokens;
        Usage {
            output_tokens: output_bound(route, budget, 1, default_max_tokens(route, settings)),
            ..Default::default()
        }
    }

    /// A provider that does not speak Responses must be able to take the
    /// converted request; checked for every candidate before the hold.
    fn check(&mut self, route: &Route) -> Result<(), ApiError> {
        if Self::passthrough(route) {
            return self.req.check_passthrough();
        }
        let (chat, _) = self.converted()?;
        providers::chat_check(chat, route.provider.vendor).map_err(in_responses_terms)
    }

    fn request(&mut self, hub: &Hub, at: &Attempt, settings: &Settings) -> Result<UpstreamRequest, ApiError> {
        let route = at.route;
        let target = at.target(hub, default_max_tokens(route, settings));
        if Self::passthrough(route) {
            return Ok(providers::responses_request(
                self.req.upstream_body(&route.model.model),
                &target,
            ));
        }
        let (chat, _) = self.converted()?;
        providers::chat_request(chat, &target)
    }

    fn read(&self, route: &Route, body: Bytes, meta: &Meta) -> Result<Whole, ApiError> {
        if Self::passthrough(route) {
            let (usage, output_bytes) = tap::whole(&body)?;
            return Ok(Whole::Raw {
                body,
                usage,
                output_bytes,
            });
        }
        let deltas = providers::chat_decode_whole(route.provider.vendor.wire, &body, &meta.call_id)?;
        Ok(Whole::Reply(Reply::from_deltas(deltas)?))
    }

    fn relay(&self, route: &Route, meta: Meta) -> Option<(Mode, &'static str)> {
        let mode = if Self::passthrough(route) {
            Mode::Responses(tap::Tap::default())
        } else {
            let encoder = Encoder::new(&meta, self.echo.clone(), self.names());
            Mode::transcode(
                providers::chat_decoder(route.provider.vendor.wire, &meta.call_id),
                Box::new(encoder),
            )
        };
        Some((mode, "text/event-stream; charset=utf-8"))
    }

    fn render(&self, meta: &Meta, reply: &Reply, billed: &Billed) -> Response {
        let body = render_reply(meta, self.echo.clone(), self.names(), reply, &billed.usage);
        crate::http::json(crate::http::StatusCode::OK, &body)
    }
}

/// A provider's refusal of the converted request, naming the caller's field
/// (`text.format`) instead of its chat counterpart (`response_format`).
fn in_responses_terms(mut e: ApiError) -> ApiError {
    if e.message.contains("`response_format`") {
        e.message = e.message.replace("`response_format`", "`text.format`");
        e.param = Some("text.format".to_string());
    }
    e
}
