-- wrk script: GET <prefix><id>, rotating over the ids listed one per line in a file,
-- and print the same JSON summary line as ../shared/bench/get.lua at the end.
-- Usage: wrk ... -s rotate.lua http://127.0.0.1:PORT -- /api/jobs/ ids.txt

local ids = {}
local prefix = "/"
local position = 0

init = function(args)
  prefix = args[1]
  for line in io.lines(args[2]) do
    if #line > 0 then ids[#ids + 1] = line end
  end
  -- Each thread starts at its own place in the list.
  position = math.random(#ids)
end

request = function()
  position = position % #ids + 1
  return wrk.format("GET", prefix .. ids[position])
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'JSON {"requests":%d,"duration_us":%d,"non2xx3xx":%d,"socket_errors":%d,"p50_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
