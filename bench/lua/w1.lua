-- W1: GET ownership checks, cycling through a pool of signed queries.
-- args: DATA_FILE (w1.txt from wxgate-bench-gen)
local common = require "common"
local reqs, n, i = {}, 0, 0

function init(args)
  for _, path in ipairs(common.lines(args[1])) do
    n = n + 1
    reqs[n] = wrk.format("GET", path)
  end
end

function request()
  i = i % n + 1
  return reqs[i]
end

done = common.done
