//! Relaying a provider's stream to the caller, metering it on the way, and
//! settling the call exactly once however the stream ends: complete, failed
//! midway (an error event in the caller's protocol), or dropped because the
//! client went away (billed for what was delivered, flagged `estimated`).

use super::cache::{HitCost, Recorder};
use crate::auth::Caller;
use crate::chat::Delta;
use crate::codec::{Billed, Decode, Encode};
use crate::config::Route;
use crate::error::ApiError;
use crate::error::Protocol;
use crate::http::{BodyError, ByteStream};
use crate::kinds::{CacheUse, CallStatus, Endpoint, ModelKind};
use crate::metering::estimate::{tokens_in_text, PromptSize};
use crate::metering::money::Credits;
use crate::metering::HeldIn;
use crate::metering::Usage;
use crate::protocols::openai::{stream_error_event, ChunkView};
use crate::protocols::responses::tap::{End as TapEnd, Tap};
use crate::providers::anthropic::{Observed, StreamMeter};
use crate::sse::{Event as SseEvent, SseParser};
use crate::store::{CallLog, Settlement};
use crate::Hub;
use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Complete,
    /// The client disconnected before the end.
    ClientGone,
    /// The provider failed after the first byte.
    Failed(ApiError),
}

/// Everything needed to log and settle one call.
pub struct CallMeter {
    pub hub: Hub,
    pub call_id: String,
    pub attempt: i64,
    pub request_id: String,
    pub caller: Arc<Caller>,
    pub app: String,
    pub route: Route,
    pub credential_id: Option<String>,
    /// The model as the caller named it.
    pub model: String,
    pub endpoint: Endpoint,
    /// The kind of model called, for usage.
    pub kind: ModelKind,
    pub stream: bool,
    pub billed: bool,
    /// The credit held for this call, when billing is on.
    pub hold: Option<Credits>,
    /// Where the hold lives (the guard placed it; set when it hands over).
    pub held_in: Option<crate::metering::HeldIn>,
    pub prompt: PromptSize,
    /// The most this call can use (prompt bound, output budget, images
    /// asked for): reported usage beyond it is cut to it.
    pub bound: Usage,
    pub started_us: u64,
    pub upstream_ttfb_ms: Option<i64>,
    pub ttfb_ms: Option<i64>,
    pub earlier_attempts: Vec<CallLog>,
    /// The call's trace, when it is traced.
    pub trace: Option<crate::telemetry::trace::CallTrace>,
    /// How the call uses the response cache, if it does.
    pub cache_use: Option<CacheUse>,
    /// Records the answer for the response cache (a miss that may be kept).
    pub record: Option<Recorder>,
    /// A hit's cost: billed instead of the usage at the route's rates.
    pub hit: Option<HitCost>,
}

impl CallMeter {
    pub fn elapsed_ms(&self) -> i64 {
        ((self.hub.clock().monotonic_us().saturating_sub(self.started_us)) / 1000) as i64
    }

    fn log(&self, status: CallStatus, error: Option<&ApiError>) -> CallLog {
        CallLog {
            id: format!("{}-{}", self.call_id, self.attempt),
            call_id: self.call_id.clone(),
            attempt: self.attempt,
            request_id: Some(self.request_id.clone()),
            endpoint: self.endpoint,
            user_id: Some(self.caller.user_id.clone()),
            key_id: Some(self.caller.key_id.clone()),
            app: Some(self.app.clone()),
            provider_id: Some(self.route.provider.id.clone()),
            provider: Some(self.route.provider.name.clone()),
            credential_id: self.credential_id.clone(),
            model: self.model.clone(),
            alias: self.route.via.as_ref().map(|v| v.alias.clone()),
            upstream_model: Some(self.route.model.model.clone()),
            stream: self.stream,
            status,
            http_status: Some(error.map_or(200, |e| e.status.as_u16() as i64)),
            error: error.map(|e| e.message.chars().take(1000).collect()),
            duration_ms: self.elapsed_ms(),
            ttfb_ms: self.ttfb_ms,
            upstream_ttfb_ms: self.upstream_ttfb_ms,
            created_at: self.hub.now_ms(),
            // The usage and its cost are the settlement's to fill in.
            usage: Usage::default(),
            credits: Credits::ZERO,
            cache_saved: Credits::ZERO,
            response_cache: self.cache_use,
            response_cache_saved: Credits::ZERO,
            estimated: false,
            clamped: false,
        }
    }

