-- Teams: members with a team role, a budget that resets each period in the
-- team's time zone, models the team may use, default limits for its keys,
-- and keys of its own.
--
-- A team's budget covers every call made with a key of the team (a member's
-- key created in it, or one of the team's service keys). It is reserved and
-- settled through the same key_events row as the key's own limits: the row
-- carries the team and the start of the budget period it counts in, and the
-- triggers below keep team_spend.spent = SUM(key_events.spent) per team and
-- period, so admission checks one row (see Store::admit_key_call).
--
-- Each team has an account: a user of its own (no email, so nobody signs in
-- as it) whose credits its service keys spend when billing is on.
CREATE TABLE teams (
  id              TEXT PRIMARY KEY,
  name            TEXT NOT NULL,
  account_id      TEXT NOT NULL REFERENCES users (id),
  -- Nano-credits per period; NULL = no budget.
  budget          INTEGER,
  budget_period   TEXT NOT NULL DEFAULT 'monthly'
                  CHECK (budget_period IN ('daily', 'weekly', 'monthly', 'none')),
  -- IANA name; periods start at local midnight (weeks on Monday).
  time_zone       TEXT NOT NULL DEFAULT 'UTC',
  -- JSON array of model names, NULL = every model.
  allowed_models  TEXT,
  -- JSON object: rpm_limit, tpm_limit, daily_spend_cap, monthly_spend_cap given to new keys of the team.
  key_defaults    TEXT,
  created_at      INTEGER NOT NULL,
  updated_at      INTEGER NOT NULL
);
CREATE UNIQUE INDEX teams_name ON teams (name);

CREATE TABLE team_members (
  team_id     TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
  user_id     TEXT NOT NULL REFERENCES users (id),
  role        TEXT NOT NULL CHECK (role IN ('member', 'admin')),
  created_at  INTEGER NOT NULL,
  PRIMARY KEY (team_id, user_id)
);
CREATE INDEX team_members_user ON team_members (user_id);

-- The team a key belongs to, fixed at creation (so usage grouped by team
-- is the same whenever it is read). No foreign key: a deleted team's keys
-- are revoked and keep its id for their history.
ALTER TABLE api_keys ADD COLUMN team_id TEXT;
CREATE INDEX api_keys_team ON api_keys (team_id) WHERE team_id IS NOT NULL;

ALTER TABLE key_events ADD COLUMN team_id TEXT;
-- The start (ms) of the team's budget period the call counts in; 0 for a budget without a period.
ALTER TABLE key_events ADD COLUMN team_period INTEGER;

CREATE TABLE team_spend (
  team_id       TEXT NOT NULL,
  period_start  INTEGER NOT NULL,
  spent         INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (team_id, period_start)
);

CREATE TRIGGER key_events_team_reserve AFTER INSERT ON key_events
WHEN NEW.team_id IS NOT NULL
BEGIN
  INSERT INTO team_spend (team_id, period_start, spent) VALUES (NEW.team_id, NEW.team_period, NEW.spent)
  ON CONFLICT (team_id, period_start) DO UPDATE SET spent = spent + excluded.spent;
END;

CREATE TRIGGER key_events_team_settle AFTER UPDATE OF spent ON key_events
WHEN NEW.team_id IS NOT NULL AND NEW.spent <> OLD.spent
BEGIN
  UPDATE team_spend SET spent = spent + NEW.spent - OLD.spent
  WHERE team_id = NEW.team_id AND period_start = NEW.team_period;
END;
