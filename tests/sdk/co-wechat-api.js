// co-wechat-api, unmodified, pointed at wxgate by its one base-URL setting
// (`prefix`). Run by crates/gateway/tests/it/sdk.rs: node co-wechat-api.js BASE APPID SECRET
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const API = require('co-wechat-api');
const { media } = require('./media');

(async () => {
  const [base, appid, secret] = process.argv.slice(2);
  const api = new API(appid, secret);
  api.prefix = base + '/cgi-bin/';
  const token = await api.getAccessToken();
  const ticket = await api.getTicket('jsapi');
  const sent = await api.sendText('oUser1', 'hello from co-wechat-api');
  const data = media();
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sdk-')), 'photo.jpg');
  fs.writeFileSync(file, data);
  const upload = await api.uploadMedia(file, 'image');
  const download = await api.getMedia(upload.media_id);
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