    /// The call-log row of an attempt that failed before any output.
    pub fn failed_log(&self, error: &ApiError) -> CallLog {
        self.log(CallStatus::Failed, Some(error))
    }

    /// Computes the call's cost and settles it in the background. `usage` is
    /// the provider's count; without it, the delivered output is estimated.
    pub fn finish(&mut self, usage: Option<Usage>, output_bytes: u64, outcome: Outcome) -> Billed {
        let (usage, estimated) = self.usage_of(usage, output_bytes, &outcome);
        let (usage, clamped) = usage.clamped_to(&self.bound);
        if clamped {
            tracing::warn!(call_id = %self.call_id, provider = %self.route.provider.name, "the provider reported more usage than the request could produce; billed at the bound");
        }
        // The rates the usage is billed at (a long prompt's tier), kept on its usage row.
        let rates = self.route.model.rates.for_usage(&usage);
        let mut log = self.outcome_log(&outcome);
        let credits = match self.hit {
            Some(hit) => {
                log.response_cache_saved = hit.saved();
                hit.charge
            }
            None => {
                log.cache_saved = rates.cache_savings(&usage);
                rates.cost(&usage)
            }
        };
        log.usage = usage;
        log.credits = credits;
        log.estimated = estimated;
        log.clamped = clamped;
        let settlement = Settlement {
            call_id: self.call_id.clone(),
            user_id: self.caller.user_id.clone(),
            key_id: Some(self.caller.key_id.clone()),
            app: Some(self.app.clone()),
            provider_id: Some(self.route.provider.id.clone()),
            model: format!("{}/{}", self.route.provider.name, self.route.model.model),
            kind: self.kind,
            usage,
            rates,
            credits,
            billed: self.billed,
            estimated,
            hold: self.hold.and(self.held_in.clone()),
            key_limited: self.caller.budgeted(),
            now_ms: self.hub.now_ms(),
            log,
        };
        if self.hold.is_some() {
            let open = &self.hub.telemetry().metrics.holds_open;
            open.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
        let charged = if self.billed { credits } else { Credits::ZERO };
        let mut lease_charge = None;
        match (self.hold.take(), self.held_in.take()) {
            (Some(hold), Some(HeldIn::Book)) => {
                if let Some(book) = self.hub.book() {
                    book.settle(&self.caller.user_id, hold, charged);
                }
            }
            (Some(_), Some(HeldIn::Lease(lease))) => {
                lease_charge = self
                    .hub
                    .lease_call_ended(&self.caller.user_id, lease, &self.call_id, charged);
            }
            _ => {}
        }
        let earlier = std::mem::take(&mut self.earlier_attempts);
        let logs: Vec<&CallLog> = earlier.iter().chain([&settlement.log]).collect();
        self.hub.call_ended(self.trace.take(), &logs);
        tracing::info!(call_id = %self.call_id, status = %settlement.log.status, credits = %credits, estimated, input = usage.input_tokens, output = usage.output_tokens, "call finished");
        // Journaled here, before the caller gets the final event; committed in the background.
        self.hub.commit_settlement_charging(
            &self.call_id,
            crate::store::Store::settlement_stmts(&settlement, &earlier),
            lease_charge,
        );
        Billed { usage, credits }
    }

    /// The usage to bill, and whether it is Hub's estimate: the provider's
    /// count, else what was delivered (nothing, for a provider that failed
    /// before any output).
    fn usage_of(&self, usage: Option<Usage>, output_bytes: u64, outcome: &Outcome) -> (Usage, bool) {
        match usage {
            Some(u) => (u, false),
            None if output_bytes == 0 && matches!(outcome, Outcome::Failed(_)) => (Usage::default(), false),
            None => (
                Usage {
                    input_tokens: self.prompt.input_token_guess(),
                    output_tokens: tokens_in_text(output_bytes),
                    ..Default::default()
                },
                true,
            ),
        }
    }

    /// The call-log row for how the call ended.
    fn outcome_log(&self, outcome: &Outcome) -> CallLog {
        match outcome {
            Outcome::Complete => self.log(CallStatus::Success, None),
            Outcome::ClientGone => {
                let gone = ApiError::bad_request("The client closed the connection before the end.");
                let mut log = self.log(CallStatus::Aborted, Some(&gone));
                log.http_status = Some(499);
                log
            }
            Outcome::Failed(e) => self.log(CallStatus::Failed, Some(e)),
        }
    }
}

/// Bytes a caller-side event for one delta usually takes (a Responses text
/// delta is about 250).
const ENCODED_PER_DELTA: usize = 512;

/// How provider bytes become caller bytes.
pub enum Mode {
    /// Caller and provider speak the same protocol: events forwarded
    /// untouched, read only to meter them.
    Passthrough { parser: SseParser, dialect: Dialect },
    /// Any other pair: the provider's stream decoded into deltas and encoded
    /// in the caller's protocol.
    Transcode {
        decoder: Box<dyn Decode>,
        encoder: Box<dyn Encode>,
        deltas: Vec<Delta>,
    },
    /// Responses caller, provider that speaks Responses: events forwarded
    /// untouched, usage read from the terminal event, the stream closed
    /// after it.
    Responses(Tap),
    /// A body that is not a stream of events (speech audio): forwarded as
    /// it arrives. Its usage is known before the first byte (the characters
    /// spoken), and the end of the body is the end of the answer. A failure
    /// midway breaks the caller's body, since audio has no error event.
    Bytes(Usage),
}

/// The protocol of a stream passed through, and what metering it needs.
pub enum Dialect {
    /// OpenAI chat chunks; the usage-only chunk dropped unless the caller asked for it.
    OpenAi { strip_usage: bool },
    /// Anthropic Messages events, forwarded every one.
    Anthropic(StreamMeter),
}

/// What one passed-through event does to the call.
struct Seen {
    keep: bool,
    output_bytes: u64,
    usage: Option<Usage>,
    end: Option<End>,
    /// The provider's finish (stop) reason, on the event that carries it.
    finish: Option<String>,
}

enum End {
    /// The provider said the answer is complete: settle before forwarding this.
    Complete,
    /// The provider's own error event: forward it, then end.
    Failed(ApiError),
    /// Not an event of the protocol: end with an error of Hub's.
    Broken(ApiError),
}

impl Dialect {
    fn see(&mut self, ev: &SseEvent) -> Seen {
        let mut seen = Seen {
            keep: true,
            output_bytes: 0,
            usage: None,
            end: None,
            finish: None,
        };
        if ev.data.is_empty() {
            return seen;
        }
        match self {
            Dialect::OpenAi { strip_usage } => see_openai(&ev.data, *strip_usage, &mut seen),
            Dialect::Anthropic(meter) => match meter.observe(&ev.data) {
                Observed::Output(n) => seen.output_bytes = n,
                Observed::Usage(u) => seen.usage = Some(u),
                Observed::Complete => seen.end = Some(End::Complete),
                Observed::Failed(e) => seen.end = Some(End::Failed(e)),
                Observed::Nothing => {}
                Observed::Malformed => seen.end = Some(malformed()),
            },
        }
        if let Dialect::Anthropic(meter) = self {
            seen.finish = meter.take_stop_reason();
        }
        seen
    }

