-- wrk script: components owned by a random team, 50 per page.
local n = tonumber(os.getenv("N_GROUPS") or "100")
request = function()
  return wrk.format("GET", "/api/catalog/entities/by-query?filter=kind=component,relations.ownedBy=group:default/team-" .. math.random(0, n - 1) .. "&limit=50")
end
