# wechatpy's WeCom client (wechatpy.enterprise), unmodified, pointed at wxgate
# by its base URL (API_BASE_URL), with the quirk it shares with the Official
# Account client: fetch_access_token hard-codes qyapi's gettoken URL, so the
# subclass makes that one call use the base URL too.
# Run by the interop tests: python3 wechatpy_work.py BASE CORPID SECRET AGENTID
import json
import sys

from wechatpy.enterprise import WeChatClient


class Client(WeChatClient):
    API_BASE_URL = sys.argv[1] + "/cgi-bin/"

    def fetch_access_token(self):
        params = {"corpid": self.corp_id, "corpsecret": self.secret}
        return self._fetch_access_token(url=self.API_BASE_URL + "gettoken", params=params)


client = Client(sys.argv[2], sys.argv[3])
token = client.access_token
corp_ticket = client.jsapi.get_ticket()["ticket"]
agent_ticket = client.jsapi.get_agent_ticket()["ticket"]
agent = client.agent.get(int(sys.argv[4]))
print(json.dumps({"token": token, "corp_ticket": corp_ticket, "agent_ticket": agent_ticket,
                  "agent": agent}))