    /// The event that ends a stream Hub must cut short, in the caller's protocol.
    fn error_event(&self, err: &ApiError) -> Bytes {
        match self {
            Dialect::OpenAi { .. } => stream_error_event(err),
            Dialect::Anthropic(_) => {
                let mut out = BytesMut::new();
                crate::codec::sse(&mut out, Some("error"), &err.body(Protocol::Anthropic));
                out.freeze()
            }
        }
    }
}

fn see_openai(data: &str, strip_usage: bool, seen: &mut Seen) {
    if data == "[DONE]" {
        seen.end = Some(End::Complete);
        return;
    }
    match serde_json::from_str::<ChunkView>(data) {
        Ok(view) => {
            seen.output_bytes = view.output_bytes();
            seen.finish = view
                .choices
                .iter()
                .find_map(|c| c.finish_reason.as_deref().map(str::to_string));
            if let Some(u) = &view.usage {
                seen.usage = Some(u.to_usage());
                seen.keep = !(strip_usage && view.is_usage_only());
            }
        }
        // A provider error object mid-stream is passed on as it is.
        Err(_) if data.contains("\"error\"") => {}
        Err(_) => seen.end = Some(malformed()),
    }
}

fn malformed() -> End {
    End::Broken(ApiError::provider("The provider sent a malformed stream chunk."))
}

impl Mode {
    pub fn passthrough(strip_usage: bool) -> Mode {
        Mode::Passthrough {
            parser: SseParser::new(),
            dialect: Dialect::OpenAi { strip_usage },
        }
    }

