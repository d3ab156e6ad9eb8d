-- Shared by bench/wrk/*.lua (loaded with dofile): per-thread counters, visitor IPs, and done(), which
-- writes one JSON report to $WRK_REPORT (and, when a script collected ids, one per line to $WRK_IDS).
--
-- Every thread counts the requests it sent (request()) and the answers by status (response()), so
-- the bench can tell answers from requests still in flight when wrk stopped.

local threads = {}

function setup(thread)
  thread:set("thread_no", #threads + 1)
  table.insert(threads, thread)
end

sent = 0
statuses = {}
ids = {}
distinct = 0 -- scripts that draw duplicates count the distinct keys they sent here

function count_answer(status)
  statuses[status] = (statuses[status] or 0) + 1
end

-- First octets of public IPv4 blocks (Europe, the Americas, Asia) so GeoIP finds most addresses.
local FIRST_OCTETS = { 2, 5, 24, 31, 37, 46, 49, 50, 58, 59, 60, 61, 62, 66, 67, 68, 69, 70, 71, 72, 73,
  74, 75, 76, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92, 93, 94, 95, 96, 97, 98, 99,
  101, 103, 106, 109, 110, 111, 112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125,
  151, 176, 177, 178, 179, 180, 181, 182, 183, 185, 186, 187, 188, 189, 190, 191, 193, 194, 195, 200,
  201, 202, 203, 210, 211, 212, 213, 217, 218, 219, 220, 221, 222 }

function random_ip()
  return string.format("%d.%d.%d.%d", FIRST_OCTETS[math.random(#FIRST_OCTETS)], math.random(0, 255),
    math.random(0, 255), math.random(1, 254))
end

function seed_random()
  math.randomseed(os.time() * 100 + (thread_no or 0))
  for _ = 1, 10 do math.random() end
end

function read_lines(path)
  local lines = {}
  for line in assert(io.open(path)):lines() do
    if line ~= "" then table.insert(lines, line) end
  end
  assert(#lines > 0, "no lines in " .. path)
  return lines
end

function done(summary, latency, requests)
  local total_sent, total_distinct, by_status = 0, 0, {}
  local ids_path = os.getenv("WRK_IDS")
  local ids_file = ids_path and assert(io.open(ids_path, "w"))
  for _, thread in ipairs(threads) do
    total_sent = total_sent + (thread:get("sent") or 0)
    total_distinct = total_distinct + (thread:get("distinct") or 0)
    for status, n in pairs(thread:get("statuses") or {}) do
      by_status[status] = (by_status[status] or 0) + n
    end
    if ids_file then
      for _, id in ipairs(thread:get("ids") or {}) do ids_file:write(id, "\n") end
    end
  end
  if ids_file then ids_file:close() end
  local statuses_json = {}
  for status, n in pairs(by_status) do table.insert(statuses_json, string.format('"%d": %d', status, n)) end
  local errors = summary.errors
  local report = assert(io.open(assert(os.getenv("WRK_REPORT"), "set WRK_REPORT"), "w"))
  report:write(string.format(
    '{"duration_us": %d, "requests": %d, "bytes": %d, "sent": %d, "distinct_keys": %d, ' ..
    '"statuses": {%s}, "errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"min": %d, "mean": %.1f, "p50": %d, "p90": %d, "p99": %d, "p999": %d, "max": %d}}\n',
    summary.duration, summary.requests, summary.bytes, total_sent, total_distinct, table.concat(statuses_json, ", "),
    errors.connect, errors.read, errors.write, errors.status, errors.timeout,
    latency.min, latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max))
  report:close()
end
