//! Audio: `POST /v1/audio/transcriptions` and `/v1/audio/translations`
//! (a multipart form in, text out; billed per second of audio, or per token
//! where the provider counts tokens) and `POST /v1/audio/speech` (text in,
//! audio streamed back as it arrives; billed per character). The AIGNE routes
//! `/api/v2/audio/*` run the same calls. Hold, failover and settlement are
//! the pipeline's.

use super::failover::Attempt;
use super::pipeline::{self, Exchange, Plan, Whole};
use super::relay::Mode;
use crate::auth::Caller;
use crate::codec::Meta;
use crate::config::{Route, Settings};
use crate::error::ApiError;
use crate::http::{Request, Response};
use crate::kinds::{Endpoint, ModelKind};
use crate::metering::estimate::PromptSize;
use crate::metering::Usage;
use crate::multipart::{self, Form};
use crate::ports::UpstreamRequest;
use crate::protocols::openai::json_object;
use crate::providers;
use crate::Hub;
use bytes::Bytes;
use serde_json::{Map, Value};
use std::sync::Arc;

/// The fewest bytes one second of audio takes in any format the providers
/// accept (Opus speech at 4 kbit/s): a file's size bounds its duration, and
/// so the hold and what a provider's report may be billed for.
const MIN_BYTES_PER_SECOND: u64 = 500;
/// Most input tokens a second of audio is counted as by a provider that
/// bills audio tokens (OpenAI counts about 10 to 17).
const AUDIO_TOKENS_PER_SECOND: u64 = 50;
/// Most text tokens a second of speech transcribes to.
const TEXT_TOKENS_PER_SECOND: u64 = 25;
/// Most characters OpenAI speaks in one request.
const MAX_SPEECH_CHARACTERS: usize = 4096;
/// Largest transcript read from a provider.
const MAX_TRANSCRIPT: usize = 16 * 1024 * 1024;

/// Speech to text, in the caller's language or into English.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    Transcribe,
    Translate,
}

impl Task {
    fn path(self) -> &'static str {
        match self {
            Task::Transcribe => "audio/transcriptions",
            Task::Translate => "audio/translations",
        }
    }

    fn endpoint(self) -> Endpoint {
        match self {
            Task::Transcribe => Endpoint::Transcriptions,
            Task::Translate => Endpoint::Translations,
        }
    }
}

/// The shapes a transcript is answered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    VerboseJson,
    DiarizedJson,
    /// Plain text: Hub asks the provider for JSON (which carries the usage) and answers its text.
    Text,
    Srt,
    Vtt,
}

impl Format {
    fn parse(s: Option<&str>, task: Task) -> Result<Format, ApiError> {
        Ok(match s.map(str::trim) {
            None | Some("") | Some("json") => Format::Json,
            Some("verbose_json") => Format::VerboseJson,
            Some("diarized_json") if task == Task::Transcribe => Format::DiarizedJson,
            Some("text") => Format::Text,
            Some("srt") => Format::Srt,
            Some("vtt") => Format::Vtt,
            Some(other) => {
                return Err(ApiError::invalid_field(
                    "response_format",
                    format!("must be json, text, srt, verbose_json or vtt (got `{other}`)"),
                ))
            }
        })
    }

    /// What Hub asks the provider for.
    fn upstream(self) -> &'static str {
        match self {
            Format::Json | Format::Text => "json",
            Format::VerboseJson => "verbose_json",
            Format::DiarizedJson => "diarized_json",
            Format::Srt => "srt",
            Format::Vtt => "vtt",
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Format::Json | Format::VerboseJson | Format::DiarizedJson => "application/json",
            Format::Text | Format::Srt => "text/plain; charset=utf-8",
            Format::Vtt => "text/vtt; charset=utf-8",
        }
    }
}

/// Audio runs only on OpenAI-compatible providers: refused for any other
/// before anything is held or sent (another candidate may take it).
fn openai_only(route: &Route, what: &str) -> Result<(), ApiError> {
    match route.provider.vendor.wire {
        providers::Wire::OpenAi => Ok(()),
        _ => Err(crate::chat::unsupported(route.provider.vendor.kind, what)),
    }
}

pub async fn transcriptions(
    hub: &Hub,
    caller: Arc<Caller>,
    req: Request,
    request_id: &str,
) -> Result<Response, ApiError> {
    audio_to_text(hub, caller, req, request_id, Task::Transcribe).await
}

pub async fn translations(
    hub: &Hub,
    caller: Arc<Caller>,
    req: Request,
    request_id: &str,
) -> Result<Response, ApiError> {
    audio_to_text(hub, caller, req, request_id, Task::Translate).await
}