    /// An Anthropic caller's stream from an Anthropic provider.
    pub fn anthropic_passthrough() -> Mode {
        Mode::Passthrough {
            parser: SseParser::new(),
            dialect: Dialect::Anthropic(StreamMeter::default()),
        }
    }

    pub fn transcode(decoder: Box<dyn Decode>, encoder: Box<dyn Encode>) -> Mode {
        Mode::Transcode {
            decoder,
            encoder,
            deltas: Vec::new(),
        }
    }
}

/// The stream handed to the runtime. Forwards output as it arrives, meters
/// it, and settles on end, on provider error, or on drop.
pub struct Relay {
    meter: Option<CallMeter>,
    first: Option<Bytes>,
    upstream: ByteStream,
    mode: Mode,
    usage: Option<Usage>,
    output_bytes: u64,
    finished: bool,
    /// Whether the provider marked its stream complete (`[DONE]`, a finish reason).
    complete: bool,
    /// Output held back for one more turn of the provider connection (see `poll_next`).
    held: Gather,
    /// Scheduler turns in a row the held output found nothing new.
    idle_turns: u8,
    /// How the caller's body breaks after its last output, for a failure
    /// that has no event in the caller's protocol ([`Mode::Bytes`]).
    broken: Option<BodyError>,
    /// Records the stream for the response cache, with its content type.
    record: Option<(Recorder, &'static str)>,
    /// Once a recorded call settled complete: what it was billed, and where.
    completed: Option<(Billed, Hub, Route)>,
}

impl Relay {
    pub fn new(
        mut meter: CallMeter,
        first: Bytes,
        upstream: ByteStream,
        mode: Mode,
        content_type: &'static str,
    ) -> Self {
        let record = meter.record.take().map(|r| (r, content_type));
        Relay {
            record,
            completed: None,
            meter: Some(meter),
            first: Some(first),
            upstream,
            usage: match &mode {
                Mode::Bytes(u) => Some(*u),
                _ => None,
            },
            mode,
            output_bytes: 0,
            finished: false,
            complete: false,
            held: Gather::default(),
            idle_turns: 0,
            broken: None,
        }
    }

    /// Meters a chunk and returns what to forward (complete events only).
    fn process(&mut self, chunk: &Bytes) -> Bytes {
        match &mut self.mode {
            Mode::Bytes(_) => {
                self.output_bytes += chunk.len() as u64;
                chunk.clone()
            }
            Mode::Passthrough { .. } => self.pass(chunk),
            Mode::Transcode { decoder, deltas, .. } => {
                decoder.feed(chunk, deltas);
                self.encode_deltas()
            }
            Mode::Responses(_) => self.tap(chunk),
        }
    }

