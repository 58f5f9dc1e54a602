-- The audit log: one entry per admin write request (an owner's or admin's
-- request to a route that changes something). The entry is written in the
-- same transaction as the request's first change (so there is never a change
-- without its entry) and finished once the request has been answered (its
-- HTTP status and the resource as it then stands); a request refused before
-- changing anything gets its entry then, with its 4xx status. Before and after are the resource as the admin API shows it:
-- secrets only as masked hints. Never pruned: the triggers below refuse
-- deletes and any change to a finished entry.
CREATE TABLE audit_log (
  id                TEXT PRIMARY KEY,
  at                INTEGER NOT NULL,
  -- Who: the user, and the key (`key_…`) or browser session (`ses_…`) they used.
  actor_user_id     TEXT NOT NULL,
  actor_key_id      TEXT,
  actor_session_id  TEXT,
  request_id        TEXT NOT NULL,
  method            TEXT NOT NULL,
  path              TEXT NOT NULL,
  -- What: the kind of resource (`provider`, `key`, `settings`, …), its id
  -- (NULL for settings, or until a create's answer names it) and the action.
  resource          TEXT NOT NULL,
  resource_id       TEXT,
  action            TEXT NOT NULL,
  -- JSON: the request body (secret fields masked), the resource before and after.
  request           TEXT,
  before            TEXT,
  after             TEXT,
  -- The answer's HTTP status; NULL while the request runs (or if the process
  -- stopped before answering: the change committed, its outcome unknown).
  status            INTEGER,
  finished_at       INTEGER
);
CREATE INDEX audit_log_actor ON audit_log (actor_user_id, id);
CREATE INDEX audit_log_resource ON audit_log (resource, resource_id, id);

CREATE TRIGGER audit_log_never_deleted BEFORE DELETE ON audit_log
BEGIN
  SELECT RAISE(ABORT, 'the audit log is append-only');
END;

CREATE TRIGGER audit_log_finished_once BEFORE UPDATE ON audit_log
WHEN OLD.status IS NOT NULL
BEGIN
  SELECT RAISE(ABORT, 'a finished audit entry cannot change');
END;