async fn audio_to_text(
    hub: &Hub,
    caller: Arc<Caller>,
    req: Request,
    request_id: &str,
    task: Task,
) -> Result<Response, ApiError> {
    let form = multipart::parse(crate::http::header(req.headers(), "content-type"), req.body())?;
    let mut exchange = Transcribe::read(form, task, request_id)?;
    pipeline::run(hub, caller, &req, request_id, &mut exchange).await
}

/// A transcription or translation.
struct Transcribe {
    plan: Plan,
    task: Task,
    form: Form,
    format: Format,
    /// The most audio the file can hold, in milliseconds.
    audio_bound_ms: u64,
    /// Makes the boundary of the form sent to providers.
    seed: String,
}

impl Transcribe {
    /// Checks the caller's form as OpenAI does: a file, a model, known values.
    fn read(mut form: Form, task: Task, request_id: &str) -> Result<Transcribe, ApiError> {
        let file_bytes = match form.part("file") {
            Some(p) if p.filename.is_some() && !p.data.is_empty() => p.data.len() as u64,
            Some(p) if p.filename.is_some() => return Err(ApiError::invalid_field("file", "is empty")),
            Some(_) => {
                return Err(ApiError::invalid_field(
                    "file",
                    "must be a file (a form part with a filename)",
                ))
            }
            None => {
                return Err(ApiError::invalid_field(
                    "file",
                    "is required: attach the audio as a file",
                ))
            }
        };
        let model = match form.text("model")?.map(str::trim) {
            Some(m) if !m.is_empty() => m.to_string(),
            _ => return Err(ApiError::invalid_field("model", "is required: name the model to call")),
        };
        let format = Format::parse(form.text("response_format")?, task)?;
        check_fields(&form)?;
        form.set_text("response_format", format.upstream());
        let prompt_bytes = form.text("prompt")?.map_or(0, |p| p.len() as u64);
        let seconds = file_bytes.div_ceil(MIN_BYTES_PER_SECOND).max(1);
        let prompt = PromptSize {
            // The audio's tokens, for providers that count them, with the prompt's text.
            text_bytes: prompt_bytes + seconds * AUDIO_TOKENS_PER_SECOND,
            messages: 1,
            images: 0,
        };
        Ok(Transcribe {
            plan: Plan {
                endpoint: task.endpoint(),
                kind: ModelKind::Transcription,
                model,
                prompt,
                stream: false,
                answer_limit: MAX_TRANSCRIPT,
            },
            task,
            form,
            format,
            audio_bound_ms: seconds * 1000,
            seed: request_id
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .take(40)
                .collect(),
        })
    }
}

/// The optional fields Hub reads: right types, and no streaming (a streamed
/// transcript is not the answer Hub reads usage from).
fn check_fields(form: &Form) -> Result<(), ApiError> {
    if let Some(t) = form.text("temperature")? {
        if !t.trim().parse::<f64>().is_ok_and(|t| (0.0..=1.0).contains(&t)) {
            return Err(ApiError::invalid_field("temperature", "must be a number from 0 to 1"));
        }
    }
    if form.text("stream")?.is_some_and(|s| s.trim() != "false") {
        return Err(ApiError::invalid_field(
            "stream",
            "is not supported: transcripts are answered whole",
        ));
    }
    for field in ["language", "prompt"] {
        form.text(field)?;
    }
    Ok(())
}

impl Exchange for Transcribe {
    fn plan(&self) -> &Plan {
        &self.plan
    }

    fn worst_output(&self, _route: &Route, _settings: &Settings) -> Usage {
        let seconds = self.audio_bound_ms / 1000;
        Usage {
            output_tokens: seconds * TEXT_TOKENS_PER_SECOND + 1024,
            audio_ms: self.audio_bound_ms,
            ..Default::default()
        }
    }

    fn check(&mut self, route: &Route) -> Result<(), ApiError> {
        openai_only(route, "Audio transcription")
    }

    fn request(&mut self, hub: &Hub, at: &Attempt, _settings: &Settings) -> Result<UpstreamRequest, ApiError> {
        let target = at.target(hub, 1);
        self.form.set_text("model", target.model);
        providers::transcription_request(self.task.path(), &self.form, &self.seed, &target)
    }

    fn read(&self, _route: &Route, body: Bytes, _meta: &Meta) -> Result<Whole, ApiError> {
        let (body, usage) = transcript(self.format, body)?;
        Ok(Whole::Raw {
            body,
            usage,
            output_bytes: 0,
        })
    }

    fn content_type(&self) -> &'static str {
        self.format.content_type()
    }
}

