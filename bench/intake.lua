-- wrk script for the intake benchmark: each wrk thread takes every n-th line
-- of the deliveries file (hex signature, tab, body) and sends them in turn.
-- usage: wrk ... -s intake.lua URL -- FILE THREADS
--
-- The lines are read as they are sent, not loaded in init(): wrk runs each
-- thread's init() on its main thread and starts that thread at once, before
-- the next thread's init() and before it starts its clock. A thread that
-- loaded 750,000 lines there let the threads started before it send for
-- seconds outside the measured time, and their requests were counted in it.
local counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end

local file, path, nthreads, head

function init(args)
  path, nthreads = args[1], tonumber(args[2])
  file = assert(io.open(path, "r"))
  -- This thread's first line is line tid + 1.
  for _ = 1, tid do file:read("l") end
  -- What wrk.format() would write before the signature, built once: one
  -- concatenation per request keeps the client's own cost low.
  local host = wrk.port and (wrk.host .. ":" .. wrk.port) or wrk.host
  head = "POST " .. wrk.path .. " HTTP/1.1\r\nHost: " .. host ..
    "\r\nContent-Type: application/json\r\nx-clay-signature: "
end

-- The next line of this thread's share: the one after nthreads - 1 others.
local function next_line()
  local line = file:read("l")
  if line == nil then -- past the end: from here on, duplicates
    file:close()
    file = assert(io.open(path, "r"))
    for _ = 1, tid do file:read("l") end
    line = assert(file:read("l"), "no deliveries in " .. path)
  end
  for _ = 2, nthreads do file:read("l") end
  return line
end

function request()
  local line = next_line()
  local tab = line:find("\t", 1, true)
  return head .. line:sub(1, tab - 1) .. "\r\nContent-Length: " .. (#line - tab) .. "\r\n\r\n" ..
    line:sub(tab + 1)
end

function done(summary, latency, requests)
  local non2xx = summary.errors.status
  local errs = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT requests=%d seconds=%.3f rps=%.0f p50_ms=%.3f p99_ms=%.3f non2xx=%d socket_errors=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, non2xx, errs))
end
