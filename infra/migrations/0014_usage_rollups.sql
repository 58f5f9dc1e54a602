-- Usage roll-ups: the call log (`calls`, one row per attempt) summed per hour
-- and per day (UTC), per user, key, app, provider, model and status, kept by a
-- trigger as rows are written. The usage API reads them for whole hours and
-- days, so long ranges stay fast and their totals stay exact after old `calls`
-- rows are deleted (the `call_retention_days` setting). Never pruned; the
-- ledger and `usage` (one billing row per call) are not pruned either.
--
-- NULL dimensions are kept as '' (a primary key cannot hold NULL). Money is
-- nano-credits, as everywhere. Times to first byte are counted in 51 buckets
-- h0..h50 of ttfb_ms, bucket k holding [bound(k-1), bound(k)) with bounds
-- 1 2 3 4 5 6 8 10 12 15 20 25 30 40 50 60 80 100 120 150 200 … 120000 150000
-- (1–1.2–1.5–2–2.5–3–4–5–6–8 per decade; h0 is under 1 ms, h50 150 s or
-- more): histograms add up, so percentiles of any range are read from them.
-- `hub_core::store::TTFB_BOUNDS` is the same list.

CREATE TABLE usage_hourly (
  bucket                 INTEGER NOT NULL,  -- the hour's start (UTC, ms)
  user_id                TEXT NOT NULL,
  key_id                 TEXT NOT NULL,
  app                    TEXT NOT NULL,
  provider_id            TEXT NOT NULL,
  provider               TEXT NOT NULL,
  model                  TEXT NOT NULL,
  status                 TEXT NOT NULL,
  calls                  INTEGER NOT NULL DEFAULT 0,
  input_tokens           INTEGER NOT NULL DEFAULT 0,
  output_tokens          INTEGER NOT NULL DEFAULT 0,
  cache_read_tokens      INTEGER NOT NULL DEFAULT 0,
  cache_write_tokens     INTEGER NOT NULL DEFAULT 0,
  cache_write_1h_tokens  INTEGER NOT NULL DEFAULT 0,
  audio_ms               INTEGER NOT NULL DEFAULT 0,
  characters             INTEGER NOT NULL DEFAULT 0,
  video_seconds          INTEGER NOT NULL DEFAULT 0,
  credits                INTEGER NOT NULL DEFAULT 0,
  cache_saved            INTEGER NOT NULL DEFAULT 0,
  -- TTFB histogram: calls whose ttfb_ms fell in each bucket (see above).
  h0 INTEGER NOT NULL DEFAULT 0, h1 INTEGER NOT NULL DEFAULT 0, h2 INTEGER NOT NULL DEFAULT 0,
  h3 INTEGER NOT NULL DEFAULT 0, h4 INTEGER NOT NULL DEFAULT 0, h5 INTEGER NOT NULL DEFAULT 0,
  h6 INTEGER NOT NULL DEFAULT 0, h7 INTEGER NOT NULL DEFAULT 0, h8 INTEGER NOT NULL DEFAULT 0,
  h9 INTEGER NOT NULL DEFAULT 0, h10 INTEGER NOT NULL DEFAULT 0, h11 INTEGER NOT NULL DEFAULT 0,
  h12 INTEGER NOT NULL DEFAULT 0, h13 INTEGER NOT NULL DEFAULT 0, h14 INTEGER NOT NULL DEFAULT 0,
  h15 INTEGER NOT NULL DEFAULT 0, h16 INTEGER NOT NULL DEFAULT 0, h17 INTEGER NOT NULL DEFAULT 0,
  h18 INTEGER NOT NULL DEFAULT 0, h19 INTEGER NOT NULL DEFAULT 0, h20 INTEGER NOT NULL DEFAULT 0,
  h21 INTEGER NOT NULL DEFAULT 0, h22 INTEGER NOT NULL DEFAULT 0, h23 INTEGER NOT NULL DEFAULT 0,
  h24 INTEGER NOT NULL DEFAULT 0, h25 INTEGER NOT NULL DEFAULT 0, h26 INTEGER NOT NULL DEFAULT 0,
  h27 INTEGER NOT NULL DEFAULT 0, h28 INTEGER NOT NULL DEFAULT 0, h29 INTEGER NOT NULL DEFAULT 0,
  h30 INTEGER NOT NULL DEFAULT 0, h31 INTEGER NOT NULL DEFAULT 0, h32 INTEGER NOT NULL DEFAULT 0,
  h33 INTEGER NOT NULL DEFAULT 0, h34 INTEGER NOT NULL DEFAULT 0, h35 INTEGER NOT NULL DEFAULT 0,
  h36 INTEGER NOT NULL DEFAULT 0, h37 INTEGER NOT NULL DEFAULT 0, h38 INTEGER NOT NULL DEFAULT 0,
  h39 INTEGER NOT NULL DEFAULT 0, h40 INTEGER NOT NULL DEFAULT 0, h41 INTEGER NOT NULL DEFAULT 0,
  h42 INTEGER NOT NULL DEFAULT 0, h43 INTEGER NOT NULL DEFAULT 0, h44 INTEGER NOT NULL DEFAULT 0,
  h45 INTEGER NOT NULL DEFAULT 0, h46 INTEGER NOT NULL DEFAULT 0, h47 INTEGER NOT NULL DEFAULT 0,
  h48 INTEGER NOT NULL DEFAULT 0, h49 INTEGER NOT NULL DEFAULT 0, h50 INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (bucket, user_id, key_id, app, provider_id, provider, model, status)
) WITHOUT ROWID;
CREATE INDEX usage_hourly_user ON usage_hourly (user_id, bucket);

