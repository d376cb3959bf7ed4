-- POST /login with HTTP Basic, cycling through the users listed (one "name:password" a line):
-- successes, spread over many accounts, as many people logging in at once.
local counter = 0
function setup(thread)
   counter = counter + 1
   thread:set("id", counter)
end

function init(args)
   headers = {}
   for line in io.open(args[1]):lines() do
      table.insert(headers, "Basic " .. line)
   end
   next_user = id
end

function request()
   next_user = next_user % #headers + 1
   return wrk.format("POST", "/login", {["Authorization"] = headers[next_user]})
end
