-- Build tracking: the commit a build's ref resolved to, and where a remote backend runs it.
ALTER TABLE builds ADD COLUMN git_commit TEXT;
-- JSON RunHandle {backend, id, url} once a remote backend accepted the build.
ALTER TABLE builds ADD COLUMN run_handle TEXT;
-- The remote log offset already copied into `log`.
ALTER TABLE builds ADD COLUMN run_log_offset BIGINT NOT NULL DEFAULT 0;
CREATE INDEX builds_by_state ON builds (state);
CREATE INDEX builds_by_user ON builds (requested_by, created_at);

-- When each team credential was last handed to a build (the secret store keeps the rest).
CREATE TABLE credential_uses (
    team TEXT NOT NULL,
    name TEXT NOT NULL,
    last_used_at BIGINT NOT NULL,
    last_build TEXT NOT NULL,
    PRIMARY KEY (team, name)
);
