"""A webhook endpoint for Hub's notification tests, verifying every delivery
with the Standard Webhooks reference library (`standardwebhooks` 1.1.0 from
PyPI, in the repository's .venv-tools; see scripts/install-test-tools).

Listens on 127.0.0.1 (--port, or a free one), prints `ready PORT`, and
appends one JSON line per request to --out: the webhook headers, the raw
body, whether the signature verified (and why not), and the status it
answered. It answers 400 to a delivery that does not verify, 500 while told
to fail, 410 while told to be gone, and 204 otherwise.

Commands on stdin, one per line, each acknowledged with `ok` on stdout:
    secret whsec_...   verify with this secret from now on
    fail N             answer 500 to the next N verified deliveries
    gone               answer 410 Gone from now on
It exits when stdin closes (the test's guard closes it).
"""

import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

state = {"secret": None, "fail": 0, "gone": False}
lock = threading.Lock()


def verdict(body, headers):
    """(verified, problem) for a delivery, by the reference library."""
    if state["secret"] is None:
        return False, "no secret yet"
    try:
        Webhook(state["secret"]).verify(body, headers)
        return True, None
    except WebhookVerificationError as e:
        return False, str(e)


class Handler(BaseHTTPRequestHandler):
    out = None

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length)
        headers = {k.lower(): v for k, v in self.headers.items()}
        with lock:
            ok, problem = verdict(body, headers)
            if not ok:
                status = 400
            elif state["gone"]:
                status = 410
            elif state["fail"] > 0:
                state["fail"] -= 1
                status = 500
            else:
                status = 204
            record = {
                "id": headers.get("webhook-id"),
                "timestamp": headers.get("webhook-timestamp"),
                "signature": headers.get("webhook-signature"),
                "content_type": headers.get("content-type"),
                "body": body.decode("utf-8", "replace"),
                "verified": ok,
                "problem": problem,
                "status": status,
            }
            with open(self.out, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def commands():
    for line in sys.stdin:
        parts = line.split()
        with lock:
            if parts[:1] == ["secret"]:
                state["secret"] = parts[1]
            elif parts[:1] == ["fail"]:
                state["fail"] = int(parts[1])
            elif parts[:1] == ["gone"]:
                state["gone"] = True
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