CREATE TABLE usage_daily (
  bucket                 INTEGER NOT NULL,  -- the day's start (UTC, ms)
  user_id                TEXT NOT NULL,
  key_id                 TEXT NOT NULL,
  app                    TEXT NOT NULL,
  provider_id            TEXT NOT NULL,
  provider               TEXT NOT NULL,
  model                  TEXT NOT NULL,
  status                 TEXT NOT NULL,
  calls                  INTEGER NOT NULL DEFAULT 0,
  input_tokens           INTEGER NOT NULL DEFAULT 0,
  output_tokens          INTEGER NOT NULL DEFAULT 0,
  cache_read_tokens      INTEGER NOT NULL DEFAULT 0,
  cache_write_tokens     INTEGER NOT NULL DEFAULT 0,
  cache_write_1h_tokens  INTEGER NOT NULL DEFAULT 0,
  audio_ms               INTEGER NOT NULL DEFAULT 0,
  characters             INTEGER NOT NULL DEFAULT 0,
  video_seconds          INTEGER NOT NULL DEFAULT 0,
  credits                INTEGER NOT NULL DEFAULT 0,
  cache_saved            INTEGER NOT NULL DEFAULT 0,
  -- TTFB histogram: calls whose ttfb_ms fell in each bucket (see above).
  h0 INTEGER NOT NULL DEFAULT 0, h1 INTEGER NOT NULL DEFAULT 0, h2 INTEGER NOT NULL DEFAULT 0,
  h3 INTEGER NOT NULL DEFAULT 0, h4 INTEGER NOT NULL DEFAULT 0, h5 INTEGER NOT NULL DEFAULT 0,
  h6 INTEGER NOT NULL DEFAULT 0, h7 INTEGER NOT NULL DEFAULT 0, h8 INTEGER NOT NULL DEFAULT 0,
  h9 INTEGER NOT NULL DEFAULT 0, h10 INTEGER NOT NULL DEFAULT 0, h11 INTEGER NOT NULL DEFAULT 0,
  h12 INTEGER NOT NULL DEFAULT 0, h13 INTEGER NOT NULL DEFAULT 0, h14 INTEGER NOT NULL DEFAULT 0,
  h15 INTEGER NOT NULL DEFAULT 0, h16 INTEGER NOT NULL DEFAULT 0, h17 INTEGER NOT NULL DEFAULT 0,
  h18 INTEGER NOT NULL DEFAULT 0, h19 INTEGER NOT NULL DEFAULT 0, h20 INTEGER NOT NULL DEFAULT 0,
  h21 INTEGER NOT NULL DEFAULT 0, h22 INTEGER NOT NULL DEFAULT 0, h23 INTEGER NOT NULL DEFAULT 0,
  h24 INTEGER NOT NULL DEFAULT 0, h25 INTEGER NOT NULL DEFAULT 0, h26 INTEGER NOT NULL DEFAULT 0,
  h27 INTEGER NOT NULL DEFAULT 0, h28 INTEGER NOT NULL DEFAULT 0, h29 INTEGER NOT NULL DEFAULT 0,
  h30 INTEGER NOT NULL DEFAULT 0, h31 INTEGER NOT NULL DEFAULT 0, h32 INTEGER NOT NULL DEFAULT 0,
  h33 INTEGER NOT NULL DEFAULT 0, h34 INTEGER NOT NULL DEFAULT 0, h35 INTEGER NOT NULL DEFAULT 0,
  h36 INTEGER NOT NULL DEFAULT 0, h37 INTEGER NOT NULL DEFAULT 0, h38 INTEGER NOT NULL DEFAULT 0,
  h39 INTEGER NOT NULL DEFAULT 0, h40 INTEGER NOT NULL DEFAULT 0, h41 INTEGER NOT NULL DEFAULT 0,
  h42 INTEGER NOT NULL DEFAULT 0, h43 INTEGER NOT NULL DEFAULT 0, h44 INTEGER NOT NULL DEFAULT 0,
  h45 INTEGER NOT NULL DEFAULT 0, h46 INTEGER NOT NULL DEFAULT 0, h47 INTEGER NOT NULL DEFAULT 0,
  h48 INTEGER NOT NULL DEFAULT 0, h49 INTEGER NOT NULL DEFAULT 0, h50 INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (bucket, user_id, key_id, app, provider_id, provider, model, status)
) WITHOUT ROWID;
CREATE INDEX usage_daily_user ON usage_daily (user_id, bucket);

