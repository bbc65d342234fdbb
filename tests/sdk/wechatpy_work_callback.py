# WeCom's side of a callback, built with wechatpy's own WeCom crypto
# (wechatpy.enterprise.crypto.WeChatCrypto, unmodified): an encrypted URL check
# and an encrypted text callback sent to wxgate, whose answers wechatpy checks
# and decrypts. Run by the interop tests:
#   python3 wechatpy_work_callback.py URL CORPID AGENTID TOKEN AESKEY TIMESTAMP
import json
import sys

import requests
import xmltodict
from wechatpy.enterprise import parse_message
from wechatpy.enterprise.crypto import WeChatCrypto

url, corp_id, agent_id, token, aes_key, timestamp = sys.argv[1:7]
crypto = WeChatCrypto(token, aes_key, corp_id)


def sealed(plaintext, nonce):
    """wechatpy's encrypted envelope of `plaintext`: (Encrypt, MsgSignature)."""
    envelope = xmltodict.parse(crypto.encrypt_message(plaintext, nonce, timestamp))["xml"]
    return envelope["Encrypt"], envelope["MsgSignature"]


# The URL check: msg_signature covers the encrypted echostr; the answer is its plaintext.
echo_sent = "4869210364982715532"
echostr, signature = sealed(echo_sent, "1001")
check = requests.get(url, params={"msg_signature": signature, "timestamp": timestamp,
                                  "nonce": "1001", "echostr": echostr}, timeout=5)
# wechatpy's server-side check of the same URL check must agree.
assert crypto.check_signature(signature, timestamp, "1001", echostr) == echo_sent

# A text callback, as WeCom sends it.
message = ("<xml><ToUserName><![CDATA[%s]]></ToUserName><FromUserName><![CDATA[zhangsan]]>"
           "</FromUserName><CreateTime>%s</CreateTime><MsgType><![CDATA[text]]></MsgType>"
           "<Content><![CDATA[hi]]></Content><MsgId>1234567890123456</MsgId>"
           "<AgentID>%s</AgentID></xml>") % (corp_id, timestamp, agent_id)
encrypt, signature = sealed(message, "1002")
body = ("<xml><ToUserName><![CDATA[%s]]></ToUserName><Encrypt><![CDATA[%s]]></Encrypt>"
        "<AgentID><![CDATA[%s]]></AgentID></xml>") % (corp_id, encrypt, agent_id)
answer = requests.post(url, params={"msg_signature": signature, "timestamp": timestamp,
                                    "nonce": "1002"}, data=body.encode(), timeout=5)
reply = None
if answer.status_code == 200 and answer.text:
    envelope = xmltodict.parse(answer.text)["xml"]
    plaintext = crypto.decrypt_message(answer.text, envelope["MsgSignature"],
                                       envelope["TimeStamp"], envelope["Nonce"])
    parsed = xmltodict.parse(plaintext)["xml"]
    reply = {"type": parsed["MsgType"], "content": parsed.get("Content"),
             "target": parsed["ToUserName"], "source": parsed["FromUserName"]}
    # wechatpy reads it too, as it reads WeCom's own messages.
    assert parse_message(plaintext) is not None

print(json.dumps({"echo_status": check.status_code, "echo": check.text, "echo_sent": echo_sent,
                  "reply_status": answer.status_code, "reply": reply}))
