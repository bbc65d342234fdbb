# wechatpy's WeChatComponent, unmodified, pointed at wxgate by its own
# setting (the API_BASE_URL attribute, on the instance): its component token
# and an authorizer's token come from wxgate's center; the ticket and the
# refresh token it sends are its own and ignored; a component API call and
# the authorizer client's business call go through the façade.
# Run by the interop tests:
#   python3 wechatpy_component.py BASE COMPONENT_APPID SECRET AUTHORIZER_APPID AES_KEY
import json
import sys

from wechatpy.component import WeChatComponent

base, component_appid, secret, authorizer, aes_key = sys.argv[1:6]
component = WeChatComponent(component_appid, secret, "push-token", aes_key)
component.API_BASE_URL = base + "/cgi-bin"
# wechatpy sends the ticket it was pushed; this one never was: wxgate ignores it.
component.session.set("component_verify_ticket", "ticket@@@the-callers-own")
fetched = component.fetch_access_token()
token = component.access_token
# get_client_by_appid needs a refresh token of the caller's: wxgate ignores it.
component.session.set("{0}_refresh_token".format(authorizer), "the-callers-stale-refresh-token")
client = component.get_client_by_appid(authorizer)
client.API_BASE_URL = base + "/cgi-bin/"
authorizer_token = client.access_token
refreshed = component.refresh_authorizer_token(authorizer, "the-callers-stale-refresh-token")
info = component.get_authorizer_info(authorizer)
ips = client.misc.get_wechat_ips()
print(json.dumps({"fetched": fetched, "token": token, "authorizer_token": authorizer_token,
                  "refreshed": refreshed, "info": info, "ips": ips}))
