-- wrk script: Nova's mixed read workload, each request in turn: catalog queries (a filter, a
-- full-text search, by name), a component's console page, and a component's image list.
local paths = {
  "/api/catalog/entities?filter=kind=component&limit=20",
  "/api/catalog/entities/by-query?fullTextFilterTerm=payment&limit=20",
  "/api/catalog/entities/by-name/component/default/payment-service",
  "/catalog/default/component/payment-service",
  "/api/v1/components/component/default/bench/images?limit=50",
}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1])
end
