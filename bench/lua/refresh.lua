-- POST /token/refresh along refresh chains: args[1] is a file of refresh tokens (one session
-- each), args[2] the number of wrk threads. Each thread takes its share of the tokens as a pool;
-- a request takes a token out of the pool and its response puts the new refresh token back, so
-- every token is spent once and each chain (session) is refreshed strictly one request after
-- another, whichever connection carries it. With as many connections as tokens, every
-- connection always finds one.
-- At the end prints "failures N (…)": requests that found the pool empty, responses other than
-- 200 (other than the answers to those empty-pool requests, which carry no live token), and
-- 200s without a new refresh token. A chain that breaks counts once per request it then could
-- not make.
local counter, threads = 0, {}

function setup(thread)
   counter = counter + 1
   thread:set("id", counter)
   table.insert(threads, thread)
end

function init(args)
   pool = {}
   starved, non200, tokenless = 0, 0, 0
   unanswered_starved = 0
   -- wrk calls request() once on the first thread's script right after init(), from its main
   -- thread, to check for pipelining, and never sends that request: it must not take a token.
   startup_check = (id == 1)
   local all = {}
   for token in io.open(args[1]):read("*a"):gmatch("%S+") do table.insert(all, token) end
   local per = math.floor(#all / tonumber(args[2]))
   for i = (id - 1) * per + 1, id * per do table.insert(pool, all[i]) end
end

function request()
   if startup_check then
      startup_check = false
      return wrk.format("POST", "/token/refresh", {["Content-Type"] = "application/json"},
         '{"refresh_token":"wrk-startup-check"}')
   end
   local token = table.remove(pool)
   if not token then
      starved = starved + 1
      unanswered_starved = unanswered_starved + 1
      token = "exhausted"
   end
   return wrk.format("POST", "/token/refresh", {["Content-Type"] = "application/json"},
      '{"refresh_token":"' .. token .. '"}')
end

function response(status, headers, body)
   if status ~= 200 then
      -- The answer to a request sent without a live token is already counted as starved.
      if unanswered_starved > 0 then unanswered_starved = unanswered_starved - 1 else non200 = non200 + 1 end
      return
   end
   local token = body:match('"refresh_token":"([^"]+)"')
   if token then table.insert(pool, token) else tokenless = tokenless + 1 end
end

function done(summary, latency, requests)
   local s, n, t = 0, 0, 0
   for _, thread in ipairs(threads) do
      s = s + thread:get("starved")
      n = n + thread:get("non200")
      t = t + thread:get("tokenless")
   end
   io.write(string.format("failures %d (no token in the pool %d, not 200 %d, 200 without a refresh token %d)\n",
      s + n + t, s, n, t))
end