    /// Meters a Responses event stream; its terminal event settles the call
    /// and ends the stream.
    fn tap(&mut self, chunk: &[u8]) -> Bytes {
        let Mode::Responses(tap) = &mut self.mode else {
            return Bytes::new();
        };
        let t = tap.feed(chunk);
        self.output_bytes += t.output_bytes;
        if t.usage.is_some() {
            self.usage = t.usage;
        }
        let outcome = match t.end {
            None => return t.forward,
            Some(TapEnd::Complete) => Outcome::Complete,
            Some(TapEnd::Reported(e) | TapEnd::Broken(e)) => Outcome::Failed(e),
        };
        self.complete = outcome == Outcome::Complete;
        self.finished = true;
        // Settled (journaled) before the caller can see the end.
        self.settle(outcome);
        t.forward
    }

    /// Encodes the decoded deltas; a provider error among them ends the stream.
    fn encode_deltas(&mut self) -> Bytes {
        let Mode::Transcode { encoder, deltas, .. } = &mut self.mode else {
            return Bytes::new();
        };
        // Room for the usual events up front: grown from empty, the buffer
        // would be reallocated several times per event.
        let mut out = BytesMut::with_capacity(ENCODED_PER_DELTA * deltas.len());
        let mut failed = None;
        let mut finish = None;
        for d in deltas.drain(..) {
            self.output_bytes += d.output_bytes();
            match d {
                Delta::Usage(u) => self.usage = Some(u),
                Delta::Finish(f) => {
                    self.complete = true;
                    finish = Some(f);
                    encoder.delta(&Delta::Finish(f), &mut out);
                }
                Delta::Error(e) => {
                    encoder.error(&e, &mut out);
                    failed = Some(e);
                    break;
                }
                d => encoder.delta(&d, &mut out),
            }
        }
        deltas.clear();
        if let Some(f) = finish {
            self.note_finish(f.as_str().to_string());
        }
        if let Some(e) = failed {
            self.finished = true;
            self.settle(Outcome::Failed(e));
        }
        out.freeze()
    }

    /// The provider's stream ended: flush and close in the caller's protocol.
    fn end(&mut self) -> Bytes {
        match &mut self.mode {
            Mode::Passthrough { parser, .. } => {
                // An unterminated last event is passed on, terminated.
                if parser.pending() > 0 {
                    self.pass(b"\n\n")
                } else {
                    Bytes::new()
                }
            }
            // An unterminated last event is read, and passed on, terminated.
            Mode::Responses(tap) if tap.pending() > 0 => self.tap(b"\n\n"),
            Mode::Responses(_) => Bytes::new(),
            Mode::Bytes(_) => {
                self.complete = true;
                Bytes::new()
            }
            Mode::Transcode { decoder, deltas, .. } => {
                decoder.end(deltas);
                let head = self.encode_deltas();
                // Failed, or cut short (the caller then ends it with an error).
                if self.finished || !self.complete {
                    return head;
                }
                // Settled before the last event, so it can carry the credits.
                let billed = self.settle(Outcome::Complete).unwrap_or_default();
                let Mode::Transcode { encoder, .. } = &mut self.mode else {
                    return head;
                };
                let mut out = BytesMut::from(&head[..]);
                encoder.end(&billed, &mut out);
                out.freeze()
            }
        }
    }

    /// The provider failed midway: the closing error event in the caller's protocol.
    fn fail(&mut self, err: &ApiError) -> Bytes {
        match &mut self.mode {
            Mode::Passthrough { dialect, .. } => dialect.error_event(err),
            Mode::Responses(tap) => tap.failed_event(err),
            Mode::Bytes(_) => {
                self.broken = Some(BodyError::broken(err.message.clone()));
                Bytes::new()
            }
            Mode::Transcode { encoder, .. } => {
                let mut out = BytesMut::new();
                encoder.error(err, &mut out);
                out.freeze()
            }
        }
    }

