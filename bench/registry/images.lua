-- wrk script: the first page of the benchmark component's images, alternating plain and
-- filtered requests (all served from Nova's cache).
local paths = {
  "/api/v1/components/component/default/bench/images?limit=50",
  "/api/v1/components/component/default/bench/images?limit=50&offset=5000",
  "/api/v1/components/component/default/bench/images?tag=build-0999&limit=50",
}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1])
end
