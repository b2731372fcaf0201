-- Image builds an owner asked for. One row per build; `state` follows
-- requested -> queued -> running -> succeeded | failed | cancelled | timed_out | lost.
CREATE TABLE builds (
    id TEXT PRIMARY KEY,
    component_ref TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    -- The caller's Idempotency-Key header, if any: the same key gives the same build.
    idempotency_key TEXT,
    pipeline TEXT NOT NULL,
    git_url TEXT NOT NULL,
    git_ref TEXT NOT NULL,
    dockerfile TEXT NOT NULL,
    context TEXT NOT NULL,
    image TEXT NOT NULL,
    tag TEXT NOT NULL,
    -- JSON array of {name, value}.
    build_args TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    finished_at BIGINT,
    -- Why the build failed, in a sentence (failed, timed_out and lost builds).
    reason TEXT,
    -- The pushed image's digest (succeeded builds).
    digest TEXT,
    -- The build's output, bounded by the runner; truncation is marked in the text.
    log TEXT NOT NULL DEFAULT '',
    UNIQUE (requested_by, idempotency_key)
);
CREATE INDEX builds_component ON builds (component_ref, created_at);
