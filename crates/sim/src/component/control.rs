//! The Open Platform's control API: an administrator authorizing or
//! unauthorizing a platform, the release test, the pushes sent, and the
//! platform settings a test changes while it runs.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use serde::Deserialize;
use serde_json::{json, Value};

use super::push::deliver;
use super::release_check;
use crate::config::Rotation;
use crate::control::{bad_request, parse_ip_list};
use crate::state::AuthorizeRequest;
use crate::Simulator;

/// `POST /sim/authorize`: plays an administrator who scans the authorization
/// page and approves; answers the code, the redirect and the push's record.
pub(crate) async fn authorize(State(sim): State<Simulator>, body: Bytes) -> Response {
    let req = match serde_json::from_slice::<AuthorizeRequest>(&body) {
        Ok(req) => req,
        Err(e) => return bad_request(format!("authorize: {e}")),
    };
    let now = sim.clock().now();
    let outcome = sim.state().sim_authorize(&req, true, now);
    match outcome {
        Err(e) => bad_request(e),
        Ok((authorized, out)) => {
            let push = match out {
                Some(out) => Some(deliver(&sim, out).await),
                None => None,
            };
            let mut answer = serde_json::to_value(authorized).expect("serialisable");
            answer["push"] = json!(push);
            Json(answer).into_response()
        }
    }
}

/// `POST /sim/unauthorize` `{"component_appid","authorizer_appid"}`.
pub(crate) async fn unauthorize(State(sim): State<Simulator>, body: Bytes) -> Response {
    #[derive(Deserialize)]
    struct Req {
        component_appid: String,
        authorizer_appid: String,
    }
    let req = match serde_json::from_slice::<Req>(&body) {
        Ok(req) => req,
        Err(e) => return bad_request(format!("unauthorize: {e}")),
    };
    let now = sim.clock().now();
    let outcome = sim
        .state()
        .sim_unauthorize(&req.component_appid, &req.authorizer_appid, now);
    match outcome {
        Err(e) => bad_request(e),
        Ok(out) => {
            let push = match out {
                Some(out) => Some(deliver(&sim, out).await),
                None => None,
            };
            Json(json!({ "push": push })).into_response()
        }
    }
}

/// `GET /sim/component/pushes`: every push sent to the platforms, oldest first.
pub(crate) async fn pushes(State(sim): State<Simulator>) -> Response {
    Json(sim.component_pushes()).into_response()
}

/// `GET /sim/component/{appid}/ticket`: the newest ticket minted.
pub(crate) async fn ticket(State(sim): State<Simulator>, Path(appid): Path<String>) -> Response {
    // The state's guard is dropped before `component_ticket` takes it again.
    let known = sim.state().component.platform(&appid).is_some();
    if !known {
        return bad_request(format!("no platform {appid:?}"));
    }
    Json(json!({ "ticket": sim.component_ticket(&appid) })).into_response()
}

/// `PUT /sim/component/{appid}/rotation` `{"rotation": "never"|"every_call"|"once"}`.
pub(crate) async fn set_rotation(
    State(sim): State<Simulator>,
    Path(appid): Path<String>,
    body: Bytes,
) -> Response {
    #[derive(Deserialize)]
    struct Req {
        rotation: Rotation,
    }
    let result = serde_json::from_slice::<Req>(&body)
        .map_err(|e| e.to_string())
        .and_then(|r| sim.state().component.set_rotation(&appid, r.rotation));
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => bad_request(format!("rotation: {e}")),
    }
}

/// `PUT /sim/component/{appid}/whitelist` `{"ip_list": […]}` (`null`: everyone).
pub(crate) async fn set_whitelist(
    State(sim): State<Simulator>,
    Path(appid): Path<String>,
    body: Bytes,
) -> Response {
    let result =
        parse_ip_list(&body).and_then(|list| sim.state().component.set_whitelist(&appid, list));
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => bad_request(format!("whitelist: {e}")),
    }
}

/// `POST /sim/release_check`: runs WeChat's release test against a server.
pub(crate) async fn release_check(State(sim): State<Simulator>, body: Bytes) -> Response {
    let req = match serde_json::from_slice::<release_check::ReleaseCheckRequest>(&body) {
        Ok(req) => req,
        Err(e) => return bad_request(format!("release_check: {e}")),
    };
    match release_check::run(&sim, req).await {
        Ok(report) => Json(report).into_response(),
        Err(e) => bad_request(e),
    }
}

/// Fills a `/sim/push` body naming `component_appid` with the platform's
/// token and key (an authorizer's push is sealed with them, receiveid = the
/// component appid, safe mode); fields given explicitly are kept.
pub(crate) fn fill_authorizer_push(sim: &Simulator, body: &mut Value) -> Result<(), String> {
    let Some(component) = body.get("component_appid").and_then(Value::as_str) else {
        return Ok(());
    };
    let state = sim.state();
    let platform = state
        .component
        .platform(component)
        .ok_or_else(|| format!("no platform {component:?}"))?;
    let defaults = [
        ("token", platform.token.clone()),
        ("encoding_aes_key", platform.encoding_aes_key.clone()),
        ("appid", platform.appid.clone()),
        ("mode", "safe".to_owned()),
    ];
    let object = body.as_object_mut().ok_or("push: not an object")?;
    for (field, value) in defaults {
        object.entry(field).or_insert(Value::String(value));
    }
    Ok(())
}
