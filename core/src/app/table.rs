//! The route table: every (method, path pattern) Hub answers, the protocol
//! its callers speak and who may call it. Routing, the 405s and their
//! `Allow`, the protocol of a path, which paths are the API's and the CORS
//! preflight are all read from it, so they cannot disagree.

use crate::accounts;
use crate::admin::{self, me, teams, Revoker, Scope};
use crate::auth::Caller;
use crate::connect;
use crate::error::{ApiError, Protocol};
use crate::gateway;
use crate::http::{json, Method, Request, Response, StatusCode};
use crate::hub::Hub;
use crate::kinds::{AuditAction, AuditResource};
use crate::notify;
use crate::payments;
use serde_json::json;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// Where an audited route finds the id of what it changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The path's `n`th `:name` segment.
    Path(usize),
    /// This field of the answer (a create's new id).
    Answer(&'static str),
    /// The resource has no id (the settings).
    Whole,
}

/// What an admin write changes: recorded in the audit log.
#[derive(Debug, Clone, Copy)]
pub struct Audit {
    pub resource: AuditResource,
    pub action: AuditAction,
    pub target: Target,
}

/// A handler's answer, to be awaited (`Send` natively, where requests move between threads).
#[cfg(not(target_arch = "wasm32"))]
pub type Reply = Pin<Box<dyn Future<Output = Result<Response, ApiError>> + Send>>;
#[cfg(target_arch = "wasm32")]
pub type Reply = Pin<Box<dyn Future<Output = Result<Response, ApiError>>>>;

/// What a handler is given: the request, its id, and the values of the
/// pattern's `:name` segments in order.
pub struct Call {
    pub hub: Hub,
    pub req: Request,
    pub request_id: String,
    params: Vec<String>,
}

impl Call {
    pub fn new(hub: Hub, req: Request, request_id: String, params: Vec<String>) -> Call {
        Call {
            hub,
            req,
            request_id,
            params,
        }
    }

    /// The path segment matched by the pattern's first `:name`.
    pub fn id(&self) -> &str {
        self.param(0)
    }

    /// The same call, handled with another Hub (an audited one, for admin writes).
    pub(crate) fn with_hub(self, hub: Hub) -> Call {
        Call { hub, ..self }
    }

    /// The path segment matched by the pattern's `n`th `:name` (from 0).
    pub fn param(&self, n: usize) -> &str {
        self.params.get(n).map_or("", String::as_str)
    }
}

/// The key a request presented, authenticated: none, or the caller or why not.
pub type Presented = Option<Result<Arc<Caller>, ApiError>>;

/// Who may call a route, and so what its handler is given.
#[derive(Clone, Copy)]
pub enum Handler {
    /// Anyone.
    Public(fn(Call) -> Reply),
    /// A valid key (401 otherwise): the handler gets its caller.
    Key(fn(Call, Arc<Caller>) -> Reply),
    /// An owner or admin key (401, then 403), for reading.
    Admin(fn(Call, Arc<Caller>) -> Reply),
    /// An owner or admin key, for a change: recorded in the audit log (`app/audit.rs`).
    AdminWrite(Audit, fn(Call, Arc<Caller>) -> Reply),
    /// A valid key, for a change the handler authorizes itself (a team
    /// admin's): recorded in the audit log like an admin write.
    KeyWrite(Audit, fn(Call, Arc<Caller>) -> Reply),
    /// The key the request presents, if any, authenticated or not: the
    /// handler decides what a bad one means (AIGNE's status answers 200).
    Optional(fn(Call, Presented) -> Reply),
}

/// The access levels of [`Handler`], ordered from open to closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    Public,
    Optional,
    Key,
    Admin,
}

impl Handler {
    pub fn access(&self) -> Access {
        match self {
            Handler::Public(_) => Access::Public,
            Handler::Optional(_) => Access::Optional,
            Handler::Key(_) | Handler::KeyWrite(..) => Access::Key,
            Handler::Admin(_) | Handler::AdminWrite(..) => Access::Admin,
        }
    }
}

pub struct Route {
    pub method: Method,
    /// Segments separated by `/`; `:name` matches any one segment.
    pub pattern: &'static str,
    pub protocol: Protocol,
    pub handler: Handler,
}

/// A part of the path space: what an unmatched path under it speaks, and
/// who must be authenticated before learning that it does not exist (or
/// which methods it takes).
pub struct Area {
    pub prefix: &'static [&'static str],
    pub protocol: Protocol,
    pub access: Access,
}

pub const AREAS: &[Area] = &[
    area(&["api", "admin"], Protocol::Hub, Access::Admin),
    area(&["api", "me"], Protocol::Hub, Access::Key),
    area(&["api", "teams"], Protocol::Hub, Access::Key),
    area(&["api", "v2"], Protocol::Aigne, Access::Public),
    area(&["api", "ai"], Protocol::Aigne, Access::Public),
    area(&["api", "ai-providers"], Protocol::Aigne, Access::Public),
    area(&["v1"], Protocol::OpenAi, Access::Public),
];