-- How far back the call log is whole: rows made before `whole_since` may have been
-- deleted (the prune job raises it in the transaction that deletes them), so the
-- usage API reads the roll-ups there. No row: nothing was ever deleted.
CREATE TABLE calls_pruned (
  id           INTEGER PRIMARY KEY CHECK (id = 1),
  whole_since  INTEGER NOT NULL
);

-- What the calls already logged add up to, so totals stay exact across the upgrade.
INSERT INTO usage_hourly (bucket, user_id, key_id, app, provider_id, provider, model, status,
    calls, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cache_write_1h_tokens, audio_ms,
    characters, video_seconds, credits, cache_saved,
    h0, h1, h2, h3, h4, h5, h6, h7, h8, h9, h10, h11, h12, h13, h14, h15, h16, h17, h18, h19, h20, h21, h22, h23,
    h24, h25, h26, h27, h28, h29, h30, h31, h32, h33, h34, h35, h36, h37, h38, h39, h40, h41, h42, h43, h44, h45,
    h46, h47, h48, h49, h50)
SELECT created_at - created_at % 3600000, IFNULL(user_id, ''), IFNULL(key_id, ''), IFNULL(app, ''), IFNULL(provider_id, ''), IFNULL(provider, ''), model, status,
       COUNT(*), SUM(input_tokens), SUM(output_tokens), SUM(cache_read_tokens), SUM(cache_write_tokens),
       SUM(cache_write_1h_tokens), SUM(audio_ms), SUM(characters), SUM(video_seconds), SUM(credits),
       SUM(cache_saved),
       SUM(b = 0), SUM(b = 1), SUM(b = 2), SUM(b = 3), SUM(b = 4), SUM(b = 5), SUM(b = 6), SUM(b = 7), SUM(b = 8),
       SUM(b = 9), SUM(b = 10), SUM(b = 11), SUM(b = 12), SUM(b = 13), SUM(b = 14), SUM(b = 15), SUM(b = 16),
       SUM(b = 17), SUM(b = 18), SUM(b = 19), SUM(b = 20), SUM(b = 21), SUM(b = 22), SUM(b = 23), SUM(b = 24),
       SUM(b = 25), SUM(b = 26), SUM(b = 27), SUM(b = 28), SUM(b = 29), SUM(b = 30), SUM(b = 31), SUM(b = 32),
       SUM(b = 33), SUM(b = 34), SUM(b = 35), SUM(b = 36), SUM(b = 37), SUM(b = 38), SUM(b = 39), SUM(b = 40),
       SUM(b = 41), SUM(b = 42), SUM(b = 43), SUM(b = 44), SUM(b = 45), SUM(b = 46), SUM(b = 47), SUM(b = 48),
       SUM(b = 49), SUM(b = 50)
