-- Prices that follow the providers' and never sell below cost.
--
-- models gains, all rates in nano-credits per million tokens like its sell rates:
--  * the long-context tier: the sell rates that apply instead of input,
--    output and cache rates when a call's prompt (input, cache reads and
--    cache writes together) is above `long_context_threshold` tokens (NULL:
--    200000). A NULL tier input rate: the model has no tier.
--  * cost rates: what the provider charges, from a price catalogue (LiteLLM's
--    or OpenRouter's) or set by an admin, converted at the `credit_price_usd`
--    setting; NULL: unknown. Tier costs likewise.
--  * context_window: the most prompt tokens the model takes (from the catalogue).
--  * below_cost: some sell rate is below its cost rate; set when a price sync
--    or an admin's forced rate makes it so, cleared when the rates are above cost again.
--  * changed_by: who made the last change of the row's rates (a user id, or
--    `sync`), read by the rate history triggers.
ALTER TABLE models ADD COLUMN long_context_threshold INTEGER;
ALTER TABLE models ADD COLUMN input_rate_above_200k INTEGER;
ALTER TABLE models ADD COLUMN output_rate_above_200k INTEGER;
ALTER TABLE models ADD COLUMN cache_read_rate_above_200k INTEGER;
ALTER TABLE models ADD COLUMN cache_write_rate_above_200k INTEGER;
ALTER TABLE models ADD COLUMN cost_input_rate INTEGER;
ALTER TABLE models ADD COLUMN cost_output_rate INTEGER;
ALTER TABLE models ADD COLUMN cost_cache_read_rate INTEGER;
ALTER TABLE models ADD COLUMN cost_cache_write_rate INTEGER;
ALTER TABLE models ADD COLUMN cost_input_rate_above_200k INTEGER;
ALTER TABLE models ADD COLUMN cost_output_rate_above_200k INTEGER;
ALTER TABLE models ADD COLUMN cost_cache_read_rate_above_200k INTEGER;
ALTER TABLE models ADD COLUMN cost_cache_write_rate_above_200k INTEGER;
ALTER TABLE models ADD COLUMN context_window INTEGER;
ALTER TABLE models ADD COLUMN below_cost INTEGER NOT NULL DEFAULT 0;
ALTER TABLE models ADD COLUMN price_source TEXT;        -- the catalogue the costs last came from: litellm, openrouter
ALTER TABLE models ADD COLUMN costs_synced_at INTEGER;  -- when a sync last matched the model
ALTER TABLE models ADD COLUMN changed_by TEXT;

-- Every change of a model's sell or cost rates: which rate, from what to what
-- (nano-credits per million; NULL: unset), by whom (`source` admin with the
-- user id in `actor`, or sync) and when. Written by the triggers below, so
-- no writer can change a rate without a trace. Kept when the model is deleted.
-- (One INSERT per rate: D1 limits the terms of a compound SELECT.)
CREATE TABLE rate_changes (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  model_id    TEXT NOT NULL,
  field       TEXT NOT NULL,
  old_value   INTEGER,
  new_value   INTEGER,
  source      TEXT NOT NULL CHECK (source IN ('admin', 'sync')),
  actor       TEXT,
  created_at  INTEGER NOT NULL
);
CREATE INDEX rate_changes_model ON rate_changes (model_id, id);

