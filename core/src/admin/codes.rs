//! Redemption codes: operators mint batches of codes worth credits
//! (`/api/admin/redemption-codes`), customers redeem them for their own
//! balance (`POST /api/me/redeem`). A code's plaintext is answered once, when
//! minted; Hub keeps only its keyed hash and a hint.

mod format;

use super::fields::Fields;
use super::{created, ok, Query};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::http::{Request, Response};
use crate::hub::Hub;
use crate::metering::money::Credits;
use crate::store::{CodeBatchRow, CodeRow, NewCode, Redemption};
use crate::time::iso8601;
use format::RedemptionCode;
use serde_json::{json, Value};

/// Codes one request may mint.
const MAX_COUNT: i64 = 1000;
/// Redemptions one code may allow.
const MAX_USES: i64 = 1_000_000;
/// Unsuccessful redemption attempts a user may make within the window.
const MAX_FAILED_ATTEMPTS: i64 = 10;
const ATTEMPT_WINDOW_MS: i64 = 10 * 60 * 1000;

const MINT_FIELDS: &[&str] = &["credits", "count", "uses", "expires_at", "once_per_user", "label"];

/// Where a code stands, as lists show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CodeState {
    Active,
    UsedUp,
    Expired,
    Disabled,
}

impl CodeState {
    fn of(code: &CodeRow, batch: &CodeBatchRow, now_ms: i64) -> CodeState {
        if code.disabled_at.is_some() || batch.disabled_at.is_some() {
            CodeState::Disabled
        } else if batch.expires_at.is_some_and(|t| t <= now_ms) {
            CodeState::Expired
        } else if code.used >= batch.uses {
            CodeState::UsedUp
        } else {
            CodeState::Active
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            CodeState::Active => "active",
            CodeState::UsedUp => "used_up",
            CodeState::Expired => "expired",
            CodeState::Disabled => "disabled",
        }
    }
}

/// The batch a mint request describes, checked (codes not yet made).
fn batch_spec(hub: &Hub, caller: &Caller, f: &Fields) -> Result<CodeBatchRow, ApiError> {
    let credits = f
        .credits("credits")?
        .ok_or_else(|| ApiError::invalid_field("credits", "is required (credits per redemption, up to 9 decimals)"))?;
    if credits.nanos() <= 0 {
        return Err(ApiError::invalid_field("credits", "must be positive"));
    }
    let now = hub.now_ms();
    let expires_at = f.time("expires_at")?;
    if expires_at.is_some_and(|t| t <= now) {
        return Err(ApiError::invalid_field("expires_at", "must be in the future"));
    }
    let label = f.str("label")?.filter(|l| !l.is_empty());
    if label.as_ref().is_some_and(|l| l.chars().count() > 200) {
        return Err(ApiError::invalid_field("label", "must be at most 200 characters"));
    }
    Ok(CodeBatchRow {
        id: hub.new_id("rcb"),
        label,
        credits,
        uses: f.int("uses", 1, MAX_USES)?.unwrap_or(1),
        once_per_user: f.bool("once_per_user")?.unwrap_or(true),
        expires_at,
        created_by: Some(caller.user_id.clone()),
        created_at: now,
        disabled_at: None,
    })
}

/// `count` fresh codes, or a 503 if the platform has no randomness (then
/// nothing is written).
fn new_codes(hub: &Hub, count: i64) -> Result<Vec<(RedemptionCode, NewCode)>, ApiError> {
    let key = hub.master_key().key_hash_secret();
    (0..count)
        .map(|_| {
            let code = RedemptionCode::generate(hub.rng()).map_err(crate::hub::no_randomness)?;
            let row = NewCode {
                id: hub.new_id("rdc"),
                hash: code.hash(key),
                hint: code.hint(),
            };
            Ok((code, row))
        })
        .collect()
}

/// `POST /api/admin/redemption-codes`: mints a batch; its codes are in this
/// answer and nowhere else.
pub(crate) async fn mint(hub: &Hub, caller: &Caller, req: &Request) -> Result<Response, ApiError> {
    let f = Fields::parse(req.body())?;
    f.only(MINT_FIELDS)?;
    let count = f.int("count", 1, MAX_COUNT)?.unwrap_or(1);
    let batch = batch_spec(hub, caller, &f)?;
    let codes = new_codes(hub, count)?;
    let rows: Vec<NewCode> = codes.iter().map(|(_, row)| row.clone()).collect();
    hub.store()
        .insert_code_batch(&batch, &rows)
        .await
        .map_err(|e| super::conflict_as(e, "two new codes collided; nothing was minted, try again"))?;
    created(json!({
        "batch_id": batch.id,
        "codes": codes.iter().map(|(code, _)| code.text()).collect::<Vec<_>>(),
        "batch": batch_json(&batch, &codes_of(&batch, &rows), hub.now_ms()),
    }))
}

fn codes_of(batch: &CodeBatchRow, rows: &[NewCode]) -> Vec<CodeRow> {
    rows.iter()
        .map(|r| CodeRow {
            id: r.id.clone(),
            batch_id: batch.id.clone(),
            hint: r.hint.clone(),
            used: 0,
            disabled_at: None,
        })
        .collect()
}

pub(crate) fn code_json(c: &CodeRow, batch: &CodeBatchRow, now_ms: i64) -> Value {
    let state = CodeState::of(c, batch, now_ms);
    let left = match state {
        CodeState::Active => batch.uses - c.used,
        _ => 0,
    };
    json!({
        "id": c.id,
        "hint": c.hint,
        "state": state.as_str(),
        "redemptions": c.used,
        "uses_left": left,
        "disabled_at": c.disabled_at.map(iso8601),
    })
}

