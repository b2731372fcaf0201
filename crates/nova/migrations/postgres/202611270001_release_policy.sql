-- The policy gate's result for a promotion (gates.policy): what nova-policy found in the
-- manifests of the target directory after the edit, before the commit. JSON as text.
CREATE TABLE release_policy_results (
    promotion_id TEXT PRIMARY KEY,
    result TEXT NOT NULL,
    checked_at BIGINT NOT NULL
);
