-- Audio and video, metered.
--  * models.type gains 'transcription' (speech to text: /v1/audio/transcriptions
--    and /translations) and 'speech' (text to speech: /v1/audio/speech). SQLite
--    cannot change a CHECK, so the table is rebuilt (nothing references it).
--  * models.audio_rate: nano-credits per second of audio for a transcription
--    model, per million characters of input for a speech model.
--  * usage and calls keep the audio milliseconds, the characters spoken and
--    the video seconds a call was billed for; usage keeps the rates.
CREATE TABLE models_0011 (
  id                  TEXT PRIMARY KEY,
  provider_id         TEXT NOT NULL REFERENCES providers (id) ON DELETE CASCADE,
  model               TEXT NOT NULL,
  type                TEXT NOT NULL DEFAULT 'chat' CHECK (type IN ('chat', 'embedding', 'image', 'video', 'transcription', 'speech')),
  input_rate          INTEGER NOT NULL DEFAULT 0,
  output_rate         INTEGER NOT NULL DEFAULT 0,
  cache_read_rate     INTEGER,
  cache_write_rate    INTEGER,
  image_rate          INTEGER NOT NULL DEFAULT 0,
  video_rate          INTEGER NOT NULL DEFAULT 0,
  max_output_tokens   INTEGER,
  unit_costs          TEXT,
  metadata            TEXT,
  enabled             INTEGER NOT NULL DEFAULT 1,
  created_at          INTEGER NOT NULL,
  updated_at          INTEGER NOT NULL,
  cache_write_1h_rate INTEGER,
  audio_rate          INTEGER NOT NULL DEFAULT 0,
  UNIQUE (provider_id, model, type)
);
INSERT INTO models_0011 (id, provider_id, model, type, input_rate, output_rate, cache_read_rate, cache_write_rate,
                         image_rate, video_rate, max_output_tokens, unit_costs, metadata, enabled, created_at,
                         updated_at, cache_write_1h_rate)
SELECT id, provider_id, model, type, input_rate, output_rate, cache_read_rate, cache_write_rate,
       image_rate, video_rate, max_output_tokens, unit_costs, metadata, enabled, created_at,
       updated_at, cache_write_1h_rate
FROM models;
DROP TABLE models;
ALTER TABLE models_0011 RENAME TO models;

ALTER TABLE usage ADD COLUMN audio_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage ADD COLUMN characters INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage ADD COLUMN video_seconds INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage ADD COLUMN audio_rate INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage ADD COLUMN video_rate INTEGER NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN audio_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN characters INTEGER NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN video_seconds INTEGER NOT NULL DEFAULT 0;