/// The caller's transcript and its usage, from the provider's answer.
fn transcript(format: Format, body: Bytes) -> Result<(Bytes, Option<Usage>), ApiError> {
    match format {
        Format::Srt | Format::Vtt => {
            let text = std::str::from_utf8(&body)
                .map_err(|_| ApiError::provider("The provider's transcript is not UTF-8."))?;
            let usage = last_cue_end_ms(text).map(|audio_ms| Usage {
                audio_ms,
                ..Default::default()
            });
            Ok((body, usage))
        }
        _ => {
            let answer: Value = serde_json::from_slice(&body)
                .map_err(|_| ApiError::provider("The provider's transcript is not JSON."))?;
            let usage = json_usage(&answer);
            if format == Format::Text {
                let text = answer["text"].as_str().unwrap_or_default();
                return Ok((Bytes::from(format!("{text}\n")), usage));
            }
            Ok((body, usage))
        }
    }
}

/// OpenAI's transcription usage: `{type: "tokens", input_tokens,
/// output_tokens}` or `{type: "duration", seconds}`; else a verbose
/// answer's `duration`.
fn json_usage(answer: &Value) -> Option<Usage> {
    let u = &answer["usage"];
    match u["type"].as_str() {
        Some("tokens") => Some(Usage {
            input_tokens: u["input_tokens"].as_u64().unwrap_or(0),
            output_tokens: u["output_tokens"].as_u64().unwrap_or(0),
            ..Default::default()
        }),
        Some("duration") => u["seconds"].as_f64().map(seconds_usage),
        _ => answer["duration"].as_f64().map(seconds_usage),
    }
}

/// Seconds as reported (a measurement, not money) to whole milliseconds; a
/// negative or absurd report becomes 0 or saturates, and is then cut to the
/// file's bound.
fn seconds_usage(seconds: f64) -> Usage {
    Usage {
        audio_ms: (seconds * 1000.0).round().max(0.0) as u64,
        ..Default::default()
    }
}

/// The end of the last cue of SubRip or WebVTT subtitles: how much audio they cover.
fn last_cue_end_ms(text: &str) -> Option<u64> {
    text.lines()
        .rev()
        .find_map(|l| l.split_once("-->").map(|(_, end)| end.trim()))
        .and_then(|end| timestamp_ms(end.split_whitespace().next()?))
}

/// `HH:MM:SS,mmm` (SRT), `HH:MM:SS.mmm` or `MM:SS.mmm` (WebVTT).
fn timestamp_ms(ts: &str) -> Option<u64> {
    let (clock, millis) = ts.split_once([',', '.'])?;
    let millis: u64 = millis.parse().ok().filter(|_| millis.len() == 3)?;
    let mut seconds = 0u64;
    for part in clock.split(':') {
        seconds = seconds.checked_mul(60)?.checked_add(part.parse().ok()?)?;
    }
    seconds.checked_mul(1000)?.checked_add(millis)
}

pub async fn speech(hub: &Hub, caller: Arc<Caller>, req: Request, request_id: &str) -> Result<Response, ApiError> {
    let body = json_object(req.body())?;
    let mut exchange = Speak::read(body)?;
    pipeline::run(hub, caller, &req, request_id, &mut exchange).await
}

/// Text to speech: the audio relayed as it arrives, billed per character.
struct Speak {
    plan: Plan,
    body: Value,
    characters: u64,
    content_type: &'static str,
}

impl Speak {
    fn read(body: Map<String, Value>) -> Result<Speak, ApiError> {
        let model = match body.get("model") {
            Some(Value::String(m)) if !m.trim().is_empty() => m.clone(),
            Some(Value::String(_)) | None | Some(Value::Null) => {
                return Err(ApiError::invalid_field("model", "is required: name the model to call"))
            }
            Some(_) => return Err(ApiError::invalid_field("model", "must be a string")),
        };
        let input = match body.get("input") {
            Some(Value::String(s)) if !s.is_empty() => s,
            Some(Value::String(_)) | None | Some(Value::Null) => {
                return Err(ApiError::invalid_field("input", "is required: the text to speak"))
            }
            Some(_) => return Err(ApiError::invalid_field("input", "must be a string")),
        };
        let characters = input.chars().count();
        if characters > MAX_SPEECH_CHARACTERS {
            return Err(ApiError::invalid_field(
                "input",
                format!("is longer than {MAX_SPEECH_CHARACTERS} characters"),
            ));
        }
        check_voice(&body)?;
        check_speed(&body)?;
        let content_type = speech_content_type(&body)?;
        let prompt = PromptSize {
            text_bytes: input.len() as u64,
            messages: 1,
            images: 0,
        };
        Ok(Speak {
            plan: Plan {
                endpoint: Endpoint::Speech,
                kind: ModelKind::Speech,
                model,
                prompt,
                stream: true,
                answer_limit: 0,
            },
            body: Value::Object(body),
            characters: characters as u64,
            content_type,
        })
    }
}