const fn area(prefix: &'static [&'static str], protocol: Protocol, access: Access) -> Area {
    Area {
        prefix,
        protocol,
        access,
    }
}

const fn route(method: Method, pattern: &'static str, protocol: Protocol, handler: Handler) -> Route {
    Route {
        method,
        pattern,
        protocol,
        handler,
    }
}

const fn public(method: Method, pattern: &'static str, f: fn(Call) -> Reply) -> Route {
    route(method, pattern, Protocol::Hub, Handler::Public(f))
}

const fn openai(method: Method, pattern: &'static str, f: fn(Call, Arc<Caller>) -> Reply) -> Route {
    route(method, pattern, Protocol::OpenAi, Handler::Key(f))
}

const fn aigne(method: Method, pattern: &'static str, f: fn(Call, Arc<Caller>) -> Reply) -> Route {
    route(method, pattern, Protocol::Aigne, Handler::Key(f))
}

const fn aigne_public(method: Method, pattern: &'static str, f: fn(Call) -> Reply) -> Route {
    route(method, pattern, Protocol::Aigne, Handler::Public(f))
}

const fn mine(method: Method, pattern: &'static str, f: fn(Call, Arc<Caller>) -> Reply) -> Route {
    route(method, pattern, Protocol::Hub, Handler::Key(f))
}

/// An admin read. A route that changes anything is [`audited`] instead (a test holds every non-GET admin route to it).
const fn admin(method: Method, pattern: &'static str, f: fn(Call, Arc<Caller>) -> Reply) -> Route {
    route(method, pattern, Protocol::Hub, Handler::Admin(f))
}

/// An admin write, with what it changes for the audit log.
const fn audited(method: Method, pattern: &'static str, audit: Audit, f: fn(Call, Arc<Caller>) -> Reply) -> Route {
    route(method, pattern, Protocol::Hub, Handler::AdminWrite(audit, f))
}

/// A team's write, by a key its handler checks (a team admin's or an operator's), audited.
const fn team_write(method: Method, pattern: &'static str, audit: Audit, f: fn(Call, Arc<Caller>) -> Reply) -> Route {
    route(method, pattern, Protocol::Hub, Handler::KeyWrite(audit, f))
}

const fn changes(resource: AuditResource, action: AuditAction, target: Target) -> Audit {
    Audit {
        resource,
        action,
        target,
    }
}