    fn pass(&mut self, chunk: &[u8]) -> Bytes {
        let Mode::Passthrough { parser, dialect } = &mut self.mode else {
            return Bytes::new();
        };
        let events = parser.push(chunk);
        let oversized = parser.pending() > crate::codec::MAX_EVENT_BYTES;
        let seen: Vec<(SseEvent, Seen)> = events
            .into_iter()
            .map(|ev| {
                let s = dialect.see(&ev);
                (ev, s)
            })
            .collect();
        let mut out = BytesMut::new();
        let mut only_whole = seen.len() == 1 && !oversized;
        let mut broken = None;
        for (ev, seen) in seen {
            self.output_bytes += seen.output_bytes;
            if let Some(reason) = seen.finish {
                self.note_finish(reason);
            }
            if seen.usage.is_some() {
                self.usage = seen.usage;
            }
            let failed = match seen.end {
                Some(End::Broken(e)) => {
                    broken = Some(e);
                    break;
                }
                Some(End::Complete) => {
                    self.complete = true;
                    // Settled (journaled) before the caller can see the end.
                    self.settle(Outcome::Complete);
                    None
                }
                Some(End::Failed(e)) => Some(e),
                None => None,
            };
            if seen.keep {
                if only_whole && failed.is_none() {
                    return ev.raw;
                }
                out.extend_from_slice(&ev.raw);
            }
            only_whole = false;
            if let Some(e) = failed {
                // The provider's error event ends its stream; the caller has it as sent.
                self.finished = true;
                self.settle(Outcome::Failed(e));
                return out.freeze();
            }
        }
        if broken.is_none() && oversized {
            broken = Some(ApiError::provider(
                "The provider sent a stream event larger than Hub accepts.",
            ));
        }
        if let Some(e) = broken {
            out.extend_from_slice(&self.fail(&e));
            self.finished = true;
            self.settle(Outcome::Failed(e));
        }
        out.freeze()
    }

    /// Records a finish reason on the call's trace (`gen_ai.response.finish_reasons`).
    fn note_finish(&mut self, reason: String) {
        if let Some(t) = self.meter.as_mut().and_then(|m| m.trace.as_mut()) {
            t.finish_reasons.push(reason);
        }
    }

    fn settle(&mut self, outcome: Outcome) -> Option<Billed> {
        let mut meter = self.meter.take()?;
        if meter.ttfb_ms.is_none() && self.output_bytes > 0 {
            meter.ttfb_ms = Some(meter.elapsed_ms());
        }
        let complete = outcome == Outcome::Complete;
        let billed = meter.finish(self.usage, self.output_bytes, outcome);
        if complete && self.record.is_some() {
            self.completed = Some((billed, meter.hub, meter.route));
        }
        Some(billed)
    }

    /// Output the caller gets, recorded for the cache; once the provider's
    /// stream is over and the call settled complete, the answer is kept.
    fn record(&mut self, out: &[u8]) {
        if let Some((r, _)) = self.record.as_mut() {
            r.push(out);
        }
    }

    /// The provider's stream is over: its answer is kept if it completed
    /// (a failed or cut-short stream never is).
    fn keep_if_complete(&mut self) {
        let record = self.record.take();
        if let (Some((recorder, content_type)), Some((billed, hub, route))) = (record, self.completed.take()) {
            recorder.keep(&hub, &route, &billed, content_type);
        }
    }
}

/// What the provider had ready for one poll.
enum Ready {
    Chunk(Bytes),
    /// The provider's stream is over (ended or failed): the last output.
    Ended(Bytes),
    Waiting,
}

impl Relay {
    fn poll_provider(&mut self, cx: &mut Context<'_>) -> Ready {
        if let Some(first) = self.first.take() {
            return Ready::Chunk(first);
        }
        match self.upstream.as_mut().poll_next(cx) {
            Poll::Pending => Ready::Waiting,
            Poll::Ready(Some(Ok(chunk))) => Ready::Chunk(chunk),
            Poll::Ready(Some(Err(e))) => {
                self.finished = true;
                let err = super::failover::body_failure(&e);
                self.settle(Outcome::Failed(err.clone()));
                Ready::Ended(self.fail(&err))
            }
            Poll::Ready(None) => Ready::Ended(self.provider_ended()),
        }
    }

