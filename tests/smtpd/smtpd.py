"""A real SMTP server (aiosmtpd) for hub-mail's tests.

Listens on 127.0.0.1 on a free port, appends every message it accepts to
--out as one JSON line (envelope sender, recipients, raw data, whether the
session was encrypted, who authenticated, and the headers and bodies as
Python's own mail parser decodes them), prints `ready PORT` once it
listens, and exits when its stdin closes (the test's guard closes it).

    smtpd.py --out FILE [--auth USER:PASSWORD] [--auth-over-plain]
             [--starttls CERT KEY | --implicit-tls CERT KEY]
"""

import argparse
import asyncio
import email
import email.policy
import json
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Recorder:
    def __init__(self, path):
        self.path = path

    async def handle_DATA(self, server, session, envelope):
        encrypted = session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None
        user = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "data": envelope.original_content.decode("utf-8", "replace"),
            "tls": encrypted,
            "user": user,
            **decoded(envelope.original_content),
        }
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        return "250 OK"


def decoded(raw):
    """Headers and bodies as a mail client would show them (RFC 2047 words
    decoded, transfer encodings undone), from the standard library's parser."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    plain = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    return {
        "header_names": [name.lower() for name in message.keys()],
        "subject": str(message["subject"]),
        "from": str(message["from"]),
        "to": str(message["to"]),
        "message_id": str(message["message-id"]),
        "date": str(message["date"]),
        "date_parses": message["date"].datetime is not None,
        "text": text_of(plain),
        "html": text_of(html),
        "defects": [type(d).__name__ for part in message.walk() for d in part.defects],
    }


def text_of(part):
    # Lines end in CRLF on the wire; a reader shows line breaks.
    return part.get_content().replace("\r\n", "\n") if part is not None else None


def authenticator_for(expected):
    user, password = expected.split(":", 1)

    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == user
            and auth_data.password.decode() == password
        )
        if ok:
            return AuthResult(success=True, auth_data=auth_data)
        # handled=False: aiosmtpd answers 535 itself.
        return AuthResult(success=False, handled=False)

    return authenticate


def tls_context(cert, key):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--auth")
    parser.add_argument("--auth-over-plain", action="store_true")
    parser.add_argument("--starttls", nargs=2, metavar=("CERT", "KEY"))
    parser.add_argument("--implicit-tls", nargs=2, metavar=("CERT", "KEY"))
    args = parser.parse_args()

    options = {"hostname": "smtp.test", "auth_require_tls": not args.auth_over_plain}
    if args.auth:
        options["authenticator"] = authenticator_for(args.auth)
        options["auth_required"] = True
    if args.starttls:
        options["tls_context"] = tls_context(*args.starttls)
        options["require_starttls"] = True
    implicit = tls_context(*args.implicit_tls) if args.implicit_tls else None

    loop = asyncio.get_running_loop()
    handler = Recorder(args.out)
    server = await loop.create_server(lambda: SMTP(handler, loop=loop, **options), "127.0.0.1", 0, ssl=implicit)
    print(f"ready {server.sockets[0].getsockname()[1]}", flush=True)

    # Runs until the test closes our stdin (or dies, which closes it too).
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
