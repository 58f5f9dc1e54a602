-- Routing: model aliases with fallbacks, and how equal-priority candidates
-- are ordered.
--  * An alias is a name callers use for an ordered list of targets
--    (`provider/model` or a bare model, each with optional parameter
--    overrides). `targets` is JSON: [{"model": "...", "overrides": {...}}].
--    `fallback_on_refusal`: a provider's content-policy refusal moves on to
--    the next target (off: the caller gets the refusal).
--  * `routing` (aliases and models): `priority` (the configured order),
--    `latency` (fastest first by time to first byte and error rate, as this
--    instance measured them) or `cost` (the provider's cheapest cost rate
--    first).
--  * The call log keeps the alias an attempt came through and the
--    provider's model the attempt asked for.
CREATE TABLE aliases (
  id                  TEXT PRIMARY KEY,
  name                TEXT NOT NULL UNIQUE,
  description         TEXT,
  targets             TEXT NOT NULL,
  routing             TEXT NOT NULL DEFAULT 'priority' CHECK (routing IN ('priority', 'latency', 'cost')),
  fallback_on_refusal INTEGER NOT NULL DEFAULT 0,
  enabled             INTEGER NOT NULL DEFAULT 1,
  created_at          INTEGER NOT NULL,
  updated_at          INTEGER NOT NULL
);

ALTER TABLE models ADD COLUMN routing TEXT NOT NULL DEFAULT 'priority' CHECK (routing IN ('priority', 'latency', 'cost'));

ALTER TABLE calls ADD COLUMN alias TEXT;
ALTER TABLE calls ADD COLUMN upstream_model TEXT;
