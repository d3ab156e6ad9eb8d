-- Conversions from a bot (webhook, POST JSON), a partner network (postback, GET) or a backend sending
-- them in batches (batch: WRK_BATCH conversions a POST), about 10 % of them repeats of a transaction id
-- this thread already sent (same click, same amount: a true duplicate).
--   WRK_MODE       webhook | postback | batch
--   WRK_BATCH      conversions a batch (default 100)
--   WRK_KEY        the intake API key (header for the webhook, ?key= for the postback)
--   WRK_CLICKS     file of click ids created beforehand, one a line
--   WRK_TX_PREFIX  prefix of this run's transaction ids (the thread number and a counter follow)
--   WRK_DUP_RATIO  share of repeats (default 0.1)
-- distinct = transaction ids this thread sent; sent - distinct = repeats. Each request carries its
-- transaction id as X-Request-ID, which the tracker echoes (ops.middleware): the ids of the 2xx answers
-- go to $WRK_IDS, so the bench can check that every answered conversion is stored. A batch carries its
-- own id instead, and the transaction ids of the 2xx batches go to $WRK_IDS.

dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

local mode, key, click_ids, prefix, dup_ratio, batch_size
local batches, batches_sent = {}, 0 -- batch id -> its transaction ids

function init(args)
  seed_random()
  mode = assert(os.getenv("WRK_MODE"), "set WRK_MODE")
  key = assert(os.getenv("WRK_KEY"), "set WRK_KEY")
  click_ids = read_lines(assert(os.getenv("WRK_CLICKS"), "set WRK_CLICKS"))
  prefix = assert(os.getenv("WRK_TX_PREFIX"), "set WRK_TX_PREFIX") .. thread_no .. "-"
  dup_ratio = tonumber(os.getenv("WRK_DUP_RATIO") or "0.1")
  batch_size = tonumber(os.getenv("WRK_BATCH") or "100")
end

local function next_conversion()
  sent = sent + 1
  local n
  if distinct > 0 and math.random() < dup_ratio then
    n = math.random(distinct)
  else
    distinct = distinct + 1
    n = distinct
  end
  return prefix .. n, click_ids[(n * 7919 + thread_no) % #click_ids + 1] -- the same click for a repeat
end

local function batch_request()
  batches_sent = batches_sent + 1
  local batch_id, txids, items = prefix .. "batch-" .. batches_sent, {}, {}
  for i = 1, batch_size do
    local txid, click_id = next_conversion()
    txids[i] = txid
    items[i] = string.format('{"utm_id": "%s", "amount": 5000, "currency": "USD", "transaction_id": "%s", ' ..
      '"product_name": "Gold Lootbox", "event": "purchase"}', click_id, txid)
  end
  batches[batch_id] = txids
  return wrk.format("POST", "/api/v1/utm/webhook/conversions",
    { ["Authorization"] = "Api-Key " .. key, ["Content-Type"] = "application/json",
      ["User-Agent"] = "demo-backend/1.0", ["X-Request-ID"] = batch_id },
    '{"conversions": [' .. table.concat(items, ", ") .. "]}")
end

function request()
  if mode == "batch" then return batch_request() end
  local txid, click_id = next_conversion()
  if mode == "webhook" then
    local body = string.format('{"utm_id": "%s", "amount": 5000, "currency": "USD", "transaction_id": "%s", ' ..
      '"product_name": "Gold Lootbox", "event": "purchase"}', click_id, txid)
    return wrk.format("POST", "/api/v1/utm/webhook/conversion",
      { ["Authorization"] = "Api-Key " .. key, ["Content-Type"] = "application/json",
        ["User-Agent"] = "demo-bot/1.0", ["X-Request-ID"] = txid }, body)
  end
  return wrk.format("GET", string.format("/postback?key=%s&click_id=%s&payout=7.50&status=approved&txid=%s&goal=deposit",
    key, click_id, txid), { ["User-Agent"] = "partner-network-postback/2.1", ["X-Request-ID"] = txid })
end

function response(status, headers, body)
  count_answer(status)
  local txid = headers["X-Request-ID"] or headers["x-request-id"]
  if not txid or status < 200 or status >= 300 then return end
  if mode == "batch" then
    for _, batch_txid in ipairs(batches[txid] or {}) do ids[#ids + 1] = batch_txid end
  else
    ids[#ids + 1] = txid
  end
end
