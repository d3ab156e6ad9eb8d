-- Visitors opening a tracking link (or the bare baseline): GET with a mobile user agent and a different
-- X-Forwarded-For on every request (gunicorn's peer, 127.0.0.1, is a trusted proxy), so the unique check
-- and GeoIP see a crowd, not one visitor.
--   WRK_PATHS  optional file of paths, one a line: each request picks one at random (1,000 links)
--   WRK_UA     the User-Agent header
-- Answers are counted by status; the click id of each answer (from the Location header or the landing
-- page's t.me link) is kept and written to $WRK_IDS, so the bench can check each one is stored.

dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

local paths
local user_agent = os.getenv("WRK_UA") or "Mozilla/5.0"

function init(args)
  seed_random()
  local paths_file = os.getenv("WRK_PATHS")
  paths = paths_file and read_lines(paths_file) or { wrk.path }
end

function request()
  sent = sent + 1
  local path = paths[#paths == 1 and 1 or math.random(#paths)]
  return wrk.format("GET", path, { ["User-Agent"] = user_agent, ["X-Forwarded-For"] = random_ip(),
    ["Accept"] = "text/html,application/xhtml+xml" })
end

function response(status, headers, body)
  count_answer(status)
  local location = headers["Location"] or headers["location"] or ""
  local click_id = location:match("[?&]start=([%w_%-]+)") or location:match("[?&]click_id=([%w_%-]+)")
  if not click_id and status == 200 then
    click_id = body:match('href="https://t%.me/[%w_]+%?start=([%w_%-]+)"')
  end
  if click_id then ids[#ids + 1] = click_id end
end
