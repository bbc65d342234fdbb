// wechat-jssdk, unmodified, pointed at wxgate by its two URL options
// (`accessTokenUrl`, `ticketUrl`): it only fetches the token and the JS-SDK
// ticket, and signs pages with them. Its in-memory `Store`, so it writes no file.
// Run by the interop tests: node wechat-jssdk.js BASE APPID SECRET
'use strict';
const { Wechat, Store } = require('wechat-jssdk');

(async () => {
  const [base, appid, secret] = process.argv.slice(2);
  const wx = new Wechat({
    appId: appid,
    appSecret: secret,
    wechatRedirectUrl: 'https://www.example.com/oauth',
    accessTokenUrl: base + '/cgi-bin/token',
    ticketUrl: base + '/cgi-bin/ticket/getticket',
    store: new Store(),
  });
  const url = 'https://www.example.com/page?x=1';
  const signature = await wx.jssdk.getSignature(url);
  const global = await wx.store.getGlobalToken();
  console.log(JSON.stringify({ token: global.accessToken, ticket: global.jsapi_ticket, url, signature }));
  // Its store keeps a flush timer running: end here.
  process.exit(0);
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