pub static ROUTES: &[Route] = &[
    public(Method::GET, "/healthz", |_| {
        Box::pin(async { Ok(json(StatusCode::OK, &json!({"status": "ok"}))) })
    }),
    public(Method::GET, "/readyz", |c| Box::pin(async move { ready(&c.hub).await })),
    // Its own access check: HUB_METRICS_TOKEN, or an owner or admin key.
    public(Method::GET, "/metrics", |c| {
        Box::pin(async move { c.hub.metrics(&c.req).await })
    }),
    public(Method::GET, "/__blocklet__.js", |c| {
        Box::pin(async move { crate::aigne::blocklet(&c.hub, &c.req).await })
    }),
    // Signing in (browser-facing).
    public(Method::GET, "/auth/methods", |c| {
        Box::pin(async move { accounts::methods(&c.hub).await })
    }),
    public(Method::GET, "/auth/oidc/start", |c| {
        Box::pin(async move { accounts::oidc_start(&c.hub, &c.req).await })
    }),
    public(Method::GET, "/auth/oidc/callback", |c| {
        Box::pin(async move { accounts::oidc_callback(&c.hub, &c.req).await })
    }),
    public(Method::POST, "/auth/email", |c| {
        Box::pin(async move { accounts::email_request(&c.hub, &c.req).await })
    }),
    public(Method::GET, "/auth/email/verify", |c| {
        Box::pin(async move { accounts::email_verify(&c.hub, &c.req).await })
    }),
    public(Method::POST, "/auth/logout", |c| {
        Box::pin(async move { accounts::logout(&c.hub, &c.req).await })
    }),
    // `aigne hub connect`: the CLI's session (the session id is its only credential) and the page it opens.
    public(Method::POST, "/.well-known/service/api/access-key/session", |c| {
        Box::pin(async move { connect::open(&c.hub, &c.req).await })
    }),
    public(Method::GET, "/.well-known/service/api/access-key/session", |c| {
        Box::pin(async move { connect::poll(&c.hub, &c.req).await })
    }),
    public(Method::DELETE, "/.well-known/service/api/access-key/session", |c| {
        Box::pin(async move { connect::end(&c.hub, &c.req).await })
    }),
    public(Method::GET, "/.well-known/service/gen-simple-access-key", |c| {
        Box::pin(async move { connect::page(&c.hub, &c.req).await })
    }),
    // Stripe's webhook: anyone may deliver, only a valid signature is acted on.
    public(Method::POST, "/api/payments/stripe/webhook", |c| {
        Box::pin(async move { payments::stripe_webhook(&c.hub, &c.req).await })
    }),
    // OpenAI and Anthropic.
    openai(Method::POST, "/v1/chat/completions", |c, who| {
        Box::pin(async move { gateway::chat::completions(&c.hub, who, c.req, &c.request_id).await })
    }),
    route(
        Method::POST,
        "/v1/messages",
        Protocol::Anthropic,
        Handler::Key(|c, who| {
            Box::pin(async move { gateway::chat::messages(&c.hub, who, c.req, &c.request_id).await })
        }),
    ),
    openai(Method::POST, "/v1/responses", |c, who| {
        Box::pin(async move { gateway::responses::create(&c.hub, who, c.req, &c.request_id).await })
    }),
    route(
        Method::POST,
        "/v1/messages/count_tokens",
        Protocol::Anthropic,
        Handler::Key(|c, who| Box::pin(async move { gateway::count_tokens::count_tokens(&c.hub, who, c.req).await })),
    ),
    openai(Method::POST, "/v1/embeddings", |c, who| {
        Box::pin(async move { gateway::media::embeddings(&c.hub, who, c.req, &c.request_id).await })
    }),
    openai(Method::POST, "/v1/images/generations", |c, who| {
        Box::pin(async move { gateway::media::images(&c.hub, who, c.req, &c.request_id).await })
    }),
    openai(Method::POST, "/v1/audio/transcriptions", |c, who| {
        Box::pin(async move { gateway::audio::transcriptions(&c.hub, who, c.req, &c.request_id).await })
    }),
    openai(Method::POST, "/v1/audio/translations", |c, who| {
        Box::pin(async move { gateway::audio::translations(&c.hub, who, c.req, &c.request_id).await })
    }),
    openai(Method::POST, "/v1/audio/speech", |c, who| {
        Box::pin(async move { gateway::audio::speech(&c.hub, who, c.req, &c.request_id).await })
    }),
    openai(Method::POST, "/v1/videos", |c, who| {
        Box::pin(async move { gateway::videos::create(&c.hub, who, c.req, &c.request_id).await })
    }),
    openai(Method::GET, "/v1/videos", |c, who| {
        Box::pin(async move { gateway::videos::list(&c.hub, who, &c.req).await })
    }),
    openai(Method::GET, "/v1/videos/:id", |c, who| {
        Box::pin(async move { gateway::videos::retrieve(&c.hub, who, c.id()).await })
    }),
    openai(Method::DELETE, "/v1/videos/:id", |c, who| {
        Box::pin(async move { gateway::videos::delete(&c.hub, who, c.id()).await })
    }),
    openai(Method::GET, "/v1/videos/:id/content", |c, who| {
        Box::pin(async move { gateway::videos::content(&c.hub, who, c.id(), &c.req).await })
    }),
    openai(Method::GET, "/v1/models", |c, who| {
        Box::pin(async move { gateway::models::list(&c.hub, &who).await })
    }),
    // AIGNE Hub.
    aigne_public(Method::GET, "/api/ai/models", |c| {
        Box::pin(async move { crate::aigne::catalogue(&c.hub, &c.req).await })
    }),
    aigne_public(Method::GET, "/api/ai-providers/models", |c| {
        Box::pin(async move { crate::aigne::catalogue(&c.hub, &c.req).await })
    }),
    route(
        Method::GET,
        "/api/v2/status",
        Protocol::Aigne,
        Handler::Optional(|c, who| Box::pin(async move { crate::aigne::status(&c.hub, who, &c.req).await })),
    ),
    aigne(Method::GET, "/api/user/info", |c, who| {
        Box::pin(async move { crate::aigne::user_info(&c.hub, &who).await })
    }),
    aigne(Method::GET, "/api/user/credit/balance", |c, who| {
        Box::pin(async move { crate::aigne_credit::balance(&c.hub, &who).await })
    }),
    aigne(Method::GET, "/api/user/credit/grants", |c, who| {
        Box::pin(async move { crate::aigne_credit::grants(&c.hub, &who, &c.req).await })
    }),
    aigne(Method::GET, "/api/user/credit/transactions", |c, who| {
        Box::pin(async move { crate::aigne_credit::transactions(&c.hub, &who, &c.req).await })
    }),
    aigne(Method::GET, "/api/user/credit/payment-link", |c, _| {
        Box::pin(async move { crate::aigne_credit::payment_link(&c.hub, &c.req).await })
    }),
    aigne(Method::POST, "/api/v2/chat", |c, who| {
        Box::pin(async move { crate::aigne::chat(&c.hub, who, c.req, &c.request_id).await })
    }),
    aigne(Method::POST, "/api/v2/chat/completions", |c, who| {
        Box::pin(async move { crate::aigne::completions(&c.hub, who, c.req, &c.request_id).await })
    }),
    aigne(Method::POST, "/api/v2/completions", |c, who| {
        Box::pin(async move { crate::aigne::completions(&c.hub, who, c.req, &c.request_id).await })
    }),
    aigne(Method::POST, "/api/v2/embeddings", |c, who| {
        Box::pin(async move { crate::aigne::embeddings(&c.hub, who, c.req, &c.request_id).await })
    }),
    aigne(Method::POST, "/api/v2/image", |c, who| {
        Box::pin(async move { crate::aigne::image(&c.hub, who, c.req, &c.request_id).await })
    }),
    aigne(Method::POST, "/api/v2/image/generations", |c, who| {
        Box::pin(async move { crate::aigne::image_generations(&c.hub, who, c.req, &c.request_id).await })
    }),
    aigne(Method::POST, "/api/v2/video", |c, who| {
        Box::pin(async move { crate::aigne::video(&c.hub, who, c.req, &c.request_id).await })
    }),
    // AIGNE Hub's audio routes: the same calls, metered (AIGNE Hub proxies them unmetered).
    aigne(Method::POST, "/api/v2/audio/transcriptions", |c, who| {
        Box::pin(async move { gateway::audio::transcriptions(&c.hub, who, c.req, &c.request_id).await })
    }),
    aigne(Method::POST, "/api/v2/audio/translations", |c, who| {
        Box::pin(async move { gateway::audio::translations(&c.hub, who, c.req, &c.request_id).await })
    }),
    aigne(Method::POST, "/api/v2/audio/speech", |c, who| {
        Box::pin(async move { gateway::audio::speech(&c.hub, who, c.req, &c.request_id).await })
    }),
    // Self-service: any key, for its own user.
    mine(Method::GET, "/api/me", |c, who| {
        Box::pin(async move { me::summary(&c.hub, &c.req, &who).await })
    }),
    mine(Method::GET, "/api/me/sessions", |c, who| {
        Box::pin(async move { accounts::list_sessions(&c.hub, &who).await })
    }),
    mine(Method::DELETE, "/api/me/sessions/:id", |c, who| {
        Box::pin(async move { accounts::revoke_session(&c.hub, &who, c.id()).await })
    }),
    mine(Method::GET, "/api/me/identities", |c, who| {
        Box::pin(async move { accounts::list_identities(&c.hub, &who).await })
    }),
    mine(Method::DELETE, "/api/me/identities/:id", |c, who| {
        Box::pin(async move { accounts::unlink_identity(&c.hub, &who, c.id()).await })
    }),
    mine(Method::GET, "/api/me/usage", |c, who| {
        Box::pin(async move { admin::usage_of(&c.hub, &c.req, Scope::User(&who.user_id)).await })
    }),
    mine(Method::GET, "/api/me/calls", |c, who| {
        Box::pin(async move { admin::calls_of(&c.hub, &c.req, Scope::User(&who.user_id)).await })
    }),
    mine(Method::GET, "/api/me/keys", |c, who| {
        Box::pin(async move { me::keys(&c.hub, &who).await })
    }),
    mine(Method::POST, "/api/me/keys", |c, who| {
        Box::pin(async move { admin::create_key(&c.hub, &who.user_id, &c.req, Some(&who)).await })
    }),
    mine(Method::DELETE, "/api/me/keys/:id", |c, who| {
        Box::pin(async move { admin::revoke_key(&c.hub, c.id(), Revoker::Owner(&who)).await })
    }),
    mine(Method::PATCH, "/api/me/keys/:id", |c, who| {
        Box::pin(async move { admin::patch_key(&c.hub, c.id(), &c.req, Revoker::Owner(&who)).await })
    }),
    mine(Method::GET, "/api/me/credit-packs", |c, _| {
        Box::pin(async move { payments::packs_on_sale(&c.hub).await })
    }),
    mine(Method::POST, "/api/me/checkout", |c, who| {
        Box::pin(async move { payments::checkout(&c.hub, &who, &c.req).await })
    }),
    mine(Method::GET, "/api/me/payments", |c, who| {
        Box::pin(async move { payments::list_payments(&c.hub, &c.req, Some(&who.user_id)).await })
    }),
    mine(Method::GET, "/api/me/ledger", |c, who| {
        Box::pin(async move { admin::ledger(&c.hub, &who.user_id, &c.req).await })
    }),
    mine(Method::GET, "/api/me/credit-buckets", |c, who| {
        Box::pin(async move { admin::credits::buckets(&c.hub, &who.user_id).await })
    }),
    mine(Method::POST, "/api/me/redeem", |c, who| {
        Box::pin(async move { admin::codes::redeem(&c.hub, &who, &c.req).await })
    }),
    mine(Method::GET, "/api/me/connect", |c, _| {
        Box::pin(async move { connect::check(&c.hub, &c.req).await })
    }),
    mine(Method::POST, "/api/me/connect", |c, who| {
        Box::pin(async move { connect::decide(&c.hub, &who, &c.req).await })
    }),
    mine(Method::GET, "/api/me/notifications", |c, who| {
        Box::pin(async move { notify::prefs::get(&c.hub, &who).await })
    }),
    mine(Method::PATCH, "/api/me/notifications", |c, who| {
        Box::pin(async move { notify::prefs::patch(&c.hub, &who, &c.req).await })
    }),
    // The admin API: owner and admin keys.
    admin(Method::GET, "/api/admin/provider-kinds", |_, _| {
        Box::pin(admin::provider_kinds())
    }),
    admin(Method::GET, "/api/admin/providers", |c, _| {
        Box::pin(async move { admin::list_providers(&c.hub).await })
    }),
    audited(
        Method::POST,
        "/api/admin/providers",
        changes(AuditResource::Provider, AuditAction::Create, Target::Answer("id")),
        |c, _| Box::pin(async move { admin::create_provider(&c.hub, &c.req).await }),
    ),
    admin(Method::GET, "/api/admin/providers/:id", |c, _| {
        Box::pin(async move { admin::get_provider(&c.hub, c.id()).await })
    }),
    audited(
        Method::PATCH,
        "/api/admin/providers/:id",
        changes(AuditResource::Provider, AuditAction::Update, Target::Path(0)),
        |c, _| Box::pin(async move { admin::patch_provider(&c.hub, c.id(), &c.req).await }),
    ),
    audited(
        Method::DELETE,
        "/api/admin/providers/:id",
        changes(AuditResource::Provider, AuditAction::Delete, Target::Path(0)),
        |c, _| Box::pin(async move { admin::delete_provider(&c.hub, c.id()).await }),
    ),
    admin(Method::GET, "/api/admin/providers/:id/credentials", |c, _| {
        Box::pin(async move { admin::list_credentials(&c.hub, c.id()).await })
    }),
    audited(
        Method::POST,
        "/api/admin/providers/:id/credentials",
        changes(AuditResource::Credential, AuditAction::Create, Target::Answer("id")),
        |c, _| Box::pin(async move { admin::create_credential(&c.hub, c.id(), &c.req).await }),
    ),
    audited(
        Method::PATCH,
        "/api/admin/credentials/:id",
        changes(AuditResource::Credential, AuditAction::Update, Target::Path(0)),
        |c, _| Box::pin(async move { admin::patch_credential(&c.hub, c.id(), &c.req).await }),
    ),
    audited(
        Method::DELETE,
        "/api/admin/credentials/:id",
        changes(AuditResource::Credential, AuditAction::Delete, Target::Path(0)),
        |c, _| Box::pin(async move { admin::delete_credential(&c.hub, c.id()).await }),
    ),
    audited(
        Method::POST,
        "/api/admin/credentials/:id/test",
        changes(AuditResource::Credential, AuditAction::Test, Target::Path(0)),
        |c, _| Box::pin(async move { admin::test_credential(&c.hub, c.id()).await }),
    ),
    admin(Method::GET, "/api/admin/models", |c, _| {
        Box::pin(async move { admin::list_models(&c.hub, &c.req).await })
    }),
    audited(
        Method::POST,
        "/api/admin/models",
        changes(AuditResource::Model, AuditAction::Create, Target::Answer("id")),
        |c, who| Box::pin(async move { admin::create_model(&c.hub, &who, &c.req).await }),
    ),
    admin(Method::GET, "/api/admin/models/:id", |c, _| {
        Box::pin(async move { admin::get_model(&c.hub, c.id()).await })
    }),
    audited(
        Method::PATCH,
        "/api/admin/models/:id",
        changes(AuditResource::Model, AuditAction::Update, Target::Path(0)),
        |c, who| Box::pin(async move { admin::patch_model(&c.hub, &who, c.id(), &c.req).await }),
    ),
    admin(Method::GET, "/api/admin/models/:id/rate-history", |c, _| {
        Box::pin(async move { admin::rate_history(&c.hub, c.id(), &c.req).await })
    }),
    audited(
        Method::POST,
        "/api/admin/prices/sync",
        changes(AuditResource::Model, AuditAction::Sync, Target::Whole),
        |c, _| Box::pin(async move { admin::sync_prices(&c.hub, &c.req).await }),
    ),
    audited(
        Method::DELETE,
        "/api/admin/models/:id",
        changes(AuditResource::Model, AuditAction::Delete, Target::Path(0)),
        |c, _| Box::pin(async move { admin::delete_model(&c.hub, c.id()).await }),
    ),
    admin(Method::GET, "/api/admin/aliases", |c, _| {
        Box::pin(async move { admin::aliases::list(&c.hub).await })
    }),
    audited(
        Method::POST,
        "/api/admin/aliases",
        changes(AuditResource::Alias, AuditAction::Create, Target::Answer("id")),
        |c, _| Box::pin(async move { admin::aliases::create(&c.hub, &c.req).await }),
    ),
    admin(Method::GET, "/api/admin/aliases/:id", |c, _| {
        Box::pin(async move { admin::aliases::get(&c.hub, c.id()).await })
    }),
    audited(
        Method::PATCH,
        "/api/admin/aliases/:id",
        changes(AuditResource::Alias, AuditAction::Update, Target::Path(0)),
        |c, _| Box::pin(async move { admin::aliases::patch(&c.hub, c.id(), &c.req).await }),
    ),
    audited(
        Method::DELETE,
        "/api/admin/aliases/:id",
        changes(AuditResource::Alias, AuditAction::Delete, Target::Path(0)),
        |c, _| Box::pin(async move { admin::aliases::delete(&c.hub, c.id()).await }),
    ),
    admin(Method::GET, "/api/admin/users", |c, _| {
        Box::pin(async move { admin::list_users(&c.hub, &c.req).await })
    }),
    audited(
        Method::POST,
        "/api/admin/users",
        changes(AuditResource::User, AuditAction::Create, Target::Answer("id")),
        |c, who| Box::pin(async move { admin::create_user(&c.hub, &who, &c.req).await }),
    ),
    admin(Method::GET, "/api/admin/users/:id", |c, _| {
        Box::pin(async move { admin::get_user(&c.hub, c.id()).await })
    }),
    audited(
        Method::PATCH,
        "/api/admin/users/:id",
        changes(AuditResource::User, AuditAction::Update, Target::Path(0)),
        |c, who| Box::pin(async move { admin::patch_user(&c.hub, &who, c.id(), &c.req).await }),
    ),
    admin(Method::GET, "/api/admin/users/:id/keys", |c, _| {
        Box::pin(async move { admin::list_keys(&c.hub, c.id()).await })
    }),
    audited(
        Method::POST,
        "/api/admin/users/:id/keys",
        changes(AuditResource::Key, AuditAction::Create, Target::Answer("id")),
        |c, who| Box::pin(async move { admin::create_key_for(&c.hub, &who, c.id(), &c.req).await }),
    ),
    audited(
        Method::DELETE,
        "/api/admin/keys/:id",
        changes(AuditResource::Key, AuditAction::Revoke, Target::Path(0)),
        |c, who| Box::pin(async move { admin::revoke_key(&c.hub, c.id(), Revoker::Admin(&who)).await }),
    ),
    audited(
        Method::PATCH,
        "/api/admin/keys/:id",
        changes(AuditResource::Key, AuditAction::Update, Target::Path(0)),
        |c, who| Box::pin(async move { admin::patch_key(&c.hub, c.id(), &c.req, Revoker::Admin(&who)).await }),
    ),
    audited(
        Method::POST,
        "/api/admin/users/:id/grants",
        changes(AuditResource::User, AuditAction::Grant, Target::Path(0)),
        |c, who| Box::pin(async move { admin::grant(&c.hub, &who, c.id(), &c.req).await }),
    ),
    admin(Method::GET, "/api/admin/users/:id/ledger", |c, _| {
        Box::pin(async move { admin::ledger(&c.hub, c.id(), &c.req).await })
    }),
    admin(Method::GET, "/api/admin/users/:id/credit-buckets", |c, _| {
        Box::pin(async move { admin::credits::buckets(&c.hub, c.id()).await })
    }),
    admin(Method::GET, "/api/admin/redemption-codes", |c, _| {
        Box::pin(async move { admin::codes::list(&c.hub, &c.req).await })
    }),
    audited(
        Method::POST,
        "/api/admin/redemption-codes",
        changes(
            AuditResource::RedemptionCodes,
            AuditAction::Mint,
            Target::Answer("batch_id"),
        ),
        |c, who| Box::pin(async move { admin::codes::mint(&c.hub, &who, &c.req).await }),
    ),
    audited(
        Method::DELETE,
        "/api/admin/redemption-codes/:id",
        changes(AuditResource::RedemptionCodes, AuditAction::Disable, Target::Path(0)),
        |c, _| Box::pin(async move { admin::codes::disable(&c.hub, c.id()).await }),
    ),
    admin(Method::GET, "/api/admin/calls", |c, _| {
        Box::pin(async move { admin::calls_of(&c.hub, &c.req, Scope::All).await })
    }),
    admin(Method::GET, "/api/admin/usage", |c, _| {
        Box::pin(async move { admin::usage_of(&c.hub, &c.req, Scope::All).await })
    }),
    audited(
        Method::POST,
        "/api/admin/teams",
        changes(AuditResource::Team, AuditAction::Create, Target::Answer("id")),
        |c, _| Box::pin(async move { teams::create(&c.hub, &c.req).await }),
    ),
    audited(
        Method::PATCH,
        "/api/admin/teams/:id",
        changes(AuditResource::Team, AuditAction::Update, Target::Path(0)),
        |c, _| Box::pin(async move { teams::patch(&c.hub, c.id(), &c.req).await }),
    ),
    audited(
        Method::DELETE,
        "/api/admin/teams/:id",
        changes(AuditResource::Team, AuditAction::Delete, Target::Path(0)),
        |c, _| Box::pin(async move { teams::delete(&c.hub, c.id()).await }),
    ),
    // Teams, for their members: a team admin (or an operator) manages its members and keys.
    mine(Method::GET, "/api/teams", |c, who| {
        Box::pin(async move { teams::list(&c.hub, &who).await })
    }),
    mine(Method::GET, "/api/teams/:id", |c, who| {
        Box::pin(async move { teams::get(&c.hub, &who, c.id()).await })
    }),
    team_write(
        Method::POST,
        "/api/teams/:id/members",
        changes(AuditResource::Team, AuditAction::AddMember, Target::Path(0)),
        |c, who| Box::pin(async move { teams::add_member(&c.hub, &who, c.id(), &c.req).await }),
    ),
    team_write(
        Method::PATCH,
        "/api/teams/:id/members/:user",
        changes(AuditResource::Team, AuditAction::Update, Target::Path(0)),
        |c, who| Box::pin(async move { teams::patch_member(&c.hub, &who, c.id(), c.param(1), &c.req).await }),
    ),
    team_write(
        Method::DELETE,
        "/api/teams/:id/members/:user",
        changes(AuditResource::Team, AuditAction::RemoveMember, Target::Path(0)),
        |c, who| Box::pin(async move { teams::remove_member(&c.hub, &who, c.id(), c.param(1)).await }),
    ),
    mine(Method::GET, "/api/teams/:id/keys", |c, who| {
        Box::pin(async move { teams::keys(&c.hub, &who, c.id()).await })
    }),
    team_write(
        Method::POST,
        "/api/teams/:id/keys",
        changes(AuditResource::Key, AuditAction::Create, Target::Answer("id")),
        |c, who| Box::pin(async move { teams::create_key(&c.hub, &who, c.id(), &c.req).await }),
    ),
    team_write(
        Method::DELETE,
        "/api/teams/:id/keys/:key",
        changes(AuditResource::Key, AuditAction::Revoke, Target::Path(1)),
        |c, who| Box::pin(async move { teams::revoke_key(&c.hub, &who, c.id(), c.param(1)).await }),
    ),
    team_write(
        Method::PATCH,
        "/api/teams/:id/keys/:key",
        changes(AuditResource::Key, AuditAction::Update, Target::Path(1)),
        |c, who| Box::pin(async move { teams::patch_key(&c.hub, &who, c.id(), c.param(1), &c.req).await }),
    ),
    mine(Method::GET, "/api/teams/:id/usage", |c, who| {
        Box::pin(async move { teams::usage(&c.hub, &who, c.id(), &c.req).await })
    }),
    mine(Method::GET, "/api/teams/:id/calls", |c, who| {
        Box::pin(async move { teams::calls(&c.hub, &who, c.id(), &c.req).await })
    }),
    admin(Method::GET, "/api/admin/credit-packs", |c, _| {
        Box::pin(async move { payments::list_packs(&c.hub).await })
    }),
    audited(
        Method::POST,
        "/api/admin/credit-packs",
        changes(AuditResource::CreditPack, AuditAction::Create, Target::Answer("id")),
        |c, _| Box::pin(async move { payments::create_pack(&c.hub, &c.req).await }),
    ),
    audited(
        Method::PATCH,
        "/api/admin/credit-packs/:id",
        changes(AuditResource::CreditPack, AuditAction::Update, Target::Path(0)),
        |c, _| Box::pin(async move { payments::patch_pack(&c.hub, c.id(), &c.req).await }),
    ),
    audited(
        Method::DELETE,
        "/api/admin/credit-packs/:id",
        changes(AuditResource::CreditPack, AuditAction::Delete, Target::Path(0)),
        |c, _| Box::pin(async move { payments::delete_pack(&c.hub, c.id()).await }),
    ),
    admin(Method::GET, "/api/admin/payments", |c, _| {
        Box::pin(async move { payments::list_payments(&c.hub, &c.req, None).await })
    }),
    admin(Method::GET, "/api/admin/payments/events", |c, _| {
        Box::pin(async move { payments::list_payment_events(&c.hub, &c.req).await })
    }),
    admin(Method::GET, "/api/admin/webhooks", |c, _| {
        Box::pin(async move { notify::webhooks::list(&c.hub).await })
    }),
    audited(
        Method::POST,
        "/api/admin/webhooks",
        changes(AuditResource::Webhook, AuditAction::Create, Target::Answer("id")),
        |c, _| Box::pin(async move { notify::webhooks::create(&c.hub, &c.req).await }),
    ),
    admin(Method::GET, "/api/admin/webhooks/:id", |c, _| {
        Box::pin(async move { notify::webhooks::get(&c.hub, c.id()).await })
    }),
    audited(
        Method::PATCH,
        "/api/admin/webhooks/:id",
        changes(AuditResource::Webhook, AuditAction::Update, Target::Path(0)),
        |c, _| Box::pin(async move { notify::webhooks::patch(&c.hub, c.id(), &c.req).await }),
    ),
    audited(
        Method::DELETE,
        "/api/admin/webhooks/:id",
        changes(AuditResource::Webhook, AuditAction::Delete, Target::Path(0)),
        |c, _| Box::pin(async move { notify::webhooks::delete(&c.hub, c.id()).await }),
    ),
    audited(
        Method::POST,
        "/api/admin/webhooks/:id/rotate",
        changes(AuditResource::Webhook, AuditAction::RotateSecret, Target::Path(0)),
        |c, _| Box::pin(async move { notify::webhooks::rotate(&c.hub, c.id()).await }),
    ),
    audited(
        Method::POST,
        "/api/admin/webhooks/:id/test",
        changes(AuditResource::Webhook, AuditAction::SendTest, Target::Path(0)),
        |c, _| Box::pin(async move { notify::webhooks::test(&c.hub, c.id()).await }),
    ),
    admin(Method::GET, "/api/admin/webhooks/:id/deliveries", |c, _| {
        Box::pin(async move { notify::webhooks::deliveries(&c.hub, c.id(), &c.req).await })
    }),
    audited(
        Method::POST,
        "/api/admin/webhooks/:id/deliveries/:delivery/resend",
        changes(AuditResource::WebhookDelivery, AuditAction::Resend, Target::Path(1)),
        |c, _| Box::pin(async move { notify::webhooks::resend(&c.hub, c.id(), c.param(1)).await }),
    ),
    admin(Method::GET, "/api/admin/audit", |c, _| {
        Box::pin(async move { admin::audit::list(&c.hub, &c.req).await })
    }),
    admin(Method::GET, "/api/admin/settings", |c, _| {
        Box::pin(async move { admin::settings(&c.hub).await })
    }),
    audited(
        Method::PATCH,
        "/api/admin/settings",
        changes(AuditResource::Settings, AuditAction::Update, Target::Whole),
        |c, _| Box::pin(async move { admin::patch_settings(&c.hub, &c.req).await }),
    ),
];

