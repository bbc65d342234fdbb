# WeChat's side of an Official Account push in safe mode, built with wechatpy's
# own crypto (wechatpy.crypto.WeChatCrypto, unmodified): a text push sealed with
# the given token and EncodingAESKey and posted to wxgate, whose encrypted reply
# wechatpy opens with the same token and key (and, when given, tries with
# another pair, which must not open it). Run by the interop tests:
#   python3 wechatpy_push.py URL TOKEN AESKEY APPID TIMESTAMP NONCE MSGID [OTHER_TOKEN OTHER_KEY]
import hashlib
import json
import sys

import requests
import xmltodict
from wechatpy.crypto import WeChatCrypto

url, token, aes_key, appid, timestamp, nonce, msg_id = sys.argv[1:8]
crypto = WeChatCrypto(token, aes_key, appid)

message = ("<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[oUser_py]]>"
           "</FromUserName><CreateTime>%s</CreateTime><MsgType><![CDATA[text]]></MsgType>"
           "<Content><![CDATA[你好]]></Content><MsgId>%s</MsgId></xml>") % (timestamp, msg_id)
envelope = xmltodict.parse(crypto.encrypt_message(message, nonce, timestamp))["xml"]
body = ("<xml><ToUserName><![CDATA[gh_1]]></ToUserName><Encrypt><![CDATA[%s]]></Encrypt></xml>"
        % envelope["Encrypt"])
signature = hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()
params = {"signature": signature, "timestamp": timestamp, "nonce": nonce, "openid": "oUser_py",
          "encrypt_type": "aes", "msg_signature": envelope["MsgSignature"]}
answer = requests.post(url, params=params, data=body.encode(), timeout=5)

out = {"status": answer.status_code, "reply": None}
if answer.status_code == 200 and answer.text not in ("", "success"):
    sealed = xmltodict.parse(answer.text)["xml"]
    opened = crypto.decrypt_message(answer.text, sealed["MsgSignature"], sealed["TimeStamp"],
                                    sealed["Nonce"])
    out["reply"] = xmltodict.parse(opened)["xml"]
    if len(sys.argv) > 9:
        other = WeChatCrypto(sys.argv[8], sys.argv[9], appid)
        try:
            other.decrypt_message(answer.text, sealed["MsgSignature"], sealed["TimeStamp"],
                                  sealed["Nonce"])
            out["other_opens"] = True
        except Exception:
            out["other_opens"] = False
print(json.dumps(out, ensure_ascii=False))
