-- Registry insight: the last known state of every linked repository, its images and their
-- scan findings, refreshed in the background and served when the registry is unavailable.
CREATE TABLE registry_repositories (
    key TEXT PRIMARY KEY,                -- <registry name>/<repository path>
    registry TEXT NOT NULL,
    repository TEXT NOT NULL,
    state TEXT NOT NULL,                 -- pending | ok | error | not-found (the last attempt)
    generation BIGINT NOT NULL DEFAULT 0,-- bumped whenever images change, for per-process caches
    fetched_at BIGINT,                   -- last successful refresh
    attempted_at BIGINT,                 -- last attempt, successful or not
    error_category TEXT,
    error_message TEXT,
    info TEXT NOT NULL DEFAULT '{}',     -- JSON: ARN, pull host, console URL, resource tags
    image_count BIGINT NOT NULL DEFAULT 0,
    requested_at BIGINT                  -- last on-demand refresh request (rate limit)
);

CREATE TABLE registry_images (
    repo_key TEXT NOT NULL REFERENCES registry_repositories (key) ON DELETE CASCADE,
    digest TEXT NOT NULL,
    sort_time BIGINT NOT NULL,
    data TEXT NOT NULL,                  -- JSON image record
    PRIMARY KEY (repo_key, digest)
);

CREATE TABLE registry_findings (
    repo_key TEXT NOT NULL REFERENCES registry_repositories (key) ON DELETE CASCADE,
    digest TEXT NOT NULL,
    fetched_at BIGINT NOT NULL,
    data TEXT NOT NULL,                  -- JSON scan report
    PRIMARY KEY (repo_key, digest)
);

-- Computed reports (the drift report), the last one kept.
CREATE TABLE registry_reports (
    name TEXT PRIMARY KEY,
    generated_at BIGINT NOT NULL,
    data TEXT NOT NULL
);