async fn ready(hub: &Hub) -> Result<Response, ApiError> {
    match hub.store().ping().await {
        Ok(()) => Ok(json(StatusCode::OK, &json!({"status": "ready"}))),
        Err(_) => Err(ApiError::unavailable("The database is not reachable.")),
    }
}

/// A path's non-empty segments (`/v1//models/` is `v1`, `models`).
pub fn segments(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

impl Route {
    /// The values of the pattern's `:name` segments, if the path matches it.
    pub fn matches(&self, path: &[&str]) -> Option<Vec<String>> {
        let pattern = segments(self.pattern);
        if pattern.len() != path.len() {
            return None;
        }
        let mut params = Vec::new();
        for (want, got) in pattern.iter().zip(path) {
            if want.starts_with(':') {
                params.push((*got).to_string());
            } else if want != got {
                return None;
            }
        }
        Some(params)
    }
}

/// The routes whose pattern matches the path, whatever their method.
pub fn routes_for<'a>(path: &'a [&'a str]) -> impl Iterator<Item = (&'static Route, Vec<String>)> + 'a {
    ROUTES.iter().filter_map(|r| r.matches(path).map(|p| (r, p)))
}

/// The area a path is in, if any.
pub fn area_of(path: &[&str]) -> Option<&'static Area> {
    AREAS.iter().find(|a| path.starts_with(a.prefix))
}

