-- bench/wrk-cycle.lua - wrk script of make bench: cycles through request bodies.
--
--   wrk -t2 -c32 -d15s -s bench/wrk-cycle.lua URL -- BODIES plain|wrap THREADS
--
-- BODIES is a file with one JSON request a line (bench/gen_requests). Each
-- wrk thread reads it once in init() and pre-formats one POST per line
-- (wrk.format), then request() hands them out in order, thread t starting at
-- line t*n/THREADS so the threads do not move in lock-step. With "wrap" the
-- body is {"input": <line>} (Open Policy Agent's data API), with "plain" the
-- line itself.
-- Connections are keep-alive (wrk's default, HTTP/1.1).
--
-- done() prints ONE line to stdout: "WRK_JSON {...}" with the totals and the
-- latency percentiles of wrk's own histogram (microsecond resolution, from
-- the write of a request to the end of its response on the same connection,
-- i.e. closed loop). bench/run.sh picks that line out of wrk's output.

local counter = 0

-- runs in the main state, once per thread, before that thread's init()
function setup(thread)
   thread:set("tid", counter)
   counter = counter + 1
end

local reqs = {}
local n = 0
local i = 0

function init(args)
   local path = args[1]
   local wrap = args[2] == "wrap"
   local f = assert(io.open(path, "r"))
   for line in f:lines() do
      if #line > 0 then
         local body = line
         if wrap then body = '{"input":' .. line .. '}' end
         n = n + 1
         reqs[n] = wrk.format("POST", nil, { ["Content-Type"] = "application/json" }, body)
      end
   end
   f:close()
   assert(n > 0, "no request bodies in " .. path)
   local nthreads = tonumber(args[3]) or 1
   i = math.floor(tid * n / nthreads) % n
end

function request()
   i = i + 1
   if i > n then i = 1 end
   return reqs[i]
end

function done(summary, latency, requests)
   local e = summary.errors
   local errors = e.connect + e.read + e.write + e.status + e.timeout
   io.write(string.format(
      'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"errors":%d,' ..
      '"errors_detail":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"p50_us":%d,"p95_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f,"stdev_us":%.1f}\n',
      summary.requests, summary.duration, summary.bytes, errors,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(95), latency:percentile(99),
      latency:percentile(99.9), latency.max, latency.mean, latency.stdev))
end
