//! The few protobuf messages of OTLP/HTTP Hub sends, written by hand: a
//! varint, a length-delimited field and a fixed64 are all the encoding needs,
//! so no protobuf crate is pulled into every runtime (the Worker included).
//! Field numbers are those of `opentelemetry/proto` (trace/v1, metrics/v1,
//! common/v1, resource/v1).

/// One message being written.
#[derive(Default)]
pub struct Msg(Vec<u8>);

impl Msg {
    pub fn new() -> Msg {
        Msg(Vec::new())
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    fn key(&mut self, field: u32, wire: u8) {
        varint(&mut self.0, (u64::from(field) << 3) | u64::from(wire));
    }

    pub fn uint(&mut self, field: u32, v: u64) -> &mut Self {
        if v != 0 {
            self.key(field, 0);
            varint(&mut self.0, v);
        }
        self
    }

    pub fn int(&mut self, field: u32, v: i64) -> &mut Self {
        self.uint(field, v as u64)
    }

    pub fn bool(&mut self, field: u32, v: bool) -> &mut Self {
        self.uint(field, u64::from(v))
    }

    pub fn fixed64(&mut self, field: u32, v: u64) -> &mut Self {
        self.key(field, 1);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn double(&mut self, field: u32, v: f64) -> &mut Self {
        self.fixed64(field, v.to_bits())
    }

    pub fn fixed32(&mut self, field: u32, v: u32) -> &mut Self {
        self.key(field, 5);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn bytes(&mut self, field: u32, v: &[u8]) -> &mut Self {
        self.key(field, 2);
        varint(&mut self.0, v.len() as u64);
        self.0.extend_from_slice(v);
        self
    }

    pub fn str(&mut self, field: u32, v: &str) -> &mut Self {
        self.bytes(field, v.as_bytes())
    }

    pub fn msg(&mut self, field: u32, m: &Msg) -> &mut Self {
        self.bytes(field, &m.0)
    }

    /// A packed repeated fixed64 (histogram bucket counts).
    pub fn packed_fixed64(&mut self, field: u32, vs: impl ExactSizeIterator<Item = u64>) -> &mut Self {
        self.key(field, 2);
        varint(&mut self.0, vs.len() as u64 * 8);
        for v in vs {
            self.0.extend_from_slice(&v.to_le_bytes());
        }
        self
    }

    /// A packed repeated double (histogram bounds).
    pub fn packed_double(&mut self, field: u32, vs: impl ExactSizeIterator<Item = f64>) -> &mut Self {
        self.packed_fixed64(field, vs.map(f64::to_bits))
    }
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// An attribute's value (`common.v1.AnyValue`).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Double(f64),
    Bool(bool),
    Strs(Vec<String>),
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Double(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

fn any_value(v: &Value) -> Msg {
    let mut m = Msg::new();
    match v {
        Value::Str(s) => m.str(1, s),
        // A false bool and a zero int are still set: write the field itself.
        Value::Bool(b) => {
            m.key(2, 0);
            varint(&mut m.0, u64::from(*b));
            &mut m
        }
        Value::Int(i) => {
            m.key(3, 0);
            varint(&mut m.0, *i as u64);
            &mut m
        }
        Value::Double(d) => m.double(4, *d),
        Value::Strs(items) => {
            let mut array = Msg::new();
            for s in items {
                array.msg(1, Msg::new().str(1, s));
            }
            m.msg(5, &array)
        }
    };
    m
}

/// Attributes (`repeated common.v1.KeyValue`) as field `field` of `m`.
pub fn attributes(m: &mut Msg, field: u32, attrs: &[(&str, Value)]) {
    for (key, value) in attrs {
        let mut kv = Msg::new();
        kv.str(1, key).msg(2, &any_value(value));
        m.msg(field, &kv);
    }
}

/// The resource every export names: the service and Hub's version.
pub fn resource(service_name: &str) -> Msg {
    let mut r = Msg::new();
    attributes(
        &mut r,
        1,
        &[
            ("service.name", service_name.into()),
            ("service.version", env!("CARGO_PKG_VERSION").into()),
        ],
    );
    r
}

/// The instrumentation scope of everything Hub exports.
pub fn scope() -> Msg {
    let mut s = Msg::new();
    s.str(1, "hub").str(2, env!("CARGO_PKG_VERSION"));
    s
}

/// `ExportTraceServiceRequest` of already encoded `trace.v1.Span`s.
pub fn trace_request(service_name: &str, spans: &[Vec<u8>]) -> Vec<u8> {
    let mut scope_spans = Msg::new();
    scope_spans.msg(1, &scope());
    for span in spans {
        scope_spans.bytes(2, span);
    }
    let mut resource_spans = Msg::new();
    resource_spans.msg(1, &resource(service_name)).msg(2, &scope_spans);
    let mut req = Msg::new();
    req.msg(1, &resource_spans);
    req.into_bytes()
}

/// `ExportMetricsServiceRequest` of already encoded `metrics.v1.Metric`s.
pub fn metrics_request(service_name: &str, metrics: &[Msg]) -> Vec<u8> {
    let mut scope_metrics = Msg::new();
    scope_metrics.msg(1, &scope());
    for metric in metrics {
        scope_metrics.msg(2, metric);
    }
    let mut resource_metrics = Msg::new();
    resource_metrics.msg(1, &resource(service_name)).msg(2, &scope_metrics);
    let mut req = Msg::new();
    req.msg(1, &resource_metrics);
    req.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_fields_follow_the_wire_format() {
        let mut m = Msg::new();
        m.uint(1, 150);
        assert_eq!(m.into_bytes(), [0x08, 0x96, 0x01]);
        let mut m = Msg::new();
        m.str(2, "testing");
        assert_eq!(m.into_bytes(), b"\x12\x07testing");
        let mut m = Msg::new();
        m.fixed64(7, 1);
        assert_eq!(m.into_bytes(), [0x39, 1, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn zero_valued_attributes_are_still_written() {
        let v = any_value(&Value::Int(0)).into_bytes();
        assert_eq!(v, [0x18, 0x00]);
    }
}