FROM (SELECT *, CASE WHEN ttfb_ms IS NULL THEN -1 WHEN ttfb_ms < 1 THEN 0 WHEN ttfb_ms < 2 THEN 1
              WHEN ttfb_ms < 3 THEN 2 WHEN ttfb_ms < 4 THEN 3 WHEN ttfb_ms < 5 THEN 4 WHEN ttfb_ms < 6 THEN 5
              WHEN ttfb_ms < 8 THEN 6 WHEN ttfb_ms < 10 THEN 7 WHEN ttfb_ms < 12 THEN 8 WHEN ttfb_ms < 15 THEN 9
              WHEN ttfb_ms < 20 THEN 10 WHEN ttfb_ms < 25 THEN 11 WHEN ttfb_ms < 30 THEN 12
              WHEN ttfb_ms < 40 THEN 13 WHEN ttfb_ms < 50 THEN 14 WHEN ttfb_ms < 60 THEN 15
              WHEN ttfb_ms < 80 THEN 16 WHEN ttfb_ms < 100 THEN 17 WHEN ttfb_ms < 120 THEN 18
              WHEN ttfb_ms < 150 THEN 19 WHEN ttfb_ms < 200 THEN 20 WHEN ttfb_ms < 250 THEN 21
              WHEN ttfb_ms < 300 THEN 22 WHEN ttfb_ms < 400 THEN 23 WHEN ttfb_ms < 500 THEN 24
              WHEN ttfb_ms < 600 THEN 25 WHEN ttfb_ms < 800 THEN 26 WHEN ttfb_ms < 1000 THEN 27
              WHEN ttfb_ms < 1200 THEN 28 WHEN ttfb_ms < 1500 THEN 29 WHEN ttfb_ms < 2000 THEN 30
              WHEN ttfb_ms < 2500 THEN 31 WHEN ttfb_ms < 3000 THEN 32 WHEN ttfb_ms < 4000 THEN 33
              WHEN ttfb_ms < 5000 THEN 34 WHEN ttfb_ms < 6000 THEN 35 WHEN ttfb_ms < 8000 THEN 36
              WHEN ttfb_ms < 10000 THEN 37 WHEN ttfb_ms < 12000 THEN 38 WHEN ttfb_ms < 15000 THEN 39
              WHEN ttfb_ms < 20000 THEN 40 WHEN ttfb_ms < 25000 THEN 41 WHEN ttfb_ms < 30000 THEN 42
              WHEN ttfb_ms < 40000 THEN 43 WHEN ttfb_ms < 50000 THEN 44 WHEN ttfb_ms < 60000 THEN 45
              WHEN ttfb_ms < 80000 THEN 46 WHEN ttfb_ms < 100000 THEN 47 WHEN ttfb_ms < 120000 THEN 48
              WHEN ttfb_ms < 150000 THEN 49 ELSE 50 END AS b FROM calls)
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8;

INSERT INTO usage_daily (bucket, user_id, key_id, app, provider_id, provider, model, status,
    calls, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cache_write_1h_tokens, audio_ms,
    characters, video_seconds, credits, cache_saved,
    h0, h1, h2, h3, h4, h5, h6, h7, h8, h9, h10, h11, h12, h13, h14, h15, h16, h17, h18, h19, h20, h21, h22, h23,
    h24, h25, h26, h27, h28, h29, h30, h31, h32, h33, h34, h35, h36, h37, h38, h39, h40, h41, h42, h43, h44, h45,
    h46, h47, h48, h49, h50)
SELECT created_at - created_at % 86400000, IFNULL(user_id, ''), IFNULL(key_id, ''), IFNULL(app, ''), IFNULL(provider_id, ''), IFNULL(provider, ''), model, status,
       COUNT(*), SUM(input_tokens), SUM(output_tokens), SUM(cache_read_tokens), SUM(cache_write_tokens),
       SUM(cache_write_1h_tokens), SUM(audio_ms), SUM(characters), SUM(video_seconds), SUM(credits),
       SUM(cache_saved),
       SUM(b = 0), SUM(b = 1), SUM(b = 2), SUM(b = 3), SUM(b = 4), SUM(b = 5), SUM(b = 6), SUM(b = 7), SUM(b = 8),
       SUM(b = 9), SUM(b = 10), SUM(b = 11), SUM(b = 12), SUM(b = 13), SUM(b = 14), SUM(b = 15), SUM(b = 16),
       SUM(b = 17), SUM(b = 18), SUM(b = 19), SUM(b = 20), SUM(b = 21), SUM(b = 22), SUM(b = 23), SUM(b = 24),
       SUM(b = 25), SUM(b = 26), SUM(b = 27), SUM(b = 28), SUM(b = 29), SUM(b = 30), SUM(b = 31), SUM(b = 32),
       SUM(b = 33), SUM(b = 34), SUM(b = 35), SUM(b = 36), SUM(b = 37), SUM(b = 38), SUM(b = 39), SUM(b = 40),
       SUM(b = 41), SUM(b = 42), SUM(b = 43), SUM(b = 44), SUM(b = 45), SUM(b = 46), SUM(b = 47), SUM(b = 48),
       SUM(b = 49), SUM(b = 50)