CREATE TRIGGER models_rate_history AFTER UPDATE ON models
BEGIN
  INSERT INTO rate_changes (model_id, field, old_value, new_value, source, actor, created_at)
    SELECT NEW.id, 'input_rate', OLD.input_rate, NEW.input_rate, CASE WHEN NEW.changed_by = 'sync' THEN 'sync' ELSE 'admin' END, NULLIF(NEW.changed_by, 'sync'), NEW.updated_at WHERE OLD.input_rate IS NOT NEW.input_rate;
  INSERT INTO rate_changes (model_id, field, old_value, new_value, source, actor, created_at)
    SELECT NEW.id, 'output_rate', OLD.output_rate, NEW.output_rate, CASE WHEN NEW.changed_by = 'sync' THEN 'sync' ELSE 'admin' END, NULLIF(NEW.changed_by, 'sync'), NEW.updated_at WHERE OLD.output_rate IS NOT NEW.output_rate;
  INSERT INTO rate_changes (model_id, field, old_value, new_value, source, actor, created_at)
    SELECT NEW.id, 'cache_read_rate', OLD.cache_read_rate, NEW.cache_read_rate, CASE WHEN NEW.changed_by = 'sync' THEN 'sync' ELSE 'admin' END, NULLIF(NEW.changed_by, 'sync'), NEW.updated_at WHERE OLD.cache_read_rate IS NOT NEW.cache_read_rate;
  INSERT INTO rate_changes (model_id, field, old_value, new_value, source, actor, created_at)
    SELECT NEW.id, 'cache_write_rate', OLD.cache_write_rate, NEW.cache_write_rate, CASE WHEN NEW.changed_by = 'sync' THEN 'sync' ELSE 'admin' END, NULLIF(NEW.changed_by, 'sync'), NEW.updated_at WHERE OLD.cache_write_rate IS NOT NEW.cache_write_rate;
  INSERT INTO rate_changes (model_id, field, old_value, new_value, source, actor, created_at)
    SELECT NEW.id, 'cache_write_1h_rate', OLD.cache_write_1h_rate, NEW.cache_write_1h_rate, CASE WHEN NEW.changed_by = 'sync' THEN 'sync' ELSE 'admin' END, NULLIF(NEW.changed_by, 'sync'), NEW.updated_at WHERE OLD.cache_write_1h_rate IS NOT NEW.cache_write_1h_rate;
  INSERT INTO rate_changes (model_id, field, old_value, new_value, source, actor, created_at)
    SELECT NEW.id, 'image_rate', OLD.image_rate, NEW.image_rate, CASE WHEN NEW.changed_by = 'sync' THEN 'sync' ELSE 'admin' END, NULLIF(NEW.changed_by, 'sync'), NEW.updated_at WHERE OLD.image_rate IS NOT NEW.image_rate;
  INSERT INTO rate_changes (model_id, field, old_value, new_value, source, actor, created_at)
    SELECT NEW.id, 'audio_rate', OLD.audio_rate, NEW.audio_rate, CASE WHEN NEW.changed_by = 'sync' THEN 'sync' ELSE 'admin' END, NULLIF(NEW.changed_by, 'sync'), NEW.updated_at WHERE OLD.audio_rate IS NOT NEW.audio_rate;
  INSERT INTO rate_changes (model_id, field, old_value, new_value, source, actor, created_at)
    SELECT NEW.id, 'video_rate', OLD.video_rate, NEW.video_rate, CASE WHEN NEW.changed_by = 'sync' THEN 'sync' ELSE 'admin' END, NULLIF(NEW.changed_by, 'sync'), NEW.updated_at WHERE OLD.video_rate IS NOT NEW.video_rate;
  INSERT INTO rate_changes (model_id, field, old_value, new_value, source, actor, created_at)
    SELECT NEW.id, 'input_rate_above_200k', OLD.input_rate_above_200k, NEW.input_rate_above_200k, CASE WHEN NEW.changed_by = 'sync' THEN 'sync' ELSE 'admin' END, NULLIF(NEW.changed_by, 'sync'), NEW.updated_at WHERE OLD.input_rate_above_200k IS NOT NEW.input_rate_above_200k;
  INSERT INTO rate_changes (model_id, field, old_value, new_value, source, actor, created_at)
    SELECT NEW.id, 'output_rate_above_200k', OLD.output_rate_above_200k, NEW.output_rate_above_200k, CASE WHEN NEW.changed_by = 'sync' THEN 'sync' ELSE 'admin' END, NULLIF(NEW.changed_by, 'sync'), NEW.updated_at WHERE OLD.output_rate_above_200k IS NOT NEW.output_rate_above_200k;
  INSERT INTO rate_changes (model_id, field, old_value, new_value, source, actor, created_at)
    SELECT NEW.id, 'cache_read_rate_above_200k', OLD.cache_read_rate_above_200k, NEW.cache_read_rate_above_200k, CASE WHEN NEW.changed_by = 'sync' THEN 'sync' ELSE 'admin' END, NULLIF(NEW.changed_by, 'sync'), NEW.updated_at WHERE OLD.cache_read_rate_above_200k IS NOT NEW.cache_read_rate_above_200k;
  INSERT INTO rate_changes (model_id, field, old_value, new_value, source, actor, created_at)
    SELECT NEW.id, 'cache_write_rate_above_200k', OLD.cache_write_rate_above_200k, NEW.cache_write_rate_above_200k, CASE WHEN NEW.changed_by = 'sync' THEN 'sync' ELSE 'admin' END, NULLIF(NEW.changed_by, 'sync'), NEW.updated_at WHERE OLD.cache_write_rate_above_200k IS NOT NEW.cache_write_rate_above_200k;
  INSERT INTO rate_changes (model_id, field, old_value, new_value, source, actor, created_at)
    SELECT NEW.id, 'cost_input_rate', OLD.cost_input_rate, NEW.cost_input_rate, CASE WHEN NEW.changed_by = 'sync' THEN 'sync' ELSE 'admin' END, NULLIF(NEW.changed_by, 'sync'), NEW.updated_at WHERE OLD.cost_input_rate IS NOT NEW.cost_input_rate;
  INSERT INTO rate_changes (model_id, field, old_value, new_value, source, actor, created_at)
    SELECT NEW.id, 'cost_output_rate', OLD.cost_output_rate, NEW.cost_output_rate, CASE WHEN NEW.changed_by = 'sync' THEN 'sync' ELSE 'admin' END, NULLIF(NEW.changed_by, 'sync'), NEW.updated_at WHERE OLD.cost_output_rate IS NOT NEW.cost_output_rate;
  INSERT INTO rate_changes (model_id, field, old_value, new_value, source, actor, created_at)
    SELECT NEW.id, 'cost_cache_read_rate', OLD.cost_cache_read_rate, NEW.cost_cache_read_rate, CASE WHEN NEW.changed_by = 'sync' THEN 'sync' ELSE 'admin' END, NULLIF(NEW.changed_by, 'sync'), NEW.updated_at WHERE OLD.cost_cache_read_rate IS NOT NEW.cost_cache_read_rate;
  INSERT INTO rate_changes (model_id, field, old_value, new_value, source, actor, created_at)
    SELECT NEW.id, 'cost_cache_write_rate', OLD.cost_cache_write_rate, NEW.cost_cache_write_rate, CASE WHEN NEW.changed_by = 'sync' THEN 'sync' ELSE 'admin' END, NULLIF(NEW.changed_by, 'sync'), NEW.updated_at WHERE OLD.cost_cache_write_rate IS NOT NEW.cost_cache_write_rate;
  INSERT INTO rate_changes (model_id, field, old_value, new_value, source, actor, created_at)
    SELECT NEW.id, 'cost_input_rate_above_200k', OLD.cost_input_rate_above_200k, NEW.cost_input_rate_above_200k, CASE WHEN NEW.changed_by = 'sync' THEN 'sync' ELSE 'admin' END, NULLIF(NEW.changed_by, 'sync'), NEW.updated_at WHERE OLD.cost_input_rate_above_200k IS NOT NEW.cost_input_rate_above_200k;
  INSERT INTO rate_changes (model_id, field, old_value, new_value, source, actor, created_at)
    SELECT NEW.id, 'cost_output_rate_above_200k', OLD.cost_output_rate_above_200k, NEW.cost_output_rate_above_200k, CASE WHEN NEW.changed_by = 'sync' THEN 'sync' ELSE 'admin' END, NULLIF(NEW.changed_by, 'sync'), NEW.updated_at WHERE OLD.cost_output_rate_above_200k IS NOT NEW.cost_output_rate_above_200k;
  INSERT INTO rate_changes (model_id, field, old_value, new_value, source, actor, created_at)
    SELECT NEW.id, 'cost_cache_read_rate_above_200k', OLD.cost_cache_read_rate_above_200k, NEW.cost_cache_read_rate_above_200k, CASE WHEN NEW.changed_by = 'sync' THEN 'sync' ELSE 'admin' END, NULLIF(NEW.changed_by, 'sync'), NEW.updated_at WHERE OLD.cost_cache_read_rate_above_200k IS NOT NEW.cost_cache_read_rate_above_200k;
  INSERT INTO rate_changes (model_id, field, old_value, new_value, source, actor, created_at)
    SELECT NEW.id, 'cost_cache_write_rate_above_200k', OLD.cost_cache_write_rate_above_200k, NEW.cost_cache_write_rate_above_200k, CASE WHEN NEW.changed_by = 'sync' THEN 'sync' ELSE 'admin' END, NULLIF(NEW.changed_by, 'sync'), NEW.updated_at WHERE OLD.cost_cache_write_rate_above_200k IS NOT NEW.cost_cache_write_rate_above_200k;
