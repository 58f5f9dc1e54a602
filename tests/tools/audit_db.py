#!/usr/bin/env python3
"""Audits a Hub database file directly, independently of Hub's code.

For every usage row, recomputes the call's cost from its tokens and the rates
of its model (as configured, and as recorded on the row) with exact integer
arithmetic; for every user, recomputes the balance from grants,
adjustments and expiries minus the recomputed cost of billed usage, and checks
the buckets of expiring credit against the ledger and the balance. Prints one JSON
object: {"problems": [...], "calls": {call_id: credits}, "users": {...}}.

Usage: audit_db.py <hub.db>
"""
import json
import sqlite3
import sys


def cost(row, rates):
    """Hub's billing formula: each count × its rate (nano-credits per
    million), summed, rounded half up once; images × the image rate."""
    inp, out, cache_read, cache_write, image = rates
    cache_read = inp if cache_read is None else cache_read
    cache_write = inp if cache_write is None else cache_write
    numerator = (
        row["input_tokens"] * inp
        + row["output_tokens"] * out
        + row["cache_read_tokens"] * cache_read
        + row["cache_write_tokens"] * cache_write
    )
    return (numerator + 500_000) // 1_000_000 + row["images"] * image


def audit_buckets(db):
    """Credits that expire: every expiring grant has its bucket, a bucket
    never holds more than its grant nor less than nothing, a user's buckets
    never hold more than their balance (nothing while it is below zero), and
    every expiry entry emptied its bucket and took at most what it granted."""
    if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'credit_buckets'").fetchone():
        return []
    problems = []
    buckets = {b["id"]: b for b in db.execute("SELECT * FROM credit_buckets")}
    for g in db.execute("SELECT * FROM ledger WHERE amount > 0 AND expires_at IS NOT NULL"):
        b = buckets.get(g["id"])
        if b is None:
            problems.append(f"grant {g['id']}: expires but has no bucket")
        elif (b["user_id"], b["amount"], b["expires_at"]) != (g["user_id"], g["amount"], g["expires_at"]):
            problems.append(f"bucket {g['id']}: not its grant's user, amount or expiry")
    for b in buckets.values():
        if not 0 <= b["remaining"] <= b["amount"]:
            problems.append(f"bucket {b['id']}: {b['remaining']} left of {b['amount']}")
        if b["taking"] != 0:
            problems.append(f"bucket {b['id']}: scratch column left at {b['taking']}")
    for e in db.execute("SELECT * FROM ledger WHERE kind = 'expiry'"):
        b = buckets.get(int(e["ref"].split(":", 1)[1])) if (e["ref"] or "").startswith("expiry:") else None
        if b is None:
            problems.append(f"expiry {e['id']}: no bucket (ref {e['ref']})")
        elif b["remaining"] != 0 or b["expired_at"] is None or not 0 < -e["amount"] <= b["amount"]:
            problems.append(f"expiry {e['id']}: bucket {b['id']} not emptied, or took {-e['amount']} of {b['amount']}")
    for u in db.execute(
        "SELECT u.id, u.balance, SUM(b.remaining) AS left FROM users u JOIN credit_buckets b ON b.user_id = u.id"
        " GROUP BY u.id"
    ):
        if u["left"] > max(u["balance"], 0):
            problems.append(f"user {u['id']}: buckets hold {u['left']}, the balance is {u['balance']}")
    return problems


def audit_spend_totals(db):
    """The running totals admission reads (key_spend, team_spend) against
    the key_events rows they total, where none was pruned."""
    problems = []
    if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'key_spend'").fetchone():
        return problems
    for r in db.execute(
        "SELECT k.key_id, k.grain, k.start, k.spent,"
        " (SELECT COALESCE(SUM(e.spent), 0) FROM key_events e WHERE e.key_id = k.key_id AND"
        "  CASE k.grain WHEN 'day' THEN e.at - e.at % 86400000"
        "  ELSE CAST(strftime('%s', e.at / 1000, 'unixepoch', 'start of month') AS INTEGER) * 1000 END = k.start) AS rows"
        " FROM key_spend k"
    ):
        if r["spent"] != r["rows"]:
            problems.append(f"key {r['key_id']}: {r['grain']} from {r['start']} totals {r['spent']}, its calls {r['rows']}")
    for r in db.execute(
        "SELECT t.team_id, t.period_start, t.spent,"
        " (SELECT COALESCE(SUM(e.spent), 0) FROM key_events e WHERE e.team_id = t.team_id AND e.team_period = t.period_start) AS rows"
        " FROM team_spend t"
    ):
        if r["spent"] != r["rows"]:
            problems.append(f"team {r['team_id']}: period from {r['period_start']} totals {r['spent']}, its calls {r['rows']}")
    return problems