fn check_voice(body: &Map<String, Value>) -> Result<(), ApiError> {
    match body.get("voice") {
        Some(Value::String(v)) if !v.trim().is_empty() => Ok(()),
        Some(Value::Object(v)) if v.get("id").is_some_and(Value::is_string) => Ok(()),
        None | Some(Value::Null) => Err(ApiError::invalid_field("voice", "is required")),
        Some(_) => Err(ApiError::invalid_field("voice", "must be a voice name or {\"id\": …}")),
    }
}

fn check_speed(body: &Map<String, Value>) -> Result<(), ApiError> {
    match body.get("speed") {
        None | Some(Value::Null) => Ok(()),
        Some(v) if v.as_f64().is_some_and(|s| (0.25..=4.0).contains(&s)) => Ok(()),
        Some(_) => Err(ApiError::invalid_field("speed", "must be a number from 0.25 to 4")),
    }
}

/// The audio's content type, from the format asked for; a stream of events
/// (`stream_format: "sse"`) is refused: Hub relays audio, not events.
fn speech_content_type(body: &Map<String, Value>) -> Result<&'static str, ApiError> {
    match body.get("stream_format").and_then(Value::as_str) {
        None | Some("audio") => {}
        Some(_) => {
            return Err(ApiError::invalid_field(
                "stream_format",
                "must be `audio`: Hub streams the audio itself",
            ))
        }
    }
    match body.get("response_format") {
        None | Some(Value::Null) => Ok("audio/mpeg"),
        Some(Value::String(f)) => match f.as_str() {
            "mp3" => Ok("audio/mpeg"),
            "opus" => Ok("audio/opus"),
            "aac" => Ok("audio/aac"),
            "flac" => Ok("audio/flac"),
            "wav" => Ok("audio/wav"),
            "pcm" => Ok("audio/pcm"),
            other => Err(ApiError::invalid_field(
                "response_format",
                format!("must be mp3, opus, aac, flac, wav or pcm (got `{other}`)"),
            )),
        },
        Some(_) => Err(ApiError::invalid_field("response_format", "must be a string")),
    }
}

impl Exchange for Speak {
    fn plan(&self) -> &Plan {
        &self.plan
    }

    fn worst_output(&self, _route: &Route, _settings: &Settings) -> Usage {
        Usage {
            characters: self.characters,
            ..Default::default()
        }
    }

    fn check(&mut self, route: &Route) -> Result<(), ApiError> {
        openai_only(route, "Text to speech")
    }

    fn request(&mut self, hub: &Hub, at: &Attempt, _settings: &Settings) -> Result<UpstreamRequest, ApiError> {
        providers::speech_request(&self.body, &at.target(hub, 1))
    }

    fn read(&self, _route: &Route, _body: Bytes, _meta: &Meta) -> Result<Whole, ApiError> {
        Err(ApiError::internal("Speech is relayed, never read whole."))
    }

    fn relay(&self, _route: &Route, _meta: Meta) -> Option<(Mode, &'static str)> {
        let spoken = Usage {
            characters: self.characters,
            ..Default::default()
        };
        Some((Mode::Bytes(spoken), self.content_type))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtitles_tell_how_much_audio_they_cover() {
        let srt = "1\n00:00:00,000 --> 00:00:02,500\nHello\n\n2\n00:00:02,500 --> 00:01:03,250\nworld\n";
        assert_eq!(last_cue_end_ms(srt), Some(63_250));
        let vtt = "WEBVTT\n\n00:00.000 --> 00:04.120 align:start\nHi\n";
        assert_eq!(last_cue_end_ms(vtt), Some(4_120));
        assert_eq!(last_cue_end_ms("no cues"), None);
    }

    #[test]
    fn usage_is_read_as_openai_reports_it() {
        let tokens =
            serde_json::json!({"text": "x", "usage": {"type": "tokens", "input_tokens": 14, "output_tokens": 45}});
        let u = json_usage(&tokens).unwrap();
        assert_eq!((u.input_tokens, u.output_tokens, u.audio_ms), (14, 45, 0));
        let duration = serde_json::json!({"text": "x", "usage": {"type": "duration", "seconds": 9}});
        assert_eq!(json_usage(&duration).unwrap().audio_ms, 9_000);
        let verbose = serde_json::json!({"text": "x", "duration": 8.47});
        assert_eq!(json_usage(&verbose).unwrap().audio_ms, 8_470);
        assert_eq!(json_usage(&serde_json::json!({"text": "x"})), None);
    }
}
