-- Prompt caching, billed and shown as providers report it:
--  * models.cache_write_1h_rate: the rate of cache writes kept for an hour
--    (Anthropic's `ephemeral_1h_input_tokens`); NULL falls back to
--    cache_write_rate, then input_rate. Stored, like every rate, as
--    nano-credits per million tokens.
--  * usage and calls keep how many of the cache writes were 1-hour ones, and
--    the credits caching saved on the call: its cached tokens at the input
--    rate, less what they cost (negative when writes cost more than reads saved).
ALTER TABLE models ADD COLUMN cache_write_1h_rate INTEGER;
ALTER TABLE usage ADD COLUMN cache_write_1h_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage ADD COLUMN cache_write_1h_rate INTEGER;
ALTER TABLE usage ADD COLUMN cache_saved INTEGER NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN cache_write_1h_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN cache_saved INTEGER NOT NULL DEFAULT 0;
