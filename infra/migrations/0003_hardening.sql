-- Keys remember the key that minted them (revoking a key revokes every key it
-- minted) and how their hash was made:
--   1: SHA-256 of the key (databases made before this version),
--   2: HMAC-SHA-256 of that digest under a secret derived from the master key,
--      so a copy of the database alone cannot test guesses of a key.
-- Start-up rewrites scheme-1 hashes to scheme 2 (no plaintext needed).
ALTER TABLE api_keys ADD COLUMN parent_key_id TEXT;
ALTER TABLE api_keys ADD COLUMN hash_scheme INTEGER NOT NULL DEFAULT 1;
CREATE INDEX api_keys_parent ON api_keys (parent_key_id) WHERE parent_key_id IS NOT NULL;

-- Whether the usage a provider reported was more than the request could have
-- produced, and was cut down to that bound before billing.
ALTER TABLE usage ADD COLUMN clamped INTEGER NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN clamped INTEGER NOT NULL DEFAULT 0;
