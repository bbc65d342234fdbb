-- W4, W5, W6 and the direct simulator call: one fixed request, sent as is.
-- args: METHOD PATH BODY ("-" for none) ["Name: value"]...
local common = require "common"

function init(args)
  wrk.method = args[1]
  wrk.path = args[2]
  if args[3] ~= "-" then wrk.body = args[3] end
  for k = 4, #args do
    local name, value = args[k]:match("^([^:]+):%s*(.*)$")
    wrk.headers[name] = value
  end
end

done = common.done
