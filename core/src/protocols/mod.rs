//! Inbound wire protocols: parsing and validating what callers send, and
//! rendering what they receive. One module per protocol.

pub mod aigne;
pub mod anthropic;
pub mod openai;
pub mod responses;
pub mod splice;

use crate::error::ApiError;

/// The largest output budget (`max_tokens` and its peers) a caller may ask
/// for: far above any model's real limit, and small enough that the worst
/// case of a request (budget × `n` × any rate) is exact when Hub sizes the
/// hold and the key's token and spend limits from it.
pub const MAX_OUTPUT_TOKENS: u64 = u32::MAX as u64;

/// A requested output budget, refused (400 naming `field`) above `MAX_OUTPUT_TOKENS`.
pub(crate) fn output_budget(field: &str, tokens: Option<u64>) -> Result<Option<u64>, ApiError> {
    match tokens {
        Some(t) if t > MAX_OUTPUT_TOKENS => Err(ApiError::invalid_field(
            field,
            format!("must be at most {MAX_OUTPUT_TOKENS}"),
        )),
        other => Ok(other),
    }
}

/// A body that is not a JSON object.
pub fn invalid_json() -> ApiError {
    ApiError::bad_request(
        "We could not parse the JSON body of your request. The body must be a JSON object (see the API reference).",
    )
}

/// A request body read into `T` in one pass; a refusal names the field
/// (`messages[2].content`) in words a caller reads: "must be a string, not a
/// number", "is required", "must be one of …".
pub(crate) fn parse_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(refusal)?;
    de.end().map_err(|_| invalid_json())?;
    Ok(value)
}

fn refusal(e: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    if !inner.is_data() {
        return invalid_json();
    }
    // serde_json appends the position; the path says more to a caller.
    let text = inner.to_string();
    let text = text.rsplit_once(" at line ").map_or(text.as_str(), |(t, _)| t);
    if let Some(field) = text.strip_prefix("missing field `").and_then(|f| f.strip_suffix('`')) {
        let at = if path == "." {
            field.to_string()
        } else {
            format!("{path}.{field}")
        };
        return ApiError::invalid_field(&at, "is required");
    }
    if path == "." {
        // The body itself is not an object.
        return invalid_json();
    }
    ApiError::invalid_field(&path, describe(text))
}

/// serde's wording ("invalid type: string \"x\", expected f64") as Hub's.
fn describe(text: &str) -> String {
    if let Some((got, wanted)) = text
        .strip_prefix("invalid type: ")
        .and_then(|t| t.split_once(", expected "))
    {
        return format!("must be {}, not {}", expected(wanted), kind_word(got));
    }
    if let Some((_, wanted)) = text
        .strip_prefix("invalid value: ")
        .and_then(|t| t.split_once(", expected "))
    {
        return format!("must be {}", expected(wanted));
    }
    if let Some((got, wanted)) = text
        .strip_prefix("unknown variant ")
        .and_then(|t| t.split_once(", expected "))
    {
        let wanted = wanted.trim_start_matches("one of ").replace('`', "");
        return format!("must be one of {wanted} (got {got})");
    }
    format!("is invalid: {text}")
}

/// What serde says it expected, in Hub's words.
fn expected(wanted: &str) -> &str {
    match wanted {
        "f64" | "f32" | "a JSON number" => "a number",
        "u64" | "u32" | "usize" | "i64" | "i32" => "an integer",
        "a sequence" => "an array",
        "a map" | "a JSON object" => "an object",
        w if w.starts_with("struct ") => "an object",
        w => w,
    }
}

/// What serde says it found ("string \"hot\"", "integer `1`"), as a JSON kind.
fn kind_word(got: &str) -> &str {
    match got.split([' ', '`']).next().unwrap_or(got) {
        "string" | "character" => "a string",
        "integer" | "floating" => "a number",
        "boolean" => "a boolean",
        "sequence" => "an array",
        "map" => "an object",
        "null" | "unit" => "null",
        other => other,
    }
}

/// A member that is either a string or a list (OpenAI's `content`, `stop`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum StrOrList<T> {
    Str(String),
    List(Vec<T>),
}

/// A member that is either a string or an object (OpenAI's `tool_choice`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum StrOrObject<T> {
    Str(String),
    Object(T),
}

struct StrOrVisitor<T>(&'static str, std::marker::PhantomData<T>);

impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for StrOrVisitor<StrOrList<T>> {
    type Value = StrOrList<T>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(self.0)
    }
    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Self::Value, E> {
        Ok(StrOrList::Str(s.to_owned()))
    }
    fn visit_string<E: serde::de::Error>(self, s: String) -> Result<Self::Value, E> {
        Ok(StrOrList::Str(s))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        // Through the caller's SeqAccess, so a bad element's index is in the path.
        serde::Deserialize::deserialize(serde::de::value::SeqAccessDeserializer::new(seq)).map(StrOrList::List)
    }
}

impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for StrOrVisitor<StrOrObject<T>> {
    type Value = StrOrObject<T>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(self.0)
    }
    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Self::Value, E> {
        Ok(StrOrObject::Str(s.to_owned()))
    }
    fn visit_string<E: serde::de::Error>(self, s: String) -> Result<Self::Value, E> {
        Ok(StrOrObject::Str(s))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(StrOrObject::Object)
    }
}

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for StrOrList<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrOrVisitor::<Self>("a string or an array", std::marker::PhantomData))
    }
}

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for StrOrObject<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrOrVisitor::<Self>("a string or an object", std::marker::PhantomData))
    }
}

/// A count that must be at least 1 (`max_tokens`, `n`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct Positive(pub u64);

impl<'de> serde::Deserialize<'de> for Positive {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Positive;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a positive integer")
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Positive, E> {
                match n {
                    0 => Err(E::invalid_value(serde::de::Unexpected::Unsigned(0), &self)),
                    n => Ok(Positive(n)),
                }
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Positive, E> {
                Err(E::invalid_value(serde::de::Unexpected::Signed(n), &self))
            }
            fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Positive, E> {
                Err(E::invalid_value(serde::de::Unexpected::Float(n), &self))
            }
        }
        d.deserialize_any(V)
    }
}

/// A JSON object read into typed members (all optional), keeping every other
/// member unchanged in `extra`, in one streaming pass. (`#[serde(flatten)]`
/// would buffer the object first, and lose the path of a bad member.)
macro_rules! open_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* $field:ident: $ty:ty = $key:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
        pub struct $name {
            $(
                $(#[$fmeta])*
                #[serde(rename = $key, skip_serializing_if = "Option::is_none")]
                pub $field: Option<$ty>,
            )*
            /// Members Hub does not read, passed on as they came.
            #[serde(flatten)]
            pub extra: serde_json::Map<String, serde_json::Value>,
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str("an object")
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<$name, A::Error> {
                        let mut out = $name::default();
                        while let Some(key) = map.next_key::<String>()? {
                            match key.as_str() {
                                $( $key => out.$field = map.next_value()?, )*
                                _ => {
                                    let v = map.next_value()?;
                                    out.extra.insert(key, v);
                                }
                            }
                        }
                        Ok(out)
                    }
                }
                d.deserialize_map(V)
            }
        }
    };
}
pub(crate) use open_struct;
