-- bench/wrk-token.lua - wrk script of make bench: OAuth 2.0 client-credentials token issuance.
--
--   wrk -t2 -c32 -d15s -s bench/wrk-token.lua URL -- CLIENT_ID CLIENT_SECRET [SCOPE] [TENANT]
--
-- Every request is the RFC 6749 §4.4 token request: POST, HTTP Basic client authentication
-- (RFC 6749 §2.3.1: id and secret form-urlencoded, then base64), body
-- application/x-www-form-urlencoded grant_type=client_credentials[&scope=..][&tenant=..].
-- The same request serves gov-edge (/v1/tokens/issue) and Ory Hydra (/oauth2/token), so both
-- see the same load (wrk: closed loop, keep-alive HTTP/1.1, fixed concurrency).
--
-- Every answer is checked, not just counted: status 200, a JSON body whose "access_token" is
-- a compact JWS (three base64url parts) whose header decodes to a JSON object naming "alg"
-- and whose payload decodes to a JSON object with "exp", and "token_type" Bearer. An answer
-- that fails any of that is a bad token; wrk's own status/socket errors are counted too.
-- A run with any failure is not a result (bench/run.sh refuses it).
--
-- done() prints ONE line to stdout: "WRK_JSON {...}" in wrk-cycle.lua's format plus
-- "tokens_ok" (tokens handed out and parsed) and "tokens_bad" (answers that were not), summed
-- over wrk's threads; bench/run.sh compares tokens_ok with the TokenIssued events on Kafka.

local threads = {}

-- runs in the main state, once per thread
function setup(thread)
   table.insert(threads, thread)
end

local b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

-- base64 of a byte string (for the Basic credentials, once per thread)
local function b64enc(s)
   local out = {}
   for k = 1, #s, 3 do
      local a, b, c = s:byte(k, k + 2)
      local n = a * 65536 + (b or 0) * 256 + (c or 0)
      local q = {}
      for j = 3, 0, -1 do
         local v = math.floor(n / 64 ^ j) % 64
         q[#q + 1] = b64:sub(v + 1, v + 1)
      end
      if not b then q[3] = "=" end
      if not c then q[4] = "=" end
      out[#out + 1] = table.concat(q)
   end
   return table.concat(out)
end

local dec = {}
for k = 1, 64 do dec[b64:byte(k)] = k - 1 end
dec[("-"):byte()] = 62
dec[("_"):byte()] = 63

-- base64url (no padding) -> bytes, or nil when it is not base64url
local function b64urldec(s)
   if #s == 0 or #s % 4 == 1 or s:find("[^A-Za-z0-9_-]") then return nil end
   local out = {}
   for k = 1, #s, 4 do
      local n, m = 0, 0
      for j = k, math.min(k + 3, #s) do
         n = n * 64 + dec[s:byte(j)]
         m = m + 1
      end
      for _ = m + 1, 4 do n = n * 64 end
      local bytes = string.char(math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256)
      out[#out + 1] = bytes:sub(1, m - 1)
   end
   return table.concat(out)
end

-- form-urlencoding of RFC 6749 Appendix B (application/x-www-form-urlencoded)
local function formenc(s)
   return (s:gsub("[^A-Za-z0-9%-%._~]", function(ch)
      if ch == " " then return "+" end
      return string.format("%%%02X", ch:byte())
   end))
end

local req
ok = 0
bad = 0
local first_bad = nil

function init(args)
   local id, secret, scope, tenant = args[1], args[2], args[3], args[4]
   assert(id and secret, "usage: -- CLIENT_ID CLIENT_SECRET [SCOPE] [TENANT]")
   local body = "grant_type=client_credentials"
   if scope and #scope > 0 then body = body .. "&scope=" .. formenc(scope) end
   if tenant and #tenant > 0 then body = body .. "&tenant=" .. formenc(tenant) end
   req = wrk.format("POST", nil, {
      ["Content-Type"] = "application/x-www-form-urlencoded",
      ["Authorization"] = "Basic " .. b64enc(formenc(id) .. ":" .. formenc(secret)),
      ["Accept"] = "application/json",
   }, body)
end

function request()
   return req
end

local function token_ok(status, body)
   if status ~= 200 then return false end
   if not body:find('"token_type"%s*:%s*"[Bb]earer"') then return false end
   local tok = body:match('"access_token"%s*:%s*"([^"]+)"')
   if not tok then return false end
   local h, p, s = tok:match("^([^.]+)%.([^.]+)%.([^.]+)$")
   if not h then return false end
   local hj, pj = b64urldec(h), b64urldec(p)
   if not hj or not pj or not b64urldec(s) then return false end
   return hj:find('^%s*{.*"alg"%s*:%s*"[^"]+".*}%s*$') ~= nil
      and pj:find('^%s*{.*"exp"%s*:%s*%d+.*}%s*$') ~= nil
end

function response(status, headers, body)
   if token_ok(status, body) then
      ok = ok + 1
   else
      bad = bad + 1
      if not first_bad then
         first_bad = status .. " " .. body:sub(1, 300)
         io.stderr:write("wrk-token.lua: bad answer: " .. first_bad .. "\n")
      end
   end
end

function done(summary, latency, requests)
   local tok, tbad = 0, 0
   for _, t in ipairs(threads) do
      tok = tok + (t:get("ok") or 0)
      tbad = tbad + (t:get("bad") or 0)
   end
   local e = summary.errors
   local errors = e.connect + e.read + e.write + e.status + e.timeout
   io.write(string.format(
      'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"errors":%d,' ..
      '"errors_detail":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"tokens_ok":%d,"tokens_bad":%d,' ..
      '"p50_us":%d,"p95_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f,"stdev_us":%.1f}\n',
      summary.requests, summary.duration, summary.bytes, errors,
      e.connect, e.read, e.write, e.status, e.timeout, tok, tbad,
      latency:percentile(50), latency:percentile(95), latency:percentile(99),
      latency:percentile(99.9), latency.max, latency.mean, latency.stdev))
end
