//! Editing one member of a JSON object in place: a pass-through body
//! reaches the provider byte for byte as the caller sent it, but for the
//! member Hub must change (the model name).

use bytes::{Bytes, BytesMut};

/// `body` (a JSON object, already parsed once, so known to be valid JSON)
/// with the value of its top-level member `key` replaced by `value`
/// (serialized JSON), or the member added at the end when it is absent.
/// None if `body` is not an object.
pub fn replace_member(body: &[u8], key: &str, value: &str) -> Option<Bytes> {
    let members = top_level_members(body)?;
    let mut out = BytesMut::with_capacity(body.len() + value.len());
    match members.iter().find(|m| m.key == key) {
        Some(m) => {
            out.extend_from_slice(&body[..m.value.0]);
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(&body[m.value.1..]);
        }
        None => {
            let close = body.iter().rposition(|&b| b == b'}')?;
            out.extend_from_slice(&body[..close]);
            if !members.is_empty() {
                out.extend_from_slice(b",");
            }
            let key = serde_json::to_string(key).ok()?;
            out.extend_from_slice(format!("{key}:{value}").as_bytes());
            out.extend_from_slice(&body[close..]);
        }
    }
    Some(out.freeze())
}

/// One member of an object: its key (unescaped) and where its value lies.
struct Member {
    key: String,
    value: (usize, usize),
}

fn top_level_members(body: &[u8]) -> Option<Vec<Member>> {
    let mut i = skip_ws(body, 0);
    if body.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(body, i + 1);
    let mut members = Vec::new();
    while body.get(i) == Some(&b'"') {
        let key_end = skip_string(body, i)?;
        let key: String = serde_json::from_slice(&body[i..key_end]).ok()?;
        i = skip_ws(body, key_end);
        if body.get(i) != Some(&b':') {
            return None;
        }
        let start = skip_ws(body, i + 1);
        let end = skip_value(body, start)?;
        members.push(Member {
            key,
            value: (start, end),
        });
        i = skip_ws(body, end);
        if body.get(i) == Some(&b',') {
            i = skip_ws(body, i + 1);
        }
    }
    (body.get(i) == Some(&b'}')).then_some(members)
}

fn skip_ws(body: &[u8], mut i: usize) -> usize {
    while matches!(body.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// The end (exclusive) of the string starting at `i` (its opening quote).
fn skip_string(body: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    loop {
        match body.get(i)? {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
}

/// The end (exclusive) of the value starting at `i`.
fn skip_value(body: &[u8], i: usize) -> Option<usize> {
    match body.get(i)? {
        b'"' => skip_string(body, i),
        b'{' | b'[' => skip_nested(body, i),
        _ => {
            let len = body[i..]
                .iter()
                .position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
                .unwrap_or(body.len() - i);
            (len > 0).then_some(i + len)
        }
    }
}

/// The end of an object or array: brackets counted outside strings.
fn skip_nested(body: &[u8], mut i: usize) -> Option<usize> {
    let mut depth = 0usize;
    loop {
        match body.get(i)? {
            b'"' => {
                i = skip_string(body, i)?;
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::replace_member;

    fn replaced(body: &str, value: &str) -> String {
        String::from_utf8(replace_member(body.as_bytes(), "model", value).unwrap().to_vec()).unwrap()
    }

    #[test]
    fn only_the_member_changes() {
        let body = r#"{ "system":[{"text":"a \"model\": {x}","cache_control":{"type":"ephemeral"}}],
            "model" : "claude" , "x":[1,{"model":"inner"}],"n":-1.5e3}"#;
        let out = replaced(body, r#""claude-sonnet-4""#);
        assert_eq!(
            out,
            body.replace(r#""model" : "claude""#, r#""model" : "claude-sonnet-4""#)
        );
    }

    #[test]
    fn an_escaped_key_is_the_same_key_and_a_missing_one_is_added() {
        assert_eq!(
            replaced(r#"{"mod\u0065l":"a","k":true}"#, r#""b""#),
            r#"{"mod\u0065l":"b","k":true}"#
        );
        assert_eq!(replaced(r#"{"k":null}"#, r#""b""#), r#"{"k":null,"model":"b"}"#);
        assert_eq!(replaced(r#"{}"#, r#""b""#), r#"{"model":"b"}"#);
        assert!(replace_member(b"[1]", "model", "1").is_none());
    }
}
