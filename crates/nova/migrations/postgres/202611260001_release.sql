-- Release: artifacts (images identified by digest), promotions through environments, their
-- approvals, and the pins a rollback leaves (docs/RELEASE.md).
CREATE TABLE release_artifacts (
    id TEXT PRIMARY KEY,
    component_ref TEXT NOT NULL,
    repository TEXT NOT NULL,            -- where the image was pushed, e.g. registry.example.com/team/app
    digest TEXT NOT NULL,                -- the identity: sha256:...
    tags TEXT NOT NULL,                  -- JSON array of tags it was pushed with (display only)
    git_ref TEXT,                        -- branch, tag or commit the image was built from
    git_revision TEXT,                   -- the commit, when known
    build_id TEXT,                       -- Nova's build that made it, if any
    source TEXT NOT NULL,                -- build | intake
    created_at BIGINT NOT NULL,
    auto_checked BIGINT NOT NULL DEFAULT 0, -- 1 once auto-promotion has looked at it
    UNIQUE (component_ref, repository, digest)
);
CREATE INDEX release_artifacts_component ON release_artifacts (component_ref, created_at);

-- state: awaiting_approval -> waiting -> writing -> done | failed | rejected | superseded
CREATE TABLE release_promotions (
    id TEXT PRIMARY KEY,
    component_ref TEXT NOT NULL,
    environment TEXT NOT NULL,
    artifact_id TEXT NOT NULL REFERENCES release_artifacts (id),
    requested_by TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    rollback BIGINT NOT NULL DEFAULT 0,  -- 1: an earlier artifact; pins the environment
    automatic BIGINT NOT NULL DEFAULT 0, -- 1: made by auto-promotion
    not_before BIGINT,                   -- the wait gate: not written before this time
    commit_sha TEXT,                     -- the GitOps commit that holds it
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    finished_at BIGINT
);
CREATE INDEX release_promotions_component ON release_promotions (component_ref, environment, created_at);

CREATE TABLE release_approvals (
    promotion_id TEXT NOT NULL REFERENCES release_promotions (id),
    approver TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (promotion_id, approver)
);

-- A rollback pins its environment: auto-promotion leaves it alone until the pin is released
-- or someone promotes explicitly.
CREATE TABLE release_pins (
    component_ref TEXT NOT NULL,
    environment TEXT NOT NULL,
    promotion_id TEXT NOT NULL,
    pinned_by TEXT NOT NULL,
    pinned_at BIGINT NOT NULL,
    PRIMARY KEY (component_ref, environment)
);