def main(path):
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    db.row_factory = sqlite3.Row
    # One read transaction: every figure from the same snapshot, even while Hub writes.
    db.execute("BEGIN")
    problems = []
    configured = {}
    tiers = {}
    has_tiers = any(c[1] == "input_rate_above_200k" for c in db.execute("PRAGMA table_info(models)"))
    tier_columns = (
        ", m.input_rate_above_200k, m.output_rate_above_200k, m.cache_read_rate_above_200k,"
        " m.cache_write_rate_above_200k, m.long_context_threshold" if has_tiers else ""
    )
    for m in db.execute(
        "SELECT p.name AS provider, m.model, m.type, m.input_rate, m.output_rate, m.cache_read_rate,"
        " m.cache_write_rate, m.image_rate" + tier_columns + " FROM models m JOIN providers p ON p.id = m.provider_id"
    ):
        key = (f"{m['provider']}/{m['model']}", m["type"])
        configured[key] = (
            m["input_rate"], m["output_rate"], m["cache_read_rate"], m["cache_write_rate"], m["image_rate"])
        if has_tiers and m["input_rate_above_200k"] is not None:
            # A prompt past the threshold is billed wholly at the tier (its cache
            # rates default to the tier's input, its output to the model's).
            tier_in = m["input_rate_above_200k"]
            tiers[key] = (
                m["long_context_threshold"] or 200_000,
                (tier_in,
                 m["output_rate_above_200k"] if m["output_rate_above_200k"] is not None else m["output_rate"],
                 m["cache_read_rate_above_200k"] if m["cache_read_rate_above_200k"] is not None else tier_in,
                 m["cache_write_rate_above_200k"] if m["cache_write_rate_above_200k"] is not None else tier_in,
                 m["image_rate"]))

    calls = {}
    billed_cost = {}
    for u in db.execute("SELECT * FROM usage"):
        call = u["call_id"]
        recorded = (u["input_rate"], u["output_rate"], u["cache_read_rate"], u["cache_write_rate"], u["image_rate"])
        rates = configured.get((u["model"], u["type"]))
        tier = tiers.get((u["model"], u["type"]))
        if tier and u["input_tokens"] + u["cache_read_tokens"] + u["cache_write_tokens"] > tier[0]:
            rates = tier[1]
        if rates is None:
            problems.append(f"{call}: model {u['model']} ({u['type']}) is not configured")
            rates = recorded
        elif rates != recorded:
            problems.append(f"{call}: billed at {recorded}, the model's rates are {rates}")
        # A response-cache hit is billed its tokens' cost less what it saved.
        expected = cost(u, rates) - u["response_cache_saved"]
        if u["credits"] != expected:
            problems.append(f"{call}: usage row says {u['credits']} nano-credits, its tokens cost {expected}")
        if call in calls:
            problems.append(f"{call}: more than one usage row")
        calls[call] = expected
        if u["billed"]:
            billed_cost[u["user_id"]] = billed_cost.get(u["user_id"], 0) + expected

    ledger_usage = {}
    for e in db.execute("SELECT * FROM ledger WHERE kind = 'usage'"):
        call = e["call_id"]
        if call in ledger_usage:
            problems.append(f"{call}: more than one usage entry in the ledger")
        ledger_usage[call] = -e["amount"]
        if call not in calls:
            problems.append(f"{call}: a ledger usage entry without a usage row")
        elif calls[call] != -e["amount"]:
            problems.append(f"{call}: the ledger charged {-e['amount']}, its tokens cost {calls[call]}")
    for u in db.execute("SELECT call_id, credits FROM usage WHERE billed = 1 AND credits <> 0"):
        if u["call_id"] not in ledger_usage:
            problems.append(f"{u['call_id']}: billed usage never reached the ledger")

    users = {}
    for u in db.execute("SELECT id, balance, typeof(balance) AS t, held FROM users"):
        granted = db.execute(
            "SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE user_id = ? AND kind IN ('grant', 'adjustment', 'expiry')",
            (u["id"],),
        ).fetchone()[0]
        expected = granted - billed_cost.get(u["id"], 0)
        if u["t"] != "integer":
            problems.append(f"user {u['id']}: balance is stored as {u['t']}")
        if u["balance"] != expected:
            problems.append(f"user {u['id']}: balance {u['balance']}, grants − usage = {expected}")
        users[u["id"]] = {"balance": u["balance"], "granted": granted, "used": billed_cost.get(u["id"], 0)}
    problems += audit_buckets(db)
    problems += audit_spend_totals(db)
    open_holds = db.execute("SELECT COUNT(*) FROM holds WHERE state = 'open'").fetchone()[0]
    print(json.dumps({"problems": problems, "calls": calls, "users": users, "open_holds": open_holds}))


if __name__ == "__main__":
    main(sys.argv[1])
