-- POST /register with a new name on every request (args[1]: a prefix unique to the run, so
-- names never repeat across runs on one database), as a flood of sign-ups would. At the end,
-- prints one "status CODE COUNT" line per HTTP status answered.
local counter, threads = 0, {}

function setup(thread)
   counter = counter + 1
   thread:set("id", counter)
   table.insert(threads, thread)
end

function init(args)
   prefix = (args[1] or "flood") .. "-" .. id .. "-"
   sent = 0
   statuses = {}
end

function request()
   sent = sent + 1
   return wrk.format("POST", "/register", {["Content-Type"] = "application/json"},
      '{"name":"' .. prefix .. sent .. '","password":"flood password"}')
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
   local total = {}
   for _, thread in ipairs(threads) do
      for status, count in pairs(thread:get("statuses")) do
         total[status] = (total[status] or 0) + count
      end
   end
   for status, count in pairs(total) do
      io.write(string.format("status %d %d\n", status, count))
   end
end