FROM (SELECT *, CASE WHEN ttfb_ms IS NULL THEN -1 WHEN ttfb_ms < 1 THEN 0 WHEN ttfb_ms < 2 THEN 1
              WHEN ttfb_ms < 3 THEN 2 WHEN ttfb_ms < 4 THEN 3 WHEN ttfb_ms < 5 THEN 4 WHEN ttfb_ms < 6 THEN 5
              WHEN ttfb_ms < 8 THEN 6 WHEN ttfb_ms < 10 THEN 7 WHEN ttfb_ms < 12 THEN 8 WHEN ttfb_ms < 15 THEN 9
              WHEN ttfb_ms < 20 THEN 10 WHEN ttfb_ms < 25 THEN 11 WHEN ttfb_ms < 30 THEN 12
              WHEN ttfb_ms < 40 THEN 13 WHEN ttfb_ms < 50 THEN 14 WHEN ttfb_ms < 60 THEN 15
              WHEN ttfb_ms < 80 THEN 16 WHEN ttfb_ms < 100 THEN 17 WHEN ttfb_ms < 120 THEN 18
              WHEN ttfb_ms < 150 THEN 19 WHEN ttfb_ms < 200 THEN 20 WHEN ttfb_ms < 250 THEN 21
              WHEN ttfb_ms < 300 THEN 22 WHEN ttfb_ms < 400 THEN 23 WHEN ttfb_ms < 500 THEN 24
              WHEN ttfb_ms < 600 THEN 25 WHEN ttfb_ms < 800 THEN 26 WHEN ttfb_ms < 1000 THEN 27
              WHEN ttfb_ms < 1200 THEN 28 WHEN ttfb_ms < 1500 THEN 29 WHEN ttfb_ms < 2000 THEN 30
              WHEN ttfb_ms < 2500 THEN 31 WHEN ttfb_ms < 3000 THEN 32 WHEN ttfb_ms < 4000 THEN 33
              WHEN ttfb_ms < 5000 THEN 34 WHEN ttfb_ms < 6000 THEN 35 WHEN ttfb_ms < 8000 THEN 36
              WHEN ttfb_ms < 10000 THEN 37 WHEN ttfb_ms < 12000 THEN 38 WHEN ttfb_ms < 15000 THEN 39
              WHEN ttfb_ms < 20000 THEN 40 WHEN ttfb_ms < 25000 THEN 41 WHEN ttfb_ms < 30000 THEN 42
              WHEN ttfb_ms < 40000 THEN 43 WHEN ttfb_ms < 50000 THEN 44 WHEN ttfb_ms < 60000 THEN 45
              WHEN ttfb_ms < 80000 THEN 46 WHEN ttfb_ms < 100000 THEN 47 WHEN ttfb_ms < 120000 THEN 48
              WHEN ttfb_ms < 150000 THEN 49 ELSE 50 END AS b FROM calls)
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8;

