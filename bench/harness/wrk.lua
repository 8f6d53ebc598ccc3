-- For bench/harness/wrk.ts: counts the answers by status, and at the end writes one JSON line
-- with the counts, the requests, the seconds and the response times' quantiles (every tenth of
-- a percentile, in microseconds, from wrk's own histogram of 1 µs steps).
local threads = {}

function setup (thread)
  table.insert(threads, thread)
end

function init ()
  statuses = {}
end

function response (status)
  statuses[status] = (statuses[status] or 0) + 1
end

function done (summary, latency)
  local counts = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get('statuses')) do
      counts[#counts + 1] = string.format('"%d":%d', status, n)
    end
  end
  local quantiles = {}
  if summary.requests > 0 then
    -- wrk finds a percentile by walking its histogram up from the fastest answer: the 100th
    -- is its maximum, read directly rather than walked to.
    for tenth = 1, 999 do quantiles[tenth] = string.format('%d', latency:percentile(tenth / 10)) end
    quantiles[1000] = string.format('%d', latency.max)
  end
  local e = summary.errors
  io.write(string.format('\n{"requests":%d,"micros":%d,"errors":%d,"statuses":{%s},"quantiles":[%s]}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout,
    table.concat(counts, ','), table.concat(quantiles, ',')))
end
