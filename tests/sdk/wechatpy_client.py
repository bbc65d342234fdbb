# wechatpy, unmodified, pointed at wxgate by its base URL (API_BASE_URL), plus
# its one quirk: fetch_access_token hard-codes WeChat's token URL, so the
# subclass makes that one call use the base URL too.
# Run by the interop tests: python3 wechatpy_client.py BASE APPID SECRET
import io
import json
import sys

from wechatpy import WeChatClient


class Client(WeChatClient):
    API_BASE_URL = sys.argv[1] + "/cgi-bin/"

    def fetch_access_token(self):
        params = {"grant_type": "client_credential", "appid": self.appid, "secret": self.secret}
        return self._fetch_access_token(url=self.API_BASE_URL + "token", params=params)


client = Client(sys.argv[2], sys.argv[3])
token = client.access_token
ticket = client.jsapi.get_ticket()
sent = client.message.send_text("oUser1", "hello from wechatpy")
# The same 150 KB as media.js.
data = bytes(i * 7 % 251 for i in range(150000))
photo = io.BytesIO(data)
photo.name = "photo.jpg"
upload = client.media.upload("image", photo)
download = client.media.download(upload["media_id"]).content
print(json.dumps({"token": token, "ticket": ticket["ticket"], "sent": sent, "upload": upload,
                  "size": len(download), "same": download == data}))
