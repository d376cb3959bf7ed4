-- POST /token/refresh with a pool of refresh tokens: each response's new refresh token goes
-- back into the pool of its wrk thread, so every request spends a live token.
local counter, threads = 0, {}

function setup(thread)
   counter = counter + 1
   thread:set("id", counter)
   table.insert(threads, thread)
end

function init(args)
   pool = {}
   local all = {}
   for token in io.open(args[1]):read("*a"):gmatch("%S+") do table.insert(all, token) end
   local per = math.floor(#all / tonumber(args[2]))
   for i = (id - 1) * per + 1, id * per do table.insert(pool, all[i]) end
end

function request()
   local token = table.remove(pool) or "exhausted"
   return wrk.format("POST", "/token/refresh", {["Content-Type"] = "application/json"},
      '{"refresh_token":"' .. token .. '"}')
end

function response(status, headers, body)
   local token = body:match('"refresh_token":"([^"]+)"')
   if token then table.insert(pool, token) end
end
