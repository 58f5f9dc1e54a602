//! `multipart/form-data` (RFC 7578): read a caller's form whole, write one
//! for a provider. Bounded: the body itself is already capped by
//! `HUB_MAX_BODY_BYTES` (413 before this runs); here the number of parts, the
//! size of each part's headers and of every text field are capped, and any
//! malformed form is a 400 naming what is wrong. Pure byte handling, so it
//! runs on wasm32 too.

use crate::error::ApiError;
use bytes::{BufMut, Bytes, BytesMut};

/// Most parts a form may have.
const MAX_PARTS: usize = 64;
/// Most bytes of one part's headers.
const MAX_PART_HEADERS: usize = 8 * 1024;
/// Most bytes of a text field (a prompt, a language code); files are bounded by the body.
pub const MAX_TEXT_FIELD: usize = 64 * 1024;

/// One part of a form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub name: String,
    /// Set for a file part.
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub data: Bytes,
}

/// A form, its parts in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    pub parts: Vec<Part>,
}

impl Form {
    /// The first part named `name`.
    pub fn part(&self, name: &str) -> Option<&Part> {
        self.parts.iter().find(|p| p.name == name)
    }

    /// A text field's value: UTF-8, at most [`MAX_TEXT_FIELD`] bytes.
    pub fn text(&self, name: &str) -> Result<Option<&str>, ApiError> {
        let Some(p) = self.part(name) else { return Ok(None) };
        if p.filename.is_some() {
            return Err(ApiError::invalid_field(name, "must be a text field, not a file"));
        }
        if p.data.len() > MAX_TEXT_FIELD {
            return Err(ApiError::invalid_field(
                name,
                format!("is longer than {MAX_TEXT_FIELD} bytes"),
            ));
        }
        std::str::from_utf8(&p.data)
            .map(Some)
            .map_err(|_| ApiError::invalid_field(name, "must be UTF-8 text"))
    }

    /// Replaces the value of text field `name` (appended when absent).
    pub fn set_text(&mut self, name: &str, value: &str) {
        let data = Bytes::copy_from_slice(value.as_bytes());
        match self.parts.iter_mut().find(|p| p.name == name) {
            Some(p) => p.data = data,
            None => self.parts.push(Part {
                name: name.to_string(),
                filename: None,
                content_type: None,
                data,
            }),
        }
    }

    /// Removes every part named `name`.
    pub fn remove(&mut self, name: &str) {
        self.parts.retain(|p| p.name != name);
    }

    /// The form as a body with a boundary none of its parts contains; returns
    /// the content type to send with it.
    pub fn encode(&self, seed: &str) -> (String, Bytes) {
        let mut boundary = format!("----hub-form-{seed}");
        while self.parts.iter().any(|p| contains(&p.data, boundary.as_bytes())) {
            boundary.push('x');
        }
        let mut out = BytesMut::with_capacity(self.parts.iter().map(|p| p.data.len() + 200).sum::<usize>() + 64);
        for p in &self.parts {
            out.put_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"",
                    quote(&p.name)
                )
                .as_bytes(),
            );
            if let Some(f) = &p.filename {
                out.put_slice(format!("; filename=\"{}\"", quote(f)).as_bytes());
            }
            out.put_slice(b"\r\n");
            if let Some(ct) = &p.content_type {
                out.put_slice(format!("Content-Type: {ct}\r\n").as_bytes());
            }
            out.put_slice(b"\r\n");
            out.put_slice(&p.data);
            out.put_slice(b"\r\n");
        }
        out.put_slice(format!("--{boundary}--\r\n").as_bytes());
        (format!("multipart/form-data; boundary={boundary}"), out.freeze())
    }
}

/// A name or file name in a quoted header parameter: quotes and line breaks escaped.
fn quote(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "%22")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(hay, needle).is_some()
}

/// The boundary of a `multipart/form-data` content type.
fn boundary_of(content_type: Option<&str>) -> Result<String, ApiError> {
    let bad = || {
        ApiError::bad_request("The body must be multipart/form-data with a boundary (send the file as a form).")
            .with_code("invalid_content_type")
    };
    let ct = content_type.ok_or_else(bad)?;
    let mut params = ct.split(';');
    if !params
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("multipart/form-data"))
    {
        return Err(bad());
    }
    params
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
        .filter(|b| !b.is_empty() && b.len() <= 70)
        .ok_or_else(bad)
}

fn malformed(why: &str) -> ApiError {
    ApiError::bad_request(format!("The multipart body is malformed: {why}.")).with_code("invalid_multipart")
}

/// Reads a whole form.
pub fn parse(content_type: Option<&str>, body: &Bytes) -> Result<Form, ApiError> {
    let boundary = boundary_of(content_type)?;
    let delimiter = format!("--{boundary}");
    let d = delimiter.as_bytes();
    let start = memchr::memmem::find(body, d).ok_or_else(|| malformed("no part starts"))?;
    let mut pos = start + d.len();
    let closing = format!("\r\n{delimiter}");
    let finder = memchr::memmem::Finder::new(closing.as_bytes());
    let mut form = Form::default();
    loop {
        if body[pos..].starts_with(b"--") {
            return Ok(form);
        }
        // Transport padding after a delimiter, then its line break.
        while body.get(pos).is_some_and(|b| *b == b' ' || *b == b'\t') {
            pos += 1;
        }
        if !body[pos..].starts_with(b"\r\n") {
            return Err(malformed("a delimiter is not followed by a line break"));
        }
        pos += 2;
        if form.parts.len() == MAX_PARTS {
            return Err(malformed(&format!("more than {MAX_PARTS} parts")));
        }
        let end = finder
            .find(&body[pos..])
            .map(|i| pos + i)
            .ok_or_else(|| malformed("the last part has no closing delimiter"))?;
        form.parts.push(part(body.slice(pos..end))?);
        pos = end + 2 + d.len();
    }
}

