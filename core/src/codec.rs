//! The two halves of a conversion: a provider's answer into [`Delta`]s
//! ([`Decode`]) and [`Delta`]s into the caller's protocol ([`Encode`]). Both are
//! stateful per stream: ids, tool-call indexes, open content blocks, and
//! usage that arrives in pieces.

use crate::chat::Delta;
use crate::error::ApiError;
use crate::metering::money::Credits;
use crate::metering::Usage;
use crate::sse::SseParser;
use bytes::BytesMut;

/// Reads a provider's streamed answer.
pub trait Decode: Send {
    /// Feeds the next bytes; appends the deltas they complete.
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<Delta>);
    /// The stream ended; flushes what is left.
    fn end(&mut self, out: &mut Vec<Delta>) {
        let _ = out;
    }
}

impl<D: Decode + ?Sized> Decode for Box<D> {
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<Delta>) {
        (**self).feed(bytes, out)
    }
    fn end(&mut self, out: &mut Vec<Delta>) {
        (**self).end(out)
    }
}

/// Writes a stream in the caller's protocol.
pub trait Encode: Send {
    fn delta(&mut self, d: &Delta, out: &mut BytesMut);
    /// The provider's stream ended normally: the usage billed (the provider's,
    /// or an estimate) and its cost.
    fn end(&mut self, billed: &Billed, out: &mut BytesMut);
    /// The provider failed midway: the closing error event.
    fn error(&mut self, e: &ApiError, out: &mut BytesMut);
}

/// What a finished call was billed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Billed {
    pub usage: Usage,
    pub credits: Credits,
}

/// What a caller-side writer needs to know about the call.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    pub call_id: String,
    /// The model as the caller named it.
    pub model: String,
    /// `provider/model` of the route that served it.
    pub model_with_provider: String,
    /// Unix seconds.
    pub created: i64,
    pub credit_prefix: String,
}

/// The largest single stream event Hub buffers; a provider sending more
/// without an event boundary has failed.
pub const MAX_EVENT_BYTES: usize = 8 * 1024 * 1024;

/// A decoder for SSE protocols: parses events, hands each `data:` payload
/// (with its `event:` name) to a function that turns it into deltas.
pub struct SseDecode<F> {
    parser: SseParser,
    on_event: F,
}

impl<F> SseDecode<F>
where
    F: FnMut(Option<&str>, &str, &mut Vec<Delta>) + Send,
{
    pub fn new(on_event: F) -> Self {
        SseDecode {
            parser: SseParser::new(),
            on_event,
        }
    }
}

impl<F> Decode for SseDecode<F>
where
    F: FnMut(Option<&str>, &str, &mut Vec<Delta>) + Send,
{
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<Delta>) {
        for ev in self.parser.push(bytes) {
            if !ev.data.is_empty() && ev.data != "[DONE]" {
                (self.on_event)(ev.event.as_deref(), &ev.data, out);
            }
        }
        if self.parser.pending() > MAX_EVENT_BYTES {
            out.push(Delta::Error(crate::error::ApiError::provider(
                "The provider sent a stream event larger than Hub accepts.",
            )));
        }
    }

    fn end(&mut self, out: &mut Vec<Delta>) {
        if self.parser.pending() > 0 {
            self.feed(b"\n\n", out);
        }
    }
}

/// Appends one SSE event: `data` serialised straight into `out`.
pub fn sse<T: serde::Serialize + ?Sized>(out: &mut BytesMut, event: Option<&str>, data: &T) {
    if let Some(name) = event {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\n");
    }
    out.extend_from_slice(b"data: ");
    // Writing into memory cannot fail, nor can serialising Hub's own events.
    let _ = serde_json::to_writer(WriteBytes(out), data);
    out.extend_from_slice(b"\n\n");
}

struct WriteBytes<'a>(&'a mut BytesMut);

impl std::io::Write for WriteBytes<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Decodes a whole stream at once (fixtures, tests).
pub fn decode_all(mut d: impl Decode, bytes: &[u8]) -> Vec<Delta> {
    let mut out = Vec::new();
    d.feed(bytes, &mut out);
    d.end(&mut out);
    out
}