pub(crate) fn batch_json(b: &CodeBatchRow, codes: &[CodeRow], now_ms: i64) -> Value {
    json!({
        "id": b.id,
        "label": b.label,
        "credits": b.credits,
        "uses": b.uses,
        "once_per_user": b.once_per_user,
        "expires_at": b.expires_at.map(iso8601),
        "disabled_at": b.disabled_at.map(iso8601),
        "created_by": b.created_by,
        "created_at": iso8601(b.created_at),
        "redemptions": codes.iter().map(|c| c.used).sum::<i64>(),
        "codes": codes.iter().map(|c| code_json(c, b, now_ms)).collect::<Vec<_>>(),
    })
}

/// `GET /api/admin/redemption-codes`: batches, newest first, with their
/// codes' hints, state and redemptions (never the codes themselves).
pub(crate) async fn list(hub: &Hub, req: &Request) -> Result<Response, ApiError> {
    let q = Query::of(req);
    let page = hub.store().list_code_batches(q.get("cursor"), q.limit()?).await?;
    let now = hub.now_ms();
    let data: Vec<Value> = page.items.iter().map(|(b, codes)| batch_json(b, codes, now)).collect();
    ok(json!({"data": data, "next_cursor": page.next_cursor}))
}

/// `DELETE /api/admin/redemption-codes/{id}`: disables one code (`rdc_…`)
/// or a whole batch (`rcb_…`). Credits already redeemed stay.
pub(crate) async fn disable(hub: &Hub, id: &str) -> Result<Response, ApiError> {
    if !hub.store().disable_codes(id, hub.now_ms()).await? {
        return Err(super::gone("redemption code or batch", id));
    }
    ok(json!({"id": id, "disabled": true}))
}

/// The code a redeem request carries, normalised.
fn typed_code(f: &Fields) -> Result<RedemptionCode, ApiError> {
    let text = f.req_str("code")?;
    RedemptionCode::parse(&text)
        .ok_or_else(|| ApiError::invalid_field("code", "is not a redemption code (they look like HUB-XXXX-XXXX-XXXX)"))
}

/// `POST /api/me/redeem`: grants a code's credits to the caller's user.
pub(crate) async fn redeem(hub: &Hub, caller: &Caller, req: &Request) -> Result<Response, ApiError> {
    let f = Fields::parse(req.body())?;
    f.only(&["code"])?;
    let code = typed_code(&f)?;
    let (user, now) = (caller.user_id.as_str(), hub.now_ms());
    let attempt = hub.new_id("rda");
    let store = hub.store();
    if !store
        .take_redemption_attempt(&attempt, user, now, ATTEMPT_WINDOW_MS, MAX_FAILED_ATTEMPTS)
        .await?
    {
        return Err(ApiError::rate_limited(
            "Too many unsuccessful attempts to redeem a code: wait 10 minutes and try again.",
        )
        .with_retry_after_ms(ATTEMPT_WINDOW_MS));
    }
    let key = hub.master_key().key_hash_secret();
    let (row, batch) = store.find_code(&code.hash(key)).await?.ok_or_else(invalid_code)?;
    let id = hub.new_id("rdm");
    let redemption = Redemption {
        id: &id,
        code: &row,
        batch: &batch,
        user_id: user,
        attempt_id: &attempt,
        now_ms: now,
    };
    if !store.redeem(&redemption).await? {
        return Err(refusal(hub, &row, &batch, user, now).await);
    }
    if let Some(book) = hub.book() {
        book.credit(user, batch.credits);
    }
    hub.deliver_soon();
    redeemed(hub, &id, &row, batch.credits, user).await
}

async fn redeemed(hub: &Hub, id: &str, code: &CodeRow, credits: Credits, user: &str) -> Result<Response, ApiError> {
    let u = hub.store().get_user(user).await?;
    let u = hub.live_user(u.ok_or_else(|| ApiError::internal("The redemption's user is gone."))?);
    ok(json!({
        "redemption_id": id,
        "code": code.hint,
        "credits": credits,
        "balance": u.balance,
        "available": u.balance.saturating_sub(u.held),
    }))
}

fn invalid_code() -> ApiError {
    ApiError::bad_request("This code is not valid, or it has been used up.")
        .with_param("code")
        .with_code("code_invalid")
}

/// Why a redemption was refused, read after the fact. Unknown and used-up
/// codes get the same answer, so nobody learns which codes existed.
async fn refusal(hub: &Hub, code: &CodeRow, batch: &CodeBatchRow, user: &str, now: i64) -> ApiError {
    let store = hub.store();
    let (code, batch) = match (store.get_code(&code.id).await, store.get_code_batch(&batch.id).await) {
        (Ok(Some(c)), Ok(Some(b))) => (c, b),
        (Err(e), _) | (_, Err(e)) => return e.into(),
        _ => return invalid_code(),
    };
    let state = CodeState::of(&code, &batch, now);
    let again = match state {
        CodeState::Active | CodeState::UsedUp if batch.once_per_user => {
            match store.has_redeemed(&code.id, user).await {
                Ok(again) => again,
                Err(e) => return e.into(),
            }
        }
        _ => false,
    };
    match state {
        CodeState::Disabled => ApiError::bad_request("This code has been disabled.")
            .with_param("code")
            .with_code("code_disabled"),
        CodeState::Expired => ApiError::bad_request("This code has expired.")
            .with_param("code")
            .with_code("code_expired"),
        _ if again => ApiError::conflict("You have already redeemed this code.").with_code("code_already_redeemed"),
        CodeState::UsedUp => invalid_code(),
        CodeState::Active => ApiError::invalid_field(
            "code",
            "would take your balance beyond 1000000000 credits, the most Hub keeps",
        ),
    }
}
