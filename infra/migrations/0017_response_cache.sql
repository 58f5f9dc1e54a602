-- The response cache: answers to identical requests, kept until they
-- expire, within a size cap (both enforced by the prune_response_cache job).
-- `body` is the answer exactly as the caller received it (JSON, or the
-- server-sent events of a stream), replayed as it is on a hit.
CREATE TABLE response_cache (
  key          TEXT PRIMARY KEY,
  stream       INTEGER NOT NULL,
  content_type TEXT NOT NULL,
  body         TEXT NOT NULL,
  provider_id  TEXT NOT NULL,
  model        TEXT NOT NULL,
  usage        TEXT NOT NULL,
  bytes        INTEGER NOT NULL,
  created_at   INTEGER NOT NULL,
  expires_at   INTEGER NOT NULL
);
CREATE INDEX response_cache_expires ON response_cache (expires_at);
CREATE INDEX response_cache_created ON response_cache (created_at);

-- How a call used the cache (NULL: not at all; 'hit'; 'miss'), and what a
-- hit saved: what its usage costs at its rates less what it was billed (a
-- hit's usage row: credits + response_cache_saved = its usage × its rates).
ALTER TABLE calls ADD COLUMN response_cache TEXT;
ALTER TABLE calls ADD COLUMN response_cache_saved INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage ADD COLUMN response_cache_saved INTEGER NOT NULL DEFAULT 0;

-- Whether calls with the key use the cache when it is on (0: never).
ALTER TABLE api_keys ADD COLUMN response_cache INTEGER NOT NULL DEFAULT 1;
