"""wechatpy as an independent WeChat peer for wxgate's interop test.

Reads one JSON request on stdin, writes one JSON answer on stdout:
- seal: wechatpy encrypts each push the way WeChat does (Encrypt + msg_signature);
- open: wechatpy checks and decrypts each encrypted reply wxgate sealed;
- parse: wechatpy parses each plaintext push wxgate serialised;
- replies: wechatpy renders passive replies for wxgate to parse.
"""
import json
import sys

from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.replies import ArticlesReply, ImageReply, MusicReply, TextReply, VideoReply, VoiceReply
from wechatpy.utils import to_text
import xmltodict


def main():
    req = json.load(sys.stdin)
    crypto = WeChatCrypto(req["token"], req["encoding_aes_key"], req["appid"])
    out = {"sealed": [], "opened": [], "parsed": [], "replies": []}
    for p in req["seal"]:
        envelope = xmltodict.parse(crypto.encrypt_message(p["xml"], p["nonce"], p["timestamp"]))["xml"]
        out["sealed"].append({"encrypt": envelope["Encrypt"], "msg_signature": envelope["MsgSignature"]})
    for r in req["open"]:
        out["opened"].append(to_text(crypto.decrypt_message(r["xml"], r["msg_signature"], r["timestamp"], r["nonce"])))
    for xml in req["parse"]:
        msg = parse_message(xml)
        out["parsed"].append({
            "type": msg.type,
            "id": msg.id,
            "source": msg.source,
            "target": msg.target,
            "time": msg.time,
            "content": getattr(msg, "content", None),
            "event": getattr(msg, "event", None),
            "scene_id": getattr(msg, "scene_id", None),
        })
    src = {"source": "gh_0123456789ab", "target": "oUser_openid_0001", "time": 1700000001}
    for text in req["reply_texts"]:
        out["replies"].append(TextReply(content=text, **src).render())
    out["replies"].append(ImageReply(media_id="img-1", **src).render())
    out["replies"].append(VoiceReply(media_id="voice-1", **src).render())
    out["replies"].append(VideoReply(media_id="video-1", title="标题", description="描述", **src).render())
    out["replies"].append(MusicReply(title="歌", description="d", music_url="http://m", hq_music_url="http://hq", thumb_media_id="th", **src).render())
    news = ArticlesReply(**src)
    news.add_article({"title": "欢迎 😀", "description": "demo", "image": "https://www.example.com/c.png", "url": "https://www.example.com/a/1"})
    out["replies"].append(news.render())
    json.dump(out, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
