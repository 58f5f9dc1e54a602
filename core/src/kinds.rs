//! The named kinds Hub stores and shows: a call's status, the endpoint it
//! came through, a model's kind, a credential's status. Each is a closed set
//! of names in the database and the admin API; in code they are enums, so a
//! misspelt name is a compile error rather than a row nobody finds.

macro_rules! named {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every name, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            pub fn parse(s: &str) -> Option<$name> {
                match s {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }

            /// The names, for error messages: `a, b or c`.
            pub fn names() -> String {
                let names: Vec<&str> = Self::ALL.iter().map(|k| k.as_str()).collect();
                match names.split_last() {
                    Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
                    _ => names.join(""),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use named;

named!(
    /// How a call attempt ended.
    CallStatus {
        Success = "success",
        /// The provider failed (before or after the first byte).
        Failed = "failed",
        /// The client went away before the end.
        Aborted = "aborted",
    }
);

named!(
    /// How a call used the response cache.
    CacheUse {
        /// Answered from the cache: no provider was asked.
        Hit = "hit",
        /// Looked up and not found (or refreshed): a provider answered, and the answer was stored.
        Miss = "miss",
    }
);

named!(
    /// The inbound endpoint a call came through.
    Endpoint {
        /// OpenAI `POST /v1/chat/completions`.
        Chat = "chat",
        /// Anthropic `POST /v1/messages`.
        Messages = "messages",
        /// OpenAI `POST /v1/responses`.
        Responses = "responses",
        Embeddings = "embeddings",
        Images = "images",
        /// AIGNE's framework chat (`/api/v2/chat`).
        AigneChat = "aigne-chat",
        /// AIGNE's OpenAI-like completions (`/api/v2/chat/completions`, `/api/v2/completions`).
        AigneCompletions = "aigne-completions",
        /// `POST /v1/audio/transcriptions` (and AIGNE's `/api/v2/audio/transcriptions`).
        Transcriptions = "transcriptions",
        /// `POST /v1/audio/translations`.
        Translations = "translations",
        /// `POST /v1/audio/speech` (and AIGNE's `/api/v2/audio/speech`).
        Speech = "speech",
        /// AIGNE's `POST /api/v2/video`.
        Video = "video",
        /// OpenAI's asynchronous `POST /v1/videos`.
        Videos = "videos",
    }
);

named!(
    /// What a model does, which decides the endpoints that may call it.
    ModelKind {
        Chat = "chat",
        Embedding = "embedding",
        Image = "image",
        Video = "video",
        /// Speech to text (`/v1/audio/transcriptions`, `/translations`): billed per second of audio.
        Transcription = "transcription",
        /// Text to speech (`/v1/audio/speech`): billed per character of input.
        Speech = "speech",
    }
);

named!(
    /// A credential's health as the database records it.
    CredentialStatus {
        Active = "active",
        /// The provider rejected it; re-checked in the background.
        Disabled = "disabled",
        /// An admin's test of it failed (it stays in rotation).
        Error = "error",
    }
);

named!(
    /// Where a checkout Hub started stands.
    PaymentStatus {
        /// Written before Stripe was asked for a session.
        Pending = "pending",
        /// Stripe created the session; the customer has not paid (yet).
        Open = "open",
        /// Paid: its credits were granted.
        Paid = "paid",
        /// Stripe refused to create the session, or an async payment failed.
        Failed = "failed",
        /// The session expired unpaid.
        Expired = "expired",
    }
);

named!(
    /// What Hub did with a webhook delivery whose signature verified.
    PaymentOutcome {
        /// This delivery granted the payment's credits.
        Granted = "granted",
        /// The payment's credits had already been granted (a replay, or another event for it).
        AlreadyGranted = "already_granted",
        /// The session is not paid yet (an async payment method): nothing granted.
        NotPaid = "not_paid",
        /// No checkout Hub started has this session (or payment intent): nothing done.
        UnknownPayment = "unknown_payment",
        /// The event names a different user, payment, amount or currency than Hub recorded.
        Mismatch = "mismatch",
        /// The grant would take the balance beyond the most Hub keeps.
        OutOfRange = "out_of_range",
        /// This delivery took the refunded share of the credits back.
        Refunded = "refunded",
        /// That much had already been refunded: nothing more taken back.
        AlreadyRefunded = "already_refunded",
        /// The checkout is marked failed or expired.
        Closed = "closed",
        /// An event type Hub does not act on.
        Ignored = "ignored",
    }
);

/// An ISO 4217 currency code, lower-case (`usd`), as Stripe takes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Currency(String);

impl Currency {
    /// Three ASCII letters, any case.
    pub fn parse(s: &str) -> Option<Currency> {
        let s = s.trim();
        (s.len() == 3 && s.bytes().all(|b| b.is_ascii_alphabetic())).then(|| Currency(s.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

named!(
    /// Which of a key's limits refused a call.
    KeyLimit {
        RequestsPerMinute = "rpm_limit",
        TokensPerMinute = "tpm_limit",
        DailySpendCap = "daily_spend_cap",
        MonthlySpendCap = "monthly_spend_cap",
        /// The budget of the key's team, for its current period.
        TeamBudget = "team_budget",
    }
);

impl KeyLimit {
    /// The start of the window the limit counts over: the minute, the UTC
    /// day or the UTC month `now_ms` is in. One notice per window.
    pub fn window_start(self, now_ms: i64) -> i64 {
        let (day, month) = crate::time::day_and_month_start(now_ms);
        match self {
            KeyLimit::RequestsPerMinute | KeyLimit::TokensPerMinute => now_ms - now_ms.rem_euclid(60_000),
            KeyLimit::DailySpendCap => day,
            KeyLimit::MonthlySpendCap => month,
            // The team's own period, which the notice reads from the team (`BudgetPeriod::bounds`).
            KeyLimit::TeamBudget => month,
        }
    }

    /// How the refusal names it.
    pub fn describe(self) -> &'static str {
        match self {
            KeyLimit::RequestsPerMinute => "its requests-per-minute limit",
            KeyLimit::TokensPerMinute => "its tokens-per-minute limit",
            KeyLimit::DailySpendCap => "its daily spend cap",
            KeyLimit::MonthlySpendCap => "its monthly spend cap",
            KeyLimit::TeamBudget => "its team's budget",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_read_as_in_the_database() {
        for k in CallStatus::ALL {
            assert_eq!(CallStatus::parse(k.as_str()), Some(*k));
        }
        assert_eq!(Endpoint::AigneChat.as_str(), "aigne-chat");
        assert_eq!(serde_json::to_value(ModelKind::Image).unwrap(), "image");
        assert_eq!(
            ModelKind::names(),
            "chat, embedding, image, video, transcription or speech"
        );
        assert_eq!(CredentialStatus::parse("Active"), None, "names are exact");
    }

    #[test]
    fn budget_periods_start_at_local_midnight() {
        use crate::time::{iso8601, parse_time, Zone};
        let at = |t: &str| parse_time(t).unwrap();
        let show = |(s, n): (i64, Option<i64>)| (iso8601(s), n.map(iso8601));
        let tokyo = Zone::parse("Asia/Tokyo").unwrap();
        // 2026-11-30T16:00Z is already December 1st in Tokyo.
        assert_eq!(
            show(BudgetPeriod::Monthly.bounds(tokyo, at("2026-11-30T16:00:00Z"))),
            (
                "2026-11-30T15:00:00.000Z".into(),
                Some("2026-12-31T15:00:00.000Z".into())
            )
        );
        assert_eq!(
            show(BudgetPeriod::Monthly.bounds(tokyo, at("2026-11-30T14:59:59Z"))),
            (
                "2026-10-31T15:00:00.000Z".into(),
                Some("2026-11-30T15:00:00.000Z".into())
            )
        );
        // Berlin leaves summer time on 2026-10-25: that day lasts 25 hours.
        let berlin = Zone::parse("Europe/Berlin").unwrap();
        assert_eq!(
            show(BudgetPeriod::Daily.bounds(berlin, at("2026-10-25T12:00:00Z"))),
            (
                "2026-10-24T22:00:00.000Z".into(),
                Some("2026-10-25T23:00:00.000Z".into())
            )
        );
        // Weeks start on Monday: Wednesday 2026-12-02 is in the week of Monday 2026-11-30.
        assert_eq!(
            show(BudgetPeriod::Weekly.bounds(Zone::UTC, at("2026-12-02T10:00:00Z"))),
            (
                "2026-11-30T00:00:00.000Z".into(),
                Some("2026-12-07T00:00:00.000Z".into())
            )
        );
        assert_eq!(BudgetPeriod::None.bounds(berlin, at("2026-12-02T10:00:00Z")), (0, None));
    }

    #[test]
    fn currencies_are_three_letters_kept_lower_case() {
        assert_eq!(Currency::parse("USD").unwrap().as_str(), "usd");
        for bad in ["", "us", "usdd", "u$d", "ü12"] {
            assert!(Currency::parse(bad).is_none(), "{bad}");
        }
    }
}

named!(
    /// What an admin write changed (the audit log's `resource`).
    AuditResource {
        Provider = "provider",
        Credential = "credential",
        Model = "model",
        User = "user",
        Key = "key",
        /// A batch of redemption codes (`rcb_…`) or one code (`rdc_…`).
        RedemptionCodes = "redemption_codes",
        CreditPack = "credit_pack",
        Webhook = "webhook",
        WebhookDelivery = "webhook_delivery",
        Settings = "settings",
        /// A team, its settings and members.
        Team = "team",
        /// A model alias (`/api/admin/aliases`).
        Alias = "alias",
    }
);

named!(
    /// How often a team's budget starts again: at midnight in the team's time
    /// zone, each day, each Monday or on the first of each month; `none`
    /// never (a budget for the team's whole life).
    BudgetPeriod {
        Daily = "daily",
        Weekly = "weekly",
        Monthly = "monthly",
        None = "none",
    }
);

impl BudgetPeriod {
    /// The period holding `now_ms` in `zone`: its start and the next one's.
    /// A budget without a period counts from 0 and never starts again.
    pub fn bounds(self, zone: crate::time::Zone, now_ms: i64) -> (i64, Option<i64>) {
        match self.local_bounds(zone, now_ms) {
            Some((start, next)) => (start, Some(next)),
            None => (0, None),
        }
    }

    fn local_bounds(self, zone: crate::time::Zone, now_ms: i64) -> Option<(i64, i64)> {
        let (y, m, d, since_monday) = zone.local_date(now_ms)?;
        // The date `days` after (y, m, d), found by its noon, far from any clock change.
        let shift = |days: i64| {
            let noon = zone.start_of_day(y, m, d)? + 12 * 3_600_000 + days * 86_400_000;
            zone.local_date(noon)
        };
        let (start, next) = match self {
            BudgetPeriod::None => return None,
            BudgetPeriod::Daily => ((y, m, d), shift(1)?),
            BudgetPeriod::Weekly => {
                let back = -i64::from(since_monday);
                let (y0, m0, d0, _) = shift(back)?;
                ((y0, m0, d0), shift(back + 7)?)
            }
            BudgetPeriod::Monthly => {
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                ((y, m, 1), (ny, nm, 1, 0))
            }
        };
        Some((
            zone.start_of_day(start.0, start.1, start.2)?,
            zone.start_of_day(next.0, next.1, next.2)?,
        ))
    }
}

named!(
    /// A member's role in a team: team admins manage its members and keys and see its usage.
    TeamRole {
        Member = "member",
        Admin = "admin",
    }
);

named!(
    /// How the candidates of equal priority for a model or an alias are
    /// ordered (`gateway::routing`).
    RoutingMode {
        /// As configured: providers by priority, equal ones taking turns by weight; an alias's targets in their order.
        Priority = "priority",
        /// Fastest first: time to first byte and error rate as this instance measured them.
        Latency = "latency",
        /// Cheapest first, by the provider's cost rate.
        Cost = "cost",
    }
);

named!(
    /// What an admin write did to its resource (the audit log's `action`).
    AuditAction {
        Create = "create",
        Update = "update",
        Delete = "delete",
        Revoke = "revoke",
        /// A credential's test call (which may set its status).
        Test = "test",
        /// Credits granted to (or taken from) a user.
        Grant = "grant",
        /// Redemption codes minted.
        Mint = "mint",
        Disable = "disable",
        /// A webhook's signing secret replaced.
        RotateSecret = "rotate_secret",
        /// A webhook test event queued.
        SendTest = "send_test",
        Resend = "resend",
        /// A user made a member of a team.
        AddMember = "add_member",
        RemoveMember = "remove_member",
        /// Prices synced from a catalogue.
        Sync = "sync",
    }
);
