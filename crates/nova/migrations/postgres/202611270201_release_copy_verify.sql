-- Per-environment image repositories and verification after the GitOps write
-- (docs/RELEASE.md). release_promotions.state gains two values: 'copying' (the image is being
-- copied into the environment's repository, between waiting and writing) and 'verifying'
-- (written; the environment's check has not passed yet, between writing and done).
ALTER TABLE release_promotions ADD COLUMN deployed_repository TEXT; -- the repository the GitOps write named
ALTER TABLE release_promotions ADD COLUMN verify_deadline BIGINT;   -- verifying: when the check gives up
ALTER TABLE release_promotions ADD COLUMN verified_at BIGINT;       -- when the check passed