/// One part: its headers, a blank line, its content.
fn part(raw: Bytes) -> Result<Part, ApiError> {
    let split = memchr::memmem::find(&raw, b"\r\n\r\n");
    let (head, data) = match split {
        Some(i) if i <= MAX_PART_HEADERS => (&raw[..i], raw.slice(i + 4..)),
        Some(_) => return Err(malformed("a part's headers are too long")),
        // A part with no headers but its blank line.
        None if raw.starts_with(b"\r\n") => (&raw[..0], raw.slice(2..)),
        None => return Err(malformed("a part has no blank line after its headers")),
    };
    let head = std::str::from_utf8(head).map_err(|_| malformed("a part's headers are not UTF-8"))?;
    let mut name = None;
    let mut filename = None;
    let mut content_type = None;
    for line in head.split("\r\n").filter(|l| !l.is_empty()) {
        let (key, value) = line
            .split_once(':')
            .ok_or_else(|| malformed("a part header has no colon"))?;
        if key.trim().eq_ignore_ascii_case("content-disposition") {
            name = disposition_param(value, "name");
            filename = disposition_param(value, "filename");
        } else if key.trim().eq_ignore_ascii_case("content-type") {
            content_type = Some(value.trim().to_string());
        }
    }
    let name = name.ok_or_else(|| malformed("a part has no Content-Disposition name"))?;
    Ok(Part {
        name,
        filename,
        content_type,
        data,
    })
}

/// A parameter of a `Content-Disposition: form-data; name="…"` header, quoted or not.
fn disposition_param(value: &str, key: &str) -> Option<String> {
    let mut rest = value;
    while let Some(i) = rest.find(';') {
        rest = &rest[i + 1..];
        let trimmed = rest.trim_start();
        let Some((k, after)) = trimmed.split_once('=') else {
            continue;
        };
        if !k.trim().eq_ignore_ascii_case(key) {
            continue;
        }
        let after = after.trim_start();
        if let Some(quoted) = after.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = quoted.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => out.extend(chars.next()),
                    '"' => return Some(out),
                    c => out.push(c),
                }
            }
            return Some(out);
        }
        return Some(after.split(';').next().unwrap_or("").trim().to_string());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const CT: &str = "multipart/form-data; boundary=XyZ";

    fn body(s: &str) -> Bytes {
        Bytes::from(s.replace('\n', "\r\n"))
    }

    #[test]
    fn reads_fields_and_files_and_writes_them_back() {
        let b = body(
            "--XyZ\nContent-Disposition: form-data; name=\"model\"\n\nwhisper-1\n--XyZ\nContent-Disposition: form-data; name=\"file\"; filename=\"a \\\"b\\\".wav\"\nContent-Type: audio/wav\n\nRIFF\n--XY\n--XyZ--\n",
        );
        let form = parse(Some(CT), &b).unwrap();
        assert_eq!(form.text("model").unwrap(), Some("whisper-1"));
        let file = form.part("file").unwrap();
        assert_eq!(file.filename.as_deref(), Some("a \"b\".wav"));
        assert_eq!(file.content_type.as_deref(), Some("audio/wav"));
        assert_eq!(&file.data[..], b"RIFF\r\n--XY");
        assert!(form.text("file").is_err(), "a file is not a text field");
        let mut again = form.clone();
        again.set_text("model", "provider-model");
        let (ct, encoded) = again.encode("seed");
        let back = parse(Some(&ct), &encoded).unwrap();
        assert_eq!(back.text("model").unwrap(), Some("provider-model"));
        assert_eq!(back.part("file").unwrap().data, file.data);
    }

    #[test]
    fn the_written_boundary_never_occurs_in_a_part() {
        let mut form = Form::default();
        form.parts.push(Part {
            name: "file".into(),
            filename: Some("x".into()),
            content_type: None,
            data: Bytes::from_static(b"\r\n------hub-form-s--\r\n"),
        });
        let (ct, encoded) = form.encode("s");
        assert_eq!(parse(Some(&ct), &encoded).unwrap(), form);
    }

    #[test]
    fn malformed_forms_are_refused() {
        for (ct, b) in [
            (None, "x"),
            (Some("application/json"), "{}"),
            (Some("multipart/form-data"), "--a--"),
            (Some(CT), "no delimiter"),
            (
                Some(CT),
                "--XyZ\nContent-Disposition: form-data; name=\"a\"\n\nunterminated",
            ),
            (Some(CT), "--XyZ\nContent-Type: text/plain\n\nno name\n--XyZ--"),
            (
                Some(CT),
                "--XyZ\nContent-Disposition: form-data; name=\"a\"\nno blank line\n--XyZ--",
            ),
        ] {
            assert_eq!(parse(ct, &body(b)).unwrap_err().status.as_u16(), 400, "{b}");
        }
        let many: String = (0..=MAX_PARTS)
            .map(|i| format!("--XyZ\nContent-Disposition: form-data; name=\"f{i}\"\n\nv\n"))
            .collect::<String>()
            + "--XyZ--\n";
        assert!(parse(Some(CT), &body(&many)).unwrap_err().message.contains("parts"));
    }
}
