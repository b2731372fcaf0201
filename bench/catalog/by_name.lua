-- wrk script: GET by-name for a random component among N (set N in the environment).
local n = tonumber(os.getenv("N_COMPONENTS") or "1000")
request = function()
  return wrk.format("GET", "/api/catalog/entities/by-name/component/default/component-" .. math.random(0, n - 1))
end
