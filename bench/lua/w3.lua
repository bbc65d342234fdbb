-- W3: safe-mode text pushes from a pre-generated pool of distinct encrypted
-- bodies (each its own MsgId, timestamp, nonce, signature and msg_signature).
-- W8 (WeCom callbacks, w8.txt) sends its pool with this script too.
-- args: DATA_FILE (w3.txt or w8.txt: PATH?QUERY<TAB>BODY) OFFSET (first pool entry to send)
local common = require "common"
local reqs, n, i = {}, 0, 0
local headers = { ["Content-Type"] = "text/xml" }

function init(args)
  for _, line in ipairs(common.lines(args[1])) do
    local path, body = line:match("^([^\t]+)\t(.*)$")
    n = n + 1
    reqs[n] = wrk.format("POST", path, headers, body)
  end
  i = tonumber(args[2] or "0") % n
end

function request()
  i = i % n + 1
  return reqs[i]
end

done = common.done
