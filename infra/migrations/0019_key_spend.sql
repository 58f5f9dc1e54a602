-- Running totals of what each key's calls spent per UTC day and per UTC
-- month, kept by triggers on key_events (as team_spend is for team
-- budgets), so admitting a call under a daily or monthly spend cap reads
-- one row instead of summing every call of the day or month.
CREATE TABLE key_spend (
  key_id  TEXT NOT NULL,
  grain   TEXT NOT NULL CHECK (grain IN ('day', 'month')),
  -- The UTC day's or month's start (ms).
  start   INTEGER NOT NULL,
  spent   INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (key_id, grain, start)
);

-- What the calls recorded so far spent.
INSERT INTO key_spend (key_id, grain, start, spent)
  SELECT key_id, 'day', at - at % 86400000, SUM(spent) FROM key_events GROUP BY key_id, at - at % 86400000;
INSERT INTO key_spend (key_id, grain, start, spent)
  SELECT key_id, 'month', CAST(strftime('%s', at / 1000, 'unixepoch', 'start of month') AS INTEGER) * 1000, SUM(spent)
  FROM key_events GROUP BY key_id, strftime('%Y-%m', at / 1000, 'unixepoch');

CREATE TRIGGER key_events_key_reserve AFTER INSERT ON key_events
BEGIN
  INSERT INTO key_spend (key_id, grain, start, spent) VALUES (NEW.key_id, 'day', NEW.at - NEW.at % 86400000, NEW.spent)
  ON CONFLICT (key_id, grain, start) DO UPDATE SET spent = spent + excluded.spent;
  INSERT INTO key_spend (key_id, grain, start, spent)
  VALUES (NEW.key_id, 'month', CAST(strftime('%s', NEW.at / 1000, 'unixepoch', 'start of month') AS INTEGER) * 1000, NEW.spent)
  ON CONFLICT (key_id, grain, start) DO UPDATE SET spent = spent + excluded.spent;
END;

CREATE TRIGGER key_events_key_settle AFTER UPDATE OF spent ON key_events
WHEN NEW.spent <> OLD.spent
BEGIN
  UPDATE key_spend SET spent = spent + NEW.spent - OLD.spent
  WHERE key_id = NEW.key_id
    AND ((grain = 'day' AND start = NEW.at - NEW.at % 86400000)
      OR (grain = 'month' AND start = CAST(strftime('%s', NEW.at / 1000, 'unixepoch', 'start of month') AS INTEGER) * 1000));
END;
