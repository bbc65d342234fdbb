-- W2: plain-mode text pushes matching a keyword rule. Plain mode signs only the
-- query, so each body is built here with a MsgId never sent before (PREFIX then
-- a counter), and dedupe cannot skip the work.
-- args: DATA_FILE (w2.txt) PREFIX (digits, distinct per wrk invocation)
local common = require "common"
local queries, n, i, prefix, created = {}, 0, 0, "1", "0"
local headers = { ["Content-Type"] = "text/xml" }
local template = "<xml><ToUserName><![CDATA[gh_bench000000]]></ToUserName>" ..
  "<FromUserName><![CDATA[oBenchUser0000000000000000000]]></FromUserName>" ..
  "<CreateTime>%s</CreateTime><MsgType><![CDATA[text]]></MsgType>" ..
  "<Content><![CDATA[bench]]></Content><MsgId>%s%09d</MsgId></xml>"

function init(args)
  queries = common.lines(args[1])
  n = #queries
  prefix = args[2] or "1"
  created = tostring(os.time())
end

function request()
  i = i + 1
  local body = string.format(template, created, prefix, i)
  return wrk.format("POST", queries[(i - 1) % n + 1], headers, body)
end

done = common.done