/// The methods the path takes, as `Allow` lists them (`GET, POST`).
pub fn allowed_methods(path: &[&str]) -> Option<String> {
    let methods: Vec<&str> = routes_for(path).map(|(r, _)| r.method.as_str()).collect();
    (!methods.is_empty()).then(|| methods.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_unique_and_agree_on_protocol_and_access() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                if a.pattern == b.pattern {
                    assert_ne!(a.method, b.method, "{} {} twice", a.method, a.pattern);
                    assert_eq!(a.protocol, b.protocol, "{}", a.pattern);
                    assert_eq!(a.handler.access(), b.handler.access(), "{}", a.pattern);
                }
            }
        }
    }

    #[test]
    fn no_route_is_more_open_than_its_area() {
        for r in ROUTES {
            if let Some(area) = area_of(&segments(r.pattern)) {
                assert!(r.handler.access() >= area.access, "{} {}", r.method, r.pattern);
            }
        }
    }

    /// Adding an admin route that changes something without saying what it
    /// changes fails here: every admin route but a GET is audited, and its
    /// target names one of its `:name` segments.
    #[test]
    fn every_admin_write_is_audited() {
        for r in ROUTES.iter().filter(|r| r.handler.access() == Access::Admin) {
            match r.handler {
                Handler::AdminWrite(audit, _) | Handler::KeyWrite(audit, _) => {
                    assert_ne!(r.method, Method::GET, "{} is a read: use admin()", r.pattern);
                    if let Target::Path(n) = audit.target {
                        let names = segments(r.pattern).iter().filter(|s| s.starts_with(':')).count();
                        assert!(n < names, "{} {}: no :name segment {n}", r.method, r.pattern);
                    }
                }
                _ => assert_eq!(
                    r.method,
                    Method::GET,
                    "{} {} changes something: use audited()",
                    r.method,
                    r.pattern
                ),
            }
        }
        let under_admin = |r: &&Route| r.pattern.starts_with("/api/admin/");
        assert!(ROUTES
            .iter()
            .filter(under_admin)
            .all(|r| r.handler.access() == Access::Admin));
    }

    #[test]
    fn matches_segments_and_captures_ids() {
        let route = ROUTES
            .iter()
            .find(|r| r.pattern == "/api/admin/providers/:id/credentials")
            .unwrap();
        assert_eq!(
            route.matches(&segments("/api/admin/providers/prv_1/credentials/")),
            Some(vec!["prv_1".to_string()])
        );
        assert_eq!(route.matches(&segments("/api/admin/providers/prv_1")), None);
        assert_eq!(
            allowed_methods(&segments("/api/admin/providers/x")).as_deref(),
            Some("GET, PATCH, DELETE")
        );
        assert_eq!(allowed_methods(&segments("/api/admin/nope")), None);
    }
}
