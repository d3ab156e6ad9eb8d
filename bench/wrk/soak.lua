-- The soak's traffic: visitors, a Telegram bot and partner networks on the same tracker at once, at a
-- paced rate. Each request is one of:
--   65 %  a visitor opens a page-mode link (one of the spread links, at random)      GET  /l/<utm_id>
--   15 %  a visitor opens the direct-mode link                                       GET  /l/<utm_id>
--   10 %  the bot reports /start for a click this thread was answered earlier        POST /api/v1/utm/track/click
--    7 %  the bot reports a purchase of a user that started (10 % of them repeats)   POST /api/v1/utm/webhook/conversion
--    3 %  a partner network's postback for a click (10 % of them repeats)            GET  /postback
-- (until the thread has clicks and starts to point at, it sends clicks).
--   WRK_PATHS     file of page-mode link paths, one a line
--   WRK_DIRECT    the direct-mode link's path
--   WRK_KEY       the intake API key
--   WRK_RATE      requests per second of each wrk thread (0: as fast as answers come back)
-- Every request carries X-Request-ID "<kind>-<id>", which the tracker echoes, so response() knows what
-- was answered. Answered ids go to $WRK_IDS as "<kind> <id>" lines: c click id, s Telegram user id,
-- v transaction id (webhook), p transaction id (postback); the bench looks each one up afterwards.

dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } soak_timespec;
  int clock_gettime(int clock_id, soak_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local timespec = ffi.new("soak_timespec")

local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, timespec)
  return tonumber(timespec.tv_sec) * 1000 + tonumber(timespec.tv_nsec) / 1e6
end

local paths, direct, key, interval_ms, next_slot_ms
local user_agent = os.getenv("WRK_UA") or "Mozilla/5.0"
local RING = 2000
local clicks, started, purchases, postbacks = {}, {}, {}, {}
local click_count, start_count, tx_count = 0, 0, 0

local function remember(ring, value, count)
  ring[(count - 1) % RING + 1] = value
end

local function pick(ring)
  return ring[math.random(#ring)]
end

function init(args)
  seed_random()
  paths = read_lines(assert(os.getenv("WRK_PATHS"), "set WRK_PATHS"))
  direct = assert(os.getenv("WRK_DIRECT"), "set WRK_DIRECT")
  key = assert(os.getenv("WRK_KEY"), "set WRK_KEY")
  local rate = tonumber(os.getenv("WRK_RATE") or "0")
  interval_ms = rate > 0 and 1000 / rate or 0
end

-- A fixed schedule per thread (one slot every interval_ms), whatever the latency: the rate stays the one
-- asked for as long as the tracker keeps up. A thread more than a second late starts afresh.
function delay()
  if interval_ms == 0 then return 0 end
  local now = now_ms()
  next_slot_ms = (next_slot_ms and next_slot_ms > now - 1000) and next_slot_ms + interval_ms or now
  return math.max(0, next_slot_ms - now)
end

local function visit(path)
  return wrk.format("GET", path, { ["User-Agent"] = user_agent, ["X-Forwarded-For"] = random_ip(),
    ["Accept"] = "text/html,application/xhtml+xml", ["X-Request-ID"] = "c-" .. sent })
end

-- A new transaction id, or (10 %) one sent before with the same body: a true duplicate.
local function transaction(ring, fields)
  if #ring > 0 and math.random() < 0.1 then
    return unpack(pick(ring))
  end
  tx_count = tx_count + 1
  distinct = distinct + 1
  local sent_before = { string.format("soak-%d-%d", thread_no, tx_count), fields() }
  remember(ring, sent_before, #ring + 1 <= RING and #ring + 1 or math.random(RING))
  return unpack(sent_before)
end

local function webhook()
  local tx, user = transaction(purchases, function() return pick(started) end)
  local body = string.format('{"customer_id": "telegram_%s", "amount": 5000, "currency": "USD", ' ..
    '"transaction_id": "%s", "product_name": "Gold Lootbox", "event": "purchase"}', user, tx)
  return wrk.format("POST", "/api/v1/utm/webhook/conversion",
    { ["Authorization"] = "Api-Key " .. key, ["Content-Type"] = "application/json",
      ["User-Agent"] = "demo-bot/1.0", ["X-Request-ID"] = "v-" .. tx }, body)
end

local function postback()
  local tx, click_id = transaction(postbacks, function() return pick(clicks) end)
  return wrk.format("GET", string.format("/postback?key=%s&click_id=%s&payout=7.50&status=approved&txid=%s",
    key, click_id, tx), { ["User-Agent"] = "partner-network-postback/2.1", ["X-Request-ID"] = "p-" .. tx })
end

local function start()
  start_count = start_count + 1
  local user = string.format("%d%07d", 1000 + thread_no, start_count)
  local body = string.format('{"utm_id": "%s", "user_id": %s, "first_name": "Soak", "language_code": "en"}',
    pick(clicks), user)
  return wrk.format("POST", "/api/v1/utm/track/click",
    { ["Authorization"] = "Api-Key " .. key, ["Content-Type"] = "application/json",
      ["User-Agent"] = "demo-bot/1.0", ["X-Request-ID"] = "s-" .. user }, body)
end

function request()
  sent = sent + 1
  local r = math.random()
  if r < 0.07 and #started > 0 then return webhook() end
  if r < 0.10 and #clicks > 0 then return postback() end
  if r < 0.20 and #clicks > 0 then return start() end
  if r < 0.35 then return visit(direct) end
  return visit(paths[math.random(#paths)])
end

function response(status, headers, body)
  count_answer(status)
  if status >= 400 then return end
  local request_id = headers["X-Request-ID"] or headers["x-request-id"] or ""
  local kind, id = request_id:match("^(%a)%-(.+)$")
  if kind == "c" then
    local location = headers["Location"] or headers["location"] or ""
    local click_id = location:match("[?&]click_id=([%w_%-]+)") or location:match("[?&]start=([%w_%-]+)")
    if not click_id and status == 200 then
      click_id = body:match('href="https://t%.me/[%w_]+%?start=([%w_%-]+)"')
    end
    if click_id then
      click_count = click_count + 1
      remember(clicks, click_id, click_count)
      ids[#ids + 1] = "c " .. click_id
    end
  elseif kind == "s" then
    remember(started, id, #started + 1 <= RING and #started + 1 or math.random(RING))
    ids[#ids + 1] = "s " .. id
  elseif kind == "v" or kind == "p" then
    ids[#ids + 1] = kind .. " " .. id
  end
end
