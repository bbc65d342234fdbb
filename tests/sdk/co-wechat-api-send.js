// co-wechat-api with a token it already holds (its getToken store, as a
// process of a cluster would): one customer-service message.
// Run by crates/gateway/tests/it/sdk.rs: node co-wechat-api-send.js BASE APPID SECRET TOKEN
'use strict';
const API = require('co-wechat-api');

(async () => {
  const [base, appid, secret, token] = process.argv.slice(2);
  const stored = { accessToken: token, expireTime: Date.now() + 3600 * 1000 };
  const api = new API(appid, secret, async () => stored, async () => {});
  api.prefix = base + '/cgi-bin/';
  const sent = await api.sendText('oUser1', 'hello again from co-wechat-api');
  console.log(JSON.stringify({ sent }));
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
