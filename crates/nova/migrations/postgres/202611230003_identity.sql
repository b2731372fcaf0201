-- Personal API tokens: only a hash of each token is kept.
CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    user_ref TEXT NOT NULL,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    user_known INTEGER NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    last_used_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX api_tokens_user ON api_tokens (user_ref);

-- Sessions ended before they expired (sign-out); kept until their natural expiry.
CREATE TABLE revoked_sessions (
    sid TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