    /// The provider closed its stream: the caller's last events, and the
    /// settlement (failed if the provider never said it was done).
    fn provider_ended(&mut self) -> Bytes {
        let tail = self.end();
        if self.complete || self.finished {
            self.finished = true;
            self.settle(Outcome::Complete);
            return tail;
        }
        // Cut short: the connection ended before the provider said it was done.
        let err = ApiError::provider("The provider's stream failed: it ended before it was complete.");
        self.finished = true;
        let mut out = BytesMut::from(&tail[..]);
        out.extend_from_slice(&self.fail(&err));
        self.settle(Outcome::Failed(err));
        out.freeze()
    }
}

/// Scheduler turns held output waits for more before it goes out.
const HOLD_TURNS: u8 = 3;

/// Largest chunk the relay hands on at once when several are already waiting.
const GATHER_MAX: usize = 16 * 1024;

/// Output gathered in one poll: one chunk as is, several joined.
#[derive(Default)]
struct Gather {
    one: Option<Bytes>,
    many: BytesMut,
}

impl Gather {
    fn push(&mut self, b: Bytes) {
        if b.is_empty() {
            return;
        }
        if self.one.is_none() && self.many.is_empty() {
            self.one = Some(b);
            return;
        }
        if let Some(first) = self.one.take() {
            self.many.extend_from_slice(&first);
        }
        self.many.extend_from_slice(&b);
    }

    fn len(&self) -> usize {
        self.one.as_ref().map_or(self.many.len(), Bytes::len)
    }

    fn into_bytes(self) -> Bytes {
        self.one.unwrap_or_else(|| self.many.freeze())
    }
}

impl Stream for Relay {
    type Item = Result<Bytes, BodyError>;

    /// Hands on everything the provider has sent so far (never waiting for
    /// more), so a burst of events costs the client one write, not one each.
    ///
    /// A provider's body arrives one chunk per turn of its connection's task
    /// (the HTTP client decodes a chunk only once the last one was taken, and
    /// hands it over two scheduler turns later). So when output is waiting
    /// and the provider has nothing ready, the relay holds it for up to
    /// `HOLD_TURNS` turns of the scheduler before handing it on: a burst
    /// already read from the socket is gathered into one write instead of one
    /// per event, and a chunk that is alone waits a few microseconds for the
    /// scheduler, never for the network.
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.finished && this.held.len() == 0 {
            return Poll::Ready(this.broken.take().map(Err));
        }
        let mut out = std::mem::take(&mut this.held);
        // The first output goes out alone, so the first token is never held
        // back; after it, chunks that are already waiting share one write.
        let first_output = this.meter.as_ref().is_some_and(|m| m.ttfb_ms.is_none());
        let limit = if first_output { 1 } else { GATHER_MAX };
        let mut took = false;
        while out.len() < limit && !this.finished {
            match this.poll_provider(cx) {
                Ready::Waiting => break,
                Ready::Ended(tail) => {
                    this.record(&tail);
                    out.push(tail);
                    break;
                }
                Ready::Chunk(chunk) => {
                    took = true;
                    let processed = this.process(&chunk);
                    if let Some(t) = this.meter.as_mut().and_then(|m| m.trace.as_mut()) {
                        t.capture_completion(&processed);
                    }
                    this.record(&processed);
                    out.push(processed);
                }
            }
        }
        if this.finished {
            this.keep_if_complete();
        }
        if out.len() == 0 {
            return if this.finished {
                Poll::Ready(this.broken.take().map(Err))
            } else {
                Poll::Pending
            };
        }
        this.idle_turns = if took { 0 } else { this.idle_turns + 1 };
        if this.idle_turns < HOLD_TURNS && !first_output && !this.finished && out.len() < limit {
            // More may be a turn or two away: hold this and come back right after.
            this.held = out;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if let Some(m) = this.meter.as_mut() {
            if m.ttfb_ms.is_none() {
                m.ttfb_ms = Some(m.elapsed_ms());
            }
        }
        Poll::Ready(Some(Ok(out.into_bytes())))
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        // Dropped before the end: the client went away. Dropping `upstream`
        // right after this closes the provider connection too.
        self.settle(Outcome::ClientGone);
    }
}
