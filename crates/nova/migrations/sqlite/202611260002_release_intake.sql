-- Intake webhook signatures seen within the replay window (SHA-256 of the signature header):
-- the same signed request sent twice is refused. Rows older than twice the window are pruned.
CREATE TABLE release_intake_seen (
    signature TEXT PRIMARY KEY,
    seen_at BIGINT NOT NULL
);
