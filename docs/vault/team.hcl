# The sign-in Nova uses for one team's credentials (secrets.team_auth.TEAM): that team's folder
# and nothing else. Install one copy per team, with TEAM replaced by the team's name.
path "secret/data/nova/teams/TEAM/*" {
  capabilities = ["create", "read", "update", "delete"]
}
path "secret/metadata/nova/teams/TEAM/*" {
  capabilities = ["read", "list", "delete"]
}
