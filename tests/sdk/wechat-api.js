// wechat-api, unmodified, pointed at wxgate by its base URL: the `endpoint`
// property (its setEndpoint(domain) forces https://, so set the property).
// Run by crates/gateway/tests/it/sdk.rs: node wechat-api.js BASE APPID SECRET
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { promisify } = require('util');
const API = require('wechat-api');
const { media } = require('./media');

(async () => {
  const [base, appid, secret] = process.argv.slice(2);
  const api = new API(appid, secret);
  api.endpoint = base;
  const call = (name, ...args) => promisify(api[name]).apply(api, args);
  const token = await call('getAccessToken');
  const ticket = await call('getTicket', 'jsapi');
  const sent = await call('sendText', 'oUser1', 'hello from wechat-api');
  const data = media();
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sdk-')), 'photo.jpg');
  fs.writeFileSync(file, data);
  const upload = await call('uploadMedia', file, 'image');
  const download = await call('getMedia', upload.media_id);
  console.log(JSON.stringify({
    token: token.accessToken,
    ticket: ticket.ticket,
    sent,
    upload,
    size: download.length,
    same: Buffer.compare(download, data) === 0,
  }));
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
