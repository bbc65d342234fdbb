# wechatpy's WeChatOAuth, unmodified, pointed at wxgate through the façade:
# WeChatOAuth has no base-URL argument, but its calls join the class
# attribute API_BASE_URL, which an instance attribute overrides (no subclass,
# no patch). The authorization page stays WeChat's (OAUTH_BASE_URL): that is
# where the user's browser goes. The simulator plays the user consenting
# (POST /sim/oauth/authorize), then the redirect comes twice, as a double
# redirect or a retry would: both exchanges get the same answer.
# Run by the interop tests: python3 wechatpy_oauth.py BASE APPID SECRET SIM
import json
import sys

import requests
from wechatpy.oauth import WeChatOAuth

base, appid, secret, sim = sys.argv[1:5]
oauth = WeChatOAuth(appid, secret, "https://www.example.com/signed-in",
                    scope="snsapi_userinfo", state="s1")
oauth.API_BASE_URL = base + "/"
url = oauth.authorize_url
consent = requests.post(sim + "/sim/oauth/authorize",
                        json={"appid": appid, "openid": "oWechatpyUser", "scope": "snsapi_userinfo"})
code = consent.json()["code"]
first = oauth.fetch_access_token(code)
again = oauth.fetch_access_token(code)
info = oauth.get_user_info()
valid = oauth.check_access_token()
refreshed = oauth.refresh_access_token(first["refresh_token"])
print(json.dumps({"url": url, "first": first, "again": again, "info": info, "valid": valid,
                  "refreshed": refreshed}))
