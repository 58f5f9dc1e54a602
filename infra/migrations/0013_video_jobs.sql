-- OpenAI's asynchronous videos (`/v1/videos`): one row per generation Hub
-- started at a provider and follows until it ends. The call's hold (holds.id
-- = call_id on a shared database; the credit book's on an embedded one)
-- stays open while the job runs, and is settled or released exactly once:
-- the conditional UPDATE that moves `status` out of queued/in_progress
-- decides the outcome, and `settled_at` records that its writes (usage,
-- ledger, hold, call log) committed.
CREATE TABLE video_jobs (
  id              TEXT PRIMARY KEY,      -- Hub's video id (video_…), never the provider's
  call_id         TEXT NOT NULL UNIQUE,  -- the call: its hold, usage row, ledger entry and call log
  attempt         INTEGER NOT NULL,      -- the call's attempt that started the job (its call-log row)
  user_id         TEXT NOT NULL,
  key_id          TEXT,
  app             TEXT,
  request_id      TEXT,
  provider_id     TEXT NOT NULL,
  provider        TEXT NOT NULL,         -- the provider's name, for the call log
  credential_id   TEXT,                  -- the credential that started the job (and polls it)
  upstream_id     TEXT NOT NULL,         -- the provider's job id (Sora video id, Veo operation name)
  upstream_model  TEXT NOT NULL,         -- the provider's model id
  model           TEXT NOT NULL,         -- the model as the caller named it
  prompt          TEXT NOT NULL,
  seconds         INTEGER,               -- asked for (NULL: the provider's default)
  size            TEXT,
  held_seconds    INTEGER NOT NULL,      -- the most billed: what the hold covers
  video_rate      INTEGER NOT NULL,      -- nano-credits per second, as held
  billed          INTEGER NOT NULL,      -- billing was on: the credits come off the balance
  held            INTEGER NOT NULL,      -- nano-credits held (0 with billing off)
  key_limited     INTEGER NOT NULL,      -- the key's limits reserved this call (key_events)
  status          TEXT NOT NULL CHECK (status IN ('queued', 'in_progress', 'completed', 'failed')),
  progress        INTEGER NOT NULL DEFAULT 0,
  billed_seconds  INTEGER,               -- once completed: the seconds billed
  credits         INTEGER NOT NULL DEFAULT 0,
  content_url     TEXT,                  -- once completed: where the provider serves the video
  error           TEXT,
  created_at      INTEGER NOT NULL,
  updated_at      INTEGER NOT NULL,
  checked_at      INTEGER NOT NULL,      -- the last poll of the provider
  deadline_at     INTEGER NOT NULL,      -- still running then: failed, the hold released
  completed_at    INTEGER,
  expires_at      INTEGER,               -- when the provider stops serving the video
  decided_by      TEXT,                  -- a token of the decision, to tell its maker it won
  settled_at      INTEGER,               -- the outcome's writes committed
  deleted_at      INTEGER                -- deleted by its owner: listed and served no more
);
CREATE INDEX video_jobs_user ON video_jobs (user_id, created_at);
CREATE INDEX video_jobs_open ON video_jobs (checked_at) WHERE status IN ('queued', 'in_progress');
CREATE INDEX video_jobs_unsettled ON video_jobs (completed_at) WHERE settled_at IS NULL AND status IN ('completed', 'failed');
