//! Reading admin JSON bodies with errors that name the field.

use crate::error::ApiError;
use crate::metering::money::{Credits, Rate};
use crate::store::Nullable;
use serde_json::{Map, Value};

pub struct Fields(pub Map<String, Value>);

impl Fields {
    pub fn parse(body: &[u8]) -> Result<Fields, ApiError> {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(m)) => Ok(Fields(m)),
            _ => Err(ApiError::bad_request("The request body must be a JSON object.")),
        }
    }

    /// 400 for any field not in `allowed` (typos should not be silently ignored).
    pub fn only(&self, allowed: &[&str]) -> Result<(), ApiError> {
        match self.0.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(ApiError::invalid_field(
                k,
                format!("is not a known field (expected one of: {})", allowed.join(", ")),
            )),
            None => Ok(()),
        }
    }

    pub fn has(&self, k: &str) -> bool {
        self.0.contains_key(k)
    }

    fn get(&self, k: &str) -> Option<&Value> {
        self.0.get(k).filter(|v| !v.is_null())
    }

    pub fn str(&self, k: &str) -> Result<Option<String>, ApiError> {
        match self.get(k) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
            Some(_) => Err(ApiError::invalid_field(k, "must be a string")),
        }
    }

    pub fn req_str(&self, k: &str) -> Result<String, ApiError> {
        match self.str(k)? {
            Some(s) if !s.is_empty() => Ok(s),
            _ => Err(ApiError::invalid_field(k, "is required")),
        }
    }

    pub fn bool(&self, k: &str) -> Result<Option<bool>, ApiError> {
        match self.get(k) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(ApiError::invalid_field(k, "must be true or false")),
        }
    }

    pub fn int(&self, k: &str, min: i64, max: i64) -> Result<Option<i64>, ApiError> {
        match self.get(k) {
            None => Ok(None),
            Some(v) => match v.as_i64() {
                Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
                _ => Err(ApiError::invalid_field(
                    k,
                    format!("must be an integer from {min} to {max}"),
                )),
            },
        }
    }

    pub fn rate(&self, k: &str) -> Result<Option<Rate>, ApiError> {
        match self.get(k) {
            None => Ok(None),
            Some(v) => {
                let r = Rate::from_json(v).map_err(|e| ApiError::invalid_field(k, e))?;
                if r.is_negative() {
                    return Err(ApiError::invalid_field(k, "must not be negative"));
                }
                Ok(Some(r))
            }
        }
    }

    pub fn credits(&self, k: &str) -> Result<Option<Credits>, ApiError> {
        match self.get(k) {
            None => Ok(None),
            Some(v) => Credits::from_json(v)
                .map(Some)
                .map_err(|e| ApiError::invalid_field(k, e)),
        }
    }

    /// The `routing` field: `priority`, `latency` or `cost`.
    pub fn routing(&self) -> Result<Option<crate::kinds::RoutingMode>, ApiError> {
        use crate::kinds::RoutingMode;
        match self.str("routing")? {
            None => Ok(None),
            Some(r) => RoutingMode::parse(&r)
                .map(Some)
                .ok_or_else(|| ApiError::invalid_field("routing", format!("must be {}", RoutingMode::names()))),
        }
    }

    pub fn object(&self, k: &str) -> Result<Option<Value>, ApiError> {
        match self.get(k) {
            None => Ok(None),
            Some(v @ Value::Object(_)) => Ok(Some(v.clone())),
            Some(_) => Err(ApiError::invalid_field(k, "must be an object")),
        }
    }

    pub fn strings(&self, k: &str) -> Result<Option<Vec<String>>, ApiError> {
        match self.get(k) {
            None => Ok(None),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| ApiError::invalid_field(k, "must be an array of strings"))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(ApiError::invalid_field(k, "must be an array of strings")),
        }
    }

    /// An ISO-8601 time or epoch milliseconds.
    pub fn time(&self, k: &str) -> Result<Option<i64>, ApiError> {
        match self.get(k) {
            None => Ok(None),
            Some(Value::String(s)) => crate::time::parse_time(s)
                .map(Some)
                .ok_or_else(|| ApiError::invalid_field(k, "must be an ISO-8601 time (2026-01-31T12:00:00Z)")),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| ApiError::invalid_field(k, "must be an ISO-8601 time")),
        }
    }

    /// For PATCH: a nullable field's change, when it is present (`null` clears it).
    pub fn nullable<T>(&self, k: &str, v: Option<T>) -> Nullable<T> {
        self.has(k).then_some(v)
    }
}
