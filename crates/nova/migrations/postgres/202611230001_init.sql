-- Catalog locations (configured and registered) and the last result of reading each.
CREATE TABLE catalog_locations (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    target TEXT NOT NULL,
    origin TEXT NOT NULL,
    position BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (type, target)
);

CREATE TABLE catalog_location_state (
    location_id TEXT PRIMARY KEY REFERENCES catalog_locations (id) ON DELETE CASCADE,
    state TEXT NOT NULL,
    digest TEXT NOT NULL,
    refreshed_at BIGINT NOT NULL,
    last_success_at BIGINT,
    last_error TEXT
);

-- Background jobs, claimed with a lease.
CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    dedupe_key TEXT UNIQUE,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    run_at BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE INDEX jobs_due ON jobs (state, run_at);
