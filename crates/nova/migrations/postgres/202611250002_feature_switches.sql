-- A minimal on/off switch per feature (registry.image-view), until the feature-flag system
-- replaces it. A missing row means the feature's default.
CREATE TABLE feature_switches (
    key TEXT PRIMARY KEY,
    enabled BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