END;

-- A model's first rates are its first history rows (Hub writes a new model's
-- tier and costs by an UPDATE right after, which the trigger above records).
CREATE TRIGGER models_rate_history_created AFTER INSERT ON models
BEGIN
  INSERT INTO rate_changes (model_id, field, old_value, new_value, source, actor, created_at)
    SELECT NEW.id, 'input_rate', NULL, NEW.input_rate, CASE WHEN NEW.changed_by = 'sync' THEN 'sync' ELSE 'admin' END, NULLIF(NEW.changed_by, 'sync'), NEW.created_at WHERE NEW.input_rate IS NOT NULL AND NEW.input_rate <> 0;
  INSERT INTO rate_changes (model_id, field, old_value, new_value, source, actor, created_at)
    SELECT NEW.id, 'output_rate', NULL, NEW.output_rate, CASE WHEN NEW.changed_by = 'sync' THEN 'sync' ELSE 'admin' END, NULLIF(NEW.changed_by, 'sync'), NEW.created_at WHERE NEW.output_rate IS NOT NULL AND NEW.output_rate <> 0;
  INSERT INTO rate_changes (model_id, field, old_value, new_value, source, actor, created_at)
    SELECT NEW.id, 'cache_read_rate', NULL, NEW.cache_read_rate, CASE WHEN NEW.changed_by = 'sync' THEN 'sync' ELSE 'admin' END, NULLIF(NEW.changed_by, 'sync'), NEW.created_at WHERE NEW.cache_read_rate IS NOT NULL AND NEW.cache_read_rate <> 0;
  INSERT INTO rate_changes (model_id, field, old_value, new_value, source, actor, created_at)
    SELECT NEW.id, 'cache_write_rate', NULL, NEW.cache_write_rate, CASE WHEN NEW.changed_by = 'sync' THEN 'sync' ELSE 'admin' END, NULLIF(NEW.changed_by, 'sync'), NEW.created_at WHERE NEW.cache_write_rate IS NOT NULL AND NEW.cache_write_rate <> 0;
  INSERT INTO rate_changes (model_id, field, old_value, new_value, source, actor, created_at)
    SELECT NEW.id, 'cache_write_1h_rate', NULL, NEW.cache_write_1h_rate, CASE WHEN NEW.changed_by = 'sync' THEN 'sync' ELSE 'admin' END, NULLIF(NEW.changed_by, 'sync'), NEW.created_at WHERE NEW.cache_write_1h_rate IS NOT NULL AND NEW.cache_write_1h_rate <> 0;
  INSERT INTO rate_changes (model_id, field, old_value, new_value, source, actor, created_at)
    SELECT NEW.id, 'image_rate', NULL, NEW.image_rate, CASE WHEN NEW.changed_by = 'sync' THEN 'sync' ELSE 'admin' END, NULLIF(NEW.changed_by, 'sync'), NEW.created_at WHERE NEW.image_rate IS NOT NULL AND NEW.image_rate <> 0;
  INSERT INTO rate_changes (model_id, field, old_value, new_value, source, actor, created_at)
    SELECT NEW.id, 'audio_rate', NULL, NEW.audio_rate, CASE WHEN NEW.changed_by = 'sync' THEN 'sync' ELSE 'admin' END, NULLIF(NEW.changed_by, 'sync'), NEW.created_at WHERE NEW.audio_rate IS NOT NULL AND NEW.audio_rate <> 0;
  INSERT INTO rate_changes (model_id, field, old_value, new_value, source, actor, created_at)
    SELECT NEW.id, 'video_rate', NULL, NEW.video_rate, CASE WHEN NEW.changed_by = 'sync' THEN 'sync' ELSE 'admin' END, NULLIF(NEW.changed_by, 'sync'), NEW.created_at WHERE NEW.video_rate IS NOT NULL AND NEW.video_rate <> 0;
END;

-- A model became dearer to serve than it sells for: announced through the
-- notification channels (webhooks subscribed to `model.below_cost`).
CREATE TRIGGER notify_model_below_cost AFTER UPDATE OF below_cost ON models
WHEN NEW.below_cost = 1 AND OLD.below_cost = 0
BEGIN
  INSERT INTO events (id, type, subject, detail, created_at)
  VALUES ('msg_' || lower(hex(randomblob(16))), 'model.below_cost', NEW.id,
          json_object('model', NEW.model, 'provider_id', NEW.provider_id, 'enabled', NEW.enabled,
                      'changed_by', NEW.changed_by), NEW.updated_at);
END;
