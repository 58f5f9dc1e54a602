-- People sign in: identities (an OpenID Connect subject, or an email address
-- proven by a link) belong to users; browser sessions and email sign-in links
-- are stored only as keyed hashes of their secrets.

-- One row per way a user signs in. `issuer` is the OpenID provider's issuer
-- URL, or 'email' for email links (then `subject` is the address, lower-case).
CREATE TABLE identities (
  id            TEXT PRIMARY KEY,
  user_id       TEXT NOT NULL REFERENCES users (id),
  issuer        TEXT NOT NULL,
  subject       TEXT NOT NULL,
  email         TEXT,
  created_at    INTEGER NOT NULL,
  last_used_at  INTEGER NOT NULL,
  UNIQUE (issuer, subject)
);
CREATE INDEX identities_user ON identities (user_id);

CREATE TABLE sessions (
  id            TEXT PRIMARY KEY,
  user_id       TEXT NOT NULL REFERENCES users (id),
  token_hash    TEXT NOT NULL UNIQUE,
  user_agent    TEXT,
  -- How the session was opened: 'oidc' or 'email'.
  method        TEXT NOT NULL,
  created_at    INTEGER NOT NULL,
  last_seen_at  INTEGER NOT NULL,
  -- Slides forward as the session is used.
  expires_at    INTEGER NOT NULL,
  revoked_at    INTEGER
);
CREATE INDEX sessions_user ON sessions (user_id);

-- Every request for an email link (sent or not), for the per-address and
-- per-IP limits; `token_hash` is set when a link was sent.
CREATE TABLE email_links (
  id            TEXT PRIMARY KEY,
  email         TEXT NOT NULL,
  ip            TEXT NOT NULL,
  token_hash    TEXT UNIQUE,
  return_to     TEXT,
  created_at    INTEGER NOT NULL,
  expires_at    INTEGER NOT NULL,
  used_at       INTEGER
);
CREATE INDEX email_links_email ON email_links (email, created_at);
CREATE INDEX email_links_ip ON email_links (ip, created_at);
