# Nova's own sign-in: every secret under nova/ in the KV v2 mount `secret`, except the teams'
# folders, which only each team's own sign-in may touch (see team.hcl). Adjust `secret` and
# `nova` if you changed secrets.mount or secrets.prefix.
path "secret/data/nova/*" {
  capabilities = ["create", "read", "update", "delete"]
}
path "secret/metadata/nova/*" {
  capabilities = ["read", "list", "delete"]
}
# Longer paths win over shorter ones: these keep Nova's own token out of every team folder.
# Leave them out if you do not configure per-team sign-ins (secrets.team_auth).
path "secret/data/nova/teams/*" {
  capabilities = ["deny"]
}
path "secret/metadata/nova/teams/*" {
  capabilities = ["deny"]
}
