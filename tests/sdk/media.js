// The media every SDK uploads and downloads: 150 KB (over the proxy's 64 KiB
// kept in memory), the same bytes as sdk.rs's wechatpy script.
'use strict';
exports.media = () => Buffer.from(Array.from({ length: 150000 }, (_, i) => (i * 7) % 251));
