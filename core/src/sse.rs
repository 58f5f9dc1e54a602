//! Server-sent events: an incremental parser that buffers across chunk
//! boundaries and yields whole events, each with the exact bytes it came in,
//! so a relay can forward events untouched or drop one.

use bytes::{Bytes, BytesMut};

/// One complete event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The raw bytes of the event, including its terminating blank line.
    pub raw: Bytes,
    /// `data:` lines joined with `\n`.
    pub data: String,
    pub event: Option<String>,
}

#[derive(Debug, Default)]
pub struct SseParser {
    buf: BytesMut,
    /// Bytes of `buf` already scanned for an event end.
    scanned: usize,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes held back waiting for the rest of an event.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Feeds a chunk and returns the events it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Event> {
        self.buf.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some(end) = self.find_event_end() {
            let raw = self.buf.split_to(end).freeze();
            self.scanned = 0;
            if let Some(ev) = parse_event(raw) {
                events.push(ev);
            }
        }
        events
    }

    /// The index just past the first blank line (`\n\n`, `\r\n\r\n` or `\r\r`).
    fn find_event_end(&mut self) -> Option<usize> {
        let b = &self.buf[..];
        let start = self.scanned.saturating_sub(3);
        let mut i = start;
        // Jump from line end to line end (most bytes are JSON, not line ends).
        while let Some(off) = memchr::memchr2(b'\n', b'\r', &b[i..]) {
            i += off;
            // Line end at i; is the next line empty?
            let next = if b[i] == b'\r' && b.get(i + 1) == Some(&b'\n') {
                i + 2
            } else {
                i + 1
            };
            match b.get(next) {
                Some(b'\n') => return Some(next + 1),
                Some(b'\r') => {
                    return if b.get(next + 1) == Some(&b'\n') {
                        Some(next + 2)
                    } else if next + 1 < b.len() {
                        Some(next + 1)
                    } else {
                        // A lone `\r` at the end may yet be followed by `\n`.
                        self.scanned = i;
                        None
                    };
                }
                Some(_) => i = next,
                None => {
                    self.scanned = i;
                    return None;
                }
            }
        }
        self.scanned = b.len();
        None
    }
}

fn parse_event(raw: Bytes) -> Option<Event> {
    let text = std::str::from_utf8(&raw).ok()?;
    let mut data: Option<String> = None;
    let mut event = None;
    for line in text.split(['\n', '\r']).filter(|l| !l.is_empty()) {
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "data" => match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => data = Some(value.to_string()),
            },
            "event" => event = Some(value.to_string()),
            _ => {}
        }
    }
    Some(Event {
        raw,
        data: data.unwrap_or_default(),
        event,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_across_any_chunk_boundary() {
        let stream = b"data: {\"a\":1}\n\ndata: two\ndata: lines\n\n: comment\n\nevent: error\r\ndata: x\r\n\r\ndata: [DONE]\n\n";
        for cut in 0..stream.len() {
            for cut2 in cut..stream.len() {
                let mut p = SseParser::new();
                let mut evs = p.push(&stream[..cut]);
                evs.extend(p.push(&stream[cut..cut2]));
                evs.extend(p.push(&stream[cut2..]));
                let datas: Vec<&str> = evs.iter().map(|e| e.data.as_str()).collect();
                assert_eq!(
                    datas,
                    ["{\"a\":1}", "two\nlines", "", "x", "[DONE]"],
                    "cut at {cut}/{cut2}"
                );
                assert_eq!(evs[3].event.as_deref(), Some("error"));
                let raw: Vec<u8> = evs.iter().flat_map(|e| e.raw.to_vec()).collect();
                assert_eq!(raw, stream.to_vec());
                assert_eq!(p.pending(), 0);
            }
        }
    }

    #[test]
    fn holds_back_incomplete_event() {
        let mut p = SseParser::new();
        assert!(p.push(b"data: par").is_empty());
        assert_eq!(p.pending(), 9);
        let evs = p.push(b"tial\n\n");
        assert_eq!(evs[0].data, "partial");
    }
}
