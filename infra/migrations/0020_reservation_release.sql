-- A call's reservation against its key's limits and its team's budget is
-- the worst case until the call settles. One that never settles (the
-- process died, a function timed out) is released when its hold would have
-- expired: the scheduled tick sets its spend to 0, and the running totals'
-- triggers give the reservation back. Settled rows have no release time.
ALTER TABLE key_events ADD COLUMN release_at INTEGER;
CREATE INDEX key_events_release ON key_events (release_at) WHERE release_at IS NOT NULL;
