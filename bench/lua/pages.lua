-- GET /authors?after=A&limit=L with A drawn at random from [args[1], args[2]] on every request,
-- so that requests spread over thousands of distinct pages and a cache of recent pages cannot
-- stand in for the database. args[3]: the limit (default 50). Headers given to wrk with -H
-- (the bearer token) are sent with every request. At the end prints "failures N": responses
-- other than 200.
local counter, threads = 0, {}

function setup(thread)
   counter = counter + 1
   thread:set("id", counter)
   table.insert(threads, thread)
end

function init(args)
   low, high = tonumber(args[1]), tonumber(args[2])
   limit = args[3] or "50"
   failures = 0
   math.randomseed(os.time() * 1000 + id)
end

function request()
   return wrk.format(nil, "/authors?after=" .. math.random(low, high) .. "&limit=" .. limit)
end

function response(status, headers, body)
   if status ~= 200 then failures = failures + 1 end
end

function done(summary, latency, requests)
   local total = 0
   for _, thread in ipairs(threads) do total = total + thread:get("failures") end
   io.write(string.format("failures %d\n", total))
end