-- Every call-log row, as it is written, added to its hour and its day. Rows are
-- only ever inserted (INSERT OR IGNORE: a retried write that finds its row
-- fires nothing), so each counts once; deleting old rows changes no roll-up.
CREATE TRIGGER calls_roll_up AFTER INSERT ON calls
BEGIN
  INSERT INTO usage_hourly (bucket, user_id, key_id, app, provider_id, provider, model, status,
      calls, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cache_write_1h_tokens, audio_ms,
      characters, video_seconds, credits, cache_saved,
      h0, h1, h2, h3, h4, h5, h6, h7, h8, h9, h10, h11, h12, h13, h14, h15, h16, h17, h18, h19, h20, h21, h22, h23,
      h24, h25, h26, h27, h28, h29, h30, h31, h32, h33, h34, h35, h36, h37, h38, h39, h40, h41, h42, h43, h44, h45,
      h46, h47, h48, h49, h50)
  SELECT NEW.created_at - NEW.created_at % 3600000,
         IFNULL(NEW.user_id, ''), IFNULL(NEW.key_id, ''), IFNULL(NEW.app, ''), IFNULL(NEW.provider_id, ''),
         IFNULL(NEW.provider, ''), NEW.model, NEW.status,
         1, NEW.input_tokens, NEW.output_tokens, NEW.cache_read_tokens, NEW.cache_write_tokens,
         NEW.cache_write_1h_tokens, NEW.audio_ms, NEW.characters, NEW.video_seconds, NEW.credits, NEW.cache_saved,
         b = 0, b = 1, b = 2, b = 3, b = 4, b = 5, b = 6, b = 7, b = 8, b = 9, b = 10, b = 11, b = 12, b = 13, b = 14,
         b = 15, b = 16, b = 17, b = 18, b = 19, b = 20, b = 21, b = 22, b = 23, b = 24, b = 25, b = 26, b = 27,
         b = 28, b = 29, b = 30, b = 31, b = 32, b = 33, b = 34, b = 35, b = 36, b = 37, b = 38, b = 39, b = 40,
         b = 41, b = 42, b = 43, b = 44, b = 45, b = 46, b = 47, b = 48, b = 49, b = 50
  FROM (SELECT CASE WHEN NEW.ttfb_ms IS NULL THEN -1 WHEN NEW.ttfb_ms < 1 THEN 0 WHEN NEW.ttfb_ms < 2 THEN 1
                WHEN NEW.ttfb_ms < 3 THEN 2 WHEN NEW.ttfb_ms < 4 THEN 3 WHEN NEW.ttfb_ms < 5 THEN 4
                WHEN NEW.ttfb_ms < 6 THEN 5 WHEN NEW.ttfb_ms < 8 THEN 6 WHEN NEW.ttfb_ms < 10 THEN 7
                WHEN NEW.ttfb_ms < 12 THEN 8 WHEN NEW.ttfb_ms < 15 THEN 9 WHEN NEW.ttfb_ms < 20 THEN 10
                WHEN NEW.ttfb_ms < 25 THEN 11 WHEN NEW.ttfb_ms < 30 THEN 12 WHEN NEW.ttfb_ms < 40 THEN 13
                WHEN NEW.ttfb_ms < 50 THEN 14 WHEN NEW.ttfb_ms < 60 THEN 15 WHEN NEW.ttfb_ms < 80 THEN 16
                WHEN NEW.ttfb_ms < 100 THEN 17 WHEN NEW.ttfb_ms < 120 THEN 18 WHEN NEW.ttfb_ms < 150 THEN 19
                WHEN NEW.ttfb_ms < 200 THEN 20 WHEN NEW.ttfb_ms < 250 THEN 21 WHEN NEW.ttfb_ms < 300 THEN 22
                WHEN NEW.ttfb_ms < 400 THEN 23 WHEN NEW.ttfb_ms < 500 THEN 24 WHEN NEW.ttfb_ms < 600 THEN 25
                WHEN NEW.ttfb_ms < 800 THEN 26 WHEN NEW.ttfb_ms < 1000 THEN 27 WHEN NEW.ttfb_ms < 1200 THEN 28
                WHEN NEW.ttfb_ms < 1500 THEN 29 WHEN NEW.ttfb_ms < 2000 THEN 30 WHEN NEW.ttfb_ms < 2500 THEN 31
                WHEN NEW.ttfb_ms < 3000 THEN 32 WHEN NEW.ttfb_ms < 4000 THEN 33 WHEN NEW.ttfb_ms < 5000 THEN 34
                WHEN NEW.ttfb_ms < 6000 THEN 35 WHEN NEW.ttfb_ms < 8000 THEN 36 WHEN NEW.ttfb_ms < 10000 THEN 37
                WHEN NEW.ttfb_ms < 12000 THEN 38 WHEN NEW.ttfb_ms < 15000 THEN 39 WHEN NEW.ttfb_ms < 20000 THEN 40
                WHEN NEW.ttfb_ms < 25000 THEN 41 WHEN NEW.ttfb_ms < 30000 THEN 42 WHEN NEW.ttfb_ms < 40000 THEN 43
                WHEN NEW.ttfb_ms < 50000 THEN 44 WHEN NEW.ttfb_ms < 60000 THEN 45 WHEN NEW.ttfb_ms < 80000 THEN 46
                WHEN NEW.ttfb_ms < 100000 THEN 47 WHEN NEW.ttfb_ms < 120000 THEN 48
                WHEN NEW.ttfb_ms < 150000 THEN 49 ELSE 50 END AS b) WHERE 1
  ON CONFLICT (bucket, user_id, key_id, app, provider_id, provider, model, status) DO UPDATE SET
    calls = calls + excluded.calls, input_tokens = input_tokens + excluded.input_tokens,
    output_tokens = output_tokens + excluded.output_tokens,
    cache_read_tokens = cache_read_tokens + excluded.cache_read_tokens,
    cache_write_tokens = cache_write_tokens + excluded.cache_write_tokens,
    cache_write_1h_tokens = cache_write_1h_tokens + excluded.cache_write_1h_tokens,
    audio_ms = audio_ms + excluded.audio_ms, characters = characters + excluded.characters,
    video_seconds = video_seconds + excluded.video_seconds, credits = credits + excluded.credits,
    cache_saved = cache_saved + excluded.cache_saved, h0 = h0 + excluded.h0, h1 = h1 + excluded.h1,
    h2 = h2 + excluded.h2, h3 = h3 + excluded.h3, h4 = h4 + excluded.h4, h5 = h5 + excluded.h5,
    h6 = h6 + excluded.h6, h7 = h7 + excluded.h7, h8 = h8 + excluded.h8, h9 = h9 + excluded.h9,
    h10 = h10 + excluded.h10, h11 = h11 + excluded.h11, h12 = h12 + excluded.h12, h13 = h13 + excluded.h13,
    h14 = h14 + excluded.h14, h15 = h15 + excluded.h15, h16 = h16 + excluded.h16, h17 = h17 + excluded.h17,
    h18 = h18 + excluded.h18, h19 = h19 + excluded.h19, h20 = h20 + excluded.h20, h21 = h21 + excluded.h21,
    h22 = h22 + excluded.h22, h23 = h23 + excluded.h23, h24 = h24 + excluded.h24, h25 = h25 + excluded.h25,
    h26 = h26 + excluded.h26, h27 = h27 + excluded.h27, h28 = h28 + excluded.h28, h29 = h29 + excluded.h29,
    h30 = h30 + excluded.h30, h31 = h31 + excluded.h31, h32 = h32 + excluded.h32, h33 = h33 + excluded.h33,
    h34 = h34 + excluded.h34, h35 = h35 + excluded.h35, h36 = h36 + excluded.h36, h37 = h37 + excluded.h37,
    h38 = h38 + excluded.h38, h39 = h39 + excluded.h39, h40 = h40 + excluded.h40, h41 = h41 + excluded.h41,
    h42 = h42 + excluded.h42, h43 = h43 + excluded.h43, h44 = h44 + excluded.h44, h45 = h45 + excluded.h45,
    h46 = h46 + excluded.h46, h47 = h47 + excluded.h47, h48 = h48 + excluded.h48, h49 = h49 + excluded.h49,
    h50 = h50 + excluded.h50;
  INSERT INTO usage_daily (bucket, user_id, key_id, app, provider_id, provider, model, status,
      calls, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cache_write_1h_tokens, audio_ms,
      characters, video_seconds, credits, cache_saved,
      h0, h1, h2, h3, h4, h5, h6, h7, h8, h9, h10, h11, h12, h13, h14, h15, h16, h17, h18, h19, h20, h21, h22, h23,
      h24, h25, h26, h27, h28, h29, h30, h31, h32, h33, h34, h35, h36, h37, h38, h39, h40, h41, h42, h43, h44, h45,
      h46, h47, h48, h49, h50)
  SELECT NEW.created_at - NEW.created_at % 86400000,
         IFNULL(NEW.user_id, ''), IFNULL(NEW.key_id, ''), IFNULL(NEW.app, ''), IFNULL(NEW.provider_id, ''),
         IFNULL(NEW.provider, ''), NEW.model, NEW.status,
         1, NEW.input_tokens, NEW.output_tokens, NEW.cache_read_tokens, NEW.cache_write_tokens,
         NEW.cache_write_1h_tokens, NEW.audio_ms, NEW.characters, NEW.video_seconds, NEW.credits, NEW.cache_saved,
         b = 0, b = 1, b = 2, b = 3, b = 4, b = 5, b = 6, b = 7, b = 8, b = 9, b = 10, b = 11, b = 12, b = 13, b = 14,
         b = 15, b = 16, b = 17, b = 18, b = 19, b = 20, b = 21, b = 22, b = 23, b = 24, b = 25, b = 26, b = 27,
         b = 28, b = 29, b = 30, b = 31, b = 32, b = 33, b = 34, b = 35, b = 36, b = 37, b = 38, b = 39, b = 40,
         b = 41, b = 42, b = 43, b = 44, b = 45, b = 46, b = 47, b = 48, b = 49, b = 50
  FROM (SELECT CASE WHEN NEW.ttfb_ms IS NULL THEN -1 WHEN NEW.ttfb_ms < 1 THEN 0 WHEN NEW.ttfb_ms < 2 THEN 1
                WHEN NEW.ttfb_ms < 3 THEN 2 WHEN NEW.ttfb_ms < 4 THEN 3 WHEN NEW.ttfb_ms < 5 THEN 4
                WHEN NEW.ttfb_ms < 6 THEN 5 WHEN NEW.ttfb_ms < 8 THEN 6 WHEN NEW.ttfb_ms < 10 THEN 7
                WHEN NEW.ttfb_ms < 12 THEN 8 WHEN NEW.ttfb_ms < 15 THEN 9 WHEN NEW.ttfb_ms < 20 THEN 10
                WHEN NEW.ttfb_ms < 25 THEN 11 WHEN NEW.ttfb_ms < 30 THEN 12 WHEN NEW.ttfb_ms < 40 THEN 13
                WHEN NEW.ttfb_ms < 50 THEN 14 WHEN NEW.ttfb_ms < 60 THEN 15 WHEN NEW.ttfb_ms < 80 THEN 16
                WHEN NEW.ttfb_ms < 100 THEN 17 WHEN NEW.ttfb_ms < 120 THEN 18 WHEN NEW.ttfb_ms < 150 THEN 19
                WHEN NEW.ttfb_ms < 200 THEN 20 WHEN NEW.ttfb_ms < 250 THEN 21 WHEN NEW.ttfb_ms < 300 THEN 22
                WHEN NEW.ttfb_ms < 400 THEN 23 WHEN NEW.ttfb_ms < 500 THEN 24 WHEN NEW.ttfb_ms < 600 THEN 25
                WHEN NEW.ttfb_ms < 800 THEN 26 WHEN NEW.ttfb_ms < 1000 THEN 27 WHEN NEW.ttfb_ms < 1200 THEN 28
                WHEN NEW.ttfb_ms < 1500 THEN 29 WHEN NEW.ttfb_ms < 2000 THEN 30 WHEN NEW.ttfb_ms < 2500 THEN 31
                WHEN NEW.ttfb_ms < 3000 THEN 32 WHEN NEW.ttfb_ms < 4000 THEN 33 WHEN NEW.ttfb_ms < 5000 THEN 34
                WHEN NEW.ttfb_ms < 6000 THEN 35 WHEN NEW.ttfb_ms < 8000 THEN 36 WHEN NEW.ttfb_ms < 10000 THEN 37
                WHEN NEW.ttfb_ms < 12000 THEN 38 WHEN NEW.ttfb_ms < 15000 THEN 39 WHEN NEW.ttfb_ms < 20000 THEN 40
                WHEN NEW.ttfb_ms < 25000 THEN 41 WHEN NEW.ttfb_ms < 30000 THEN 42 WHEN NEW.ttfb_ms < 40000 THEN 43
                WHEN NEW.ttfb_ms < 50000 THEN 44 WHEN NEW.ttfb_ms < 60000 THEN 45 WHEN NEW.ttfb_ms < 80000 THEN 46
                WHEN NEW.ttfb_ms < 100000 THEN 47 WHEN NEW.ttfb_ms < 120000 THEN 48
                WHEN NEW.ttfb_ms < 150000 THEN 49 ELSE 50 END AS b) WHERE 1
  ON CONFLICT (bucket, user_id, key_id, app, provider_id, provider, model, status) DO UPDATE SET
    calls = calls + excluded.calls, input_tokens = input_tokens + excluded.input_tokens,
    output_tokens = output_tokens + excluded.output_tokens,
    cache_read_tokens = cache_read_tokens + excluded.cache_read_tokens,
    cache_write_tokens = cache_write_tokens + excluded.cache_write_tokens,
    cache_write_1h_tokens = cache_write_1h_tokens + excluded.cache_write_1h_tokens,
    audio_ms = audio_ms + excluded.audio_ms, characters = characters + excluded.characters,
    video_seconds = video_seconds + excluded.video_seconds, credits = credits + excluded.credits,
    cache_saved = cache_saved + excluded.cache_saved, h0 = h0 + excluded.h0, h1 = h1 + excluded.h1,
    h2 = h2 + excluded.h2, h3 = h3 + excluded.h3, h4 = h4 + excluded.h4, h5 = h5 + excluded.h5,
    h6 = h6 + excluded.h6, h7 = h7 + excluded.h7, h8 = h8 + excluded.h8, h9 = h9 + excluded.h9,
    h10 = h10 + excluded.h10, h11 = h11 + excluded.h11, h12 = h12 + excluded.h12, h13 = h13 + excluded.h13,
    h14 = h14 + excluded.h14, h15 = h15 + excluded.h15, h16 = h16 + excluded.h16, h17 = h17 + excluded.h17,
    h18 = h18 + excluded.h18, h19 = h19 + excluded.h19, h20 = h20 + excluded.h20, h21 = h21 + excluded.h21,
    h22 = h22 + excluded.h22, h23 = h23 + excluded.h23, h24 = h24 + excluded.h24, h25 = h25 + excluded.h25,
    h26 = h26 + excluded.h26, h27 = h27 + excluded.h27, h28 = h28 + excluded.h28, h29 = h29 + excluded.h29,
    h30 = h30 + excluded.h30, h31 = h31 + excluded.h31, h32 = h32 + excluded.h32, h33 = h33 + excluded.h33,
    h34 = h34 + excluded.h34, h35 = h35 + excluded.h35, h36 = h36 + excluded.h36, h37 = h37 + excluded.h37,
    h38 = h38 + excluded.h38, h39 = h39 + excluded.h39, h40 = h40 + excluded.h40, h41 = h41 + excluded.h41,
    h42 = h42 + excluded.h42, h43 = h43 + excluded.h43, h44 = h44 + excluded.h44, h45 = h45 + excluded.h45,
    h46 = h46 + excluded.h46, h47 = h47 + excluded.h47, h48 = h48 + excluded.h48, h49 = h49 + excluded.h49,
    h50 = h50 + excluded.h50;
END;
