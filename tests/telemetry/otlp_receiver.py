"""An OTLP/HTTP receiver for Hub's telemetry tests: every export is decoded
with the OpenTelemetry protocol's own generated classes (`opentelemetry-proto`
1.45.2 from PyPI, in the repository's .venv-tools; see
scripts/install-test-tools), so a body that is not a valid
ExportTraceServiceRequest / ExportMetricsServiceRequest fails the test.

Listens on 127.0.0.1 (--port, or a free one), prints `ready PORT`, and
appends one JSON line per request to --out: the path, the content type,
the service name, and the spans or metrics it carried (ids in hex), or the
decoding error. It answers 400 to a body that does not decode, 503 while
told to fail, and 200 otherwise.

Commands on stdin, one per line, each acknowledged with `ok` on stdout:
    fail N             answer 503 to the next N exports
It exits when stdin closes (the test's guard closes it).
"""

import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

state = {"fail": 0}
lock = threading.Lock()


def value(v):
    """An AnyValue as plain JSON."""
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [value(x) for x in v.array_value.values]
    if kind is None:
        return None
    return getattr(v, kind)


def attrs(kvs):
    return {kv.key: value(kv.value) for kv in kvs}


def service(resource):
    return attrs(resource.attributes).get("service.name")


def spans(body):
    req = ExportTraceServiceRequest.FromString(body)
    out = []
    for rs in req.resource_spans:
        for ss in rs.scope_spans:
            for s in ss.spans:
                out.append({
                    "service": service(rs.resource),
                    "scope": ss.scope.name,
                    "trace_id": s.trace_id.hex(),
                    "span_id": s.span_id.hex(),
                    "parent_span_id": s.parent_span_id.hex(),
                    "name": s.name,
                    "kind": s.kind,
                    "start": s.start_time_unix_nano,
                    "end": s.end_time_unix_nano,
                    "attributes": attrs(s.attributes),
                    "events": [{"name": e.name, "attributes": attrs(e.attributes)} for e in s.events],
                    "status": s.status.code,
                })
    return out


def metrics(body):
    req = ExportMetricsServiceRequest.FromString(body)
    out = []
    for rm in req.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                d = MessageToDict(m, preserving_proto_field_name=True)
                d["service"] = service(rm.resource)
                out.append(d)
    return out


class Handler(BaseHTTPRequestHandler):
    out = None

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length)
        record = {"path": self.path, "content_type": self.headers.get("content-type")}
        status = 200
        try:
            if self.path.endswith("/v1/traces"):
                record["spans"] = spans(body)
            elif self.path.endswith("/v1/metrics"):
                record["metrics"] = metrics(body)
            else:
                status = 404
        except Exception as e:  # a body that is not the message it claims to be
            record["error"] = repr(e)
            status = 400
        with lock:
            if status == 200 and state["fail"] > 0:
                state["fail"] -= 1
                status = 503
            record["status"] = status
            with open(self.out, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        self.send_response(status)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def commands():
    for line in sys.stdin:
        parts = line.split()
        with lock:
            if parts[:1] == ["fail"]:
                state["fail"] = int(parts[1])
        print("ok", flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    Handler.out = args.out
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"ready {server.server_address[1]}", flush=True)
    commands()
    server.shutdown()


if __name__ == "__main__":
    main()
