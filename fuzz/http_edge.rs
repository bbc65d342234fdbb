//! Turns arbitrary bytes into an HTTP request at one of wxgate's routes, for
//! the `http` fuzz target and for the reliability suite, which replays the
//! saved corpus and runs a property test over the same shapes.
//!
//! The first bytes pick the route, the method and which credentials to get
//! right (a valid push signature, a valid client key), so the fuzzer reaches
//! the code behind each check; the rest fills the query, the path tail and
//! the body.

/// What a test sends.
#[derive(Debug, Clone)]
pub struct EdgeRequest {
    pub method: &'static str,
    pub path_and_query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The deployment the requests aim at.
pub struct Target<'a> {
    pub appid: &'a str,
    pub server_token: &'a str,
    pub client_key: &'a str,
    pub admin_key: &'a str,
    pub now: u64,
}

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "DELETE", "PATCH"];

/// Percent-encodes everything but unreserved characters.
fn enc(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Builds a request from `data`.
pub fn request(data: &[u8], t: &Target<'_>) -> EdgeRequest {
    let byte = |i: usize| data.get(i).copied().unwrap_or(0);
    let (route, method, flags) = (byte(0), METHODS[byte(1) as usize % METHODS.len()], byte(2));
    let rest = data.get(3..).unwrap_or_default();
    // Up to three fields separated by 0xFF: a query value, a path tail, a body.
    let mut parts = rest.splitn(3, |&b| b == 0xFF);
    let (field, tail, body) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default().to_vec(),
    );
    let appid = if flags & 1 == 0 {
        t.appid.to_owned()
    } else {
        enc(tail)
    };
    let timestamp = if flags & 2 == 0 {
        t.now.to_string()
    } else {
        enc(field)
    };
    let nonce = "n0nce";
    let signature = if flags & 4 == 0 {
        wxgate_proto::signature(t.server_token, &timestamp, nonce)
    } else {
        enc(field)
    };
    let signed = format!("signature={signature}&timestamp={timestamp}&nonce={nonce}");
    let kinds = ["access_token", "jsapi_ticket", "wx_card_ticket"];
    let kind = if flags & 8 == 0 {
        kinds[(flags >> 4) as usize % 3].to_owned()
    } else {
        enc(field)
    };
    let path_and_query = match route % 14 {
        0 => format!("/wx/{appid}?{signed}&echostr={}", enc(field)),
        1 => format!("/wx/{appid}?{signed}"),
        2 => format!(
            "/wx/{appid}?{signed}&encrypt_type=aes&msg_signature={}",
            enc(field)
        ),
        3 => format!("/?{signed}&{}", String::from_utf8_lossy(field)),
        4 => format!("/v1/apps/{appid}/{kind}"),
        5 => format!("/v1/apps/{appid}/{kind}/refresh"),
        6 => format!("/v1/apps/{appid}/jssdk/signature"),
        7 => format!(
            "/cgi-bin/token?grant_type=client_credential&appid={appid}&secret={}",
            enc(field)
        ),
        8 => "/cgi-bin/stable_token".to_owned(),
        9 => format!(
            "/cgi-bin/ticket/getticket?access_token={}&type={}",
            enc(field),
            enc(tail)
        ),
        10 => format!(
            "/proxy/{appid}/{}?{}",
            String::from_utf8_lossy(tail),
            String::from_utf8_lossy(field)
        ),
        11 => format!("/admin/{}", enc(tail)),
        12 => format!("/{}", String::from_utf8_lossy(tail)),
        _ => format!("/metrics?{}", enc(field)),
    };
    let mut headers = Vec::new();
    match flags >> 6 {
        0 => headers.push((
            "authorization".to_owned(),
            format!("Bearer {}", t.client_key),
        )),
        1 => headers.push((
            "authorization".to_owned(),
            format!("Bearer {}", t.admin_key),
        )),
        2 => headers.push((
            "authorization".to_owned(),
            format!("Bearer {}", String::from_utf8_lossy(field)),
        )),
        _ => headers.push((
            "cookie".to_owned(),
            format!("wxgate_admin={}", String::from_utf8_lossy(field)),
        )),
    }
    if route % 2 == 0 {
        headers.push(("content-type".to_owned(), "application/json".to_owned()));
    }
    EdgeRequest {
        method,
        path_and_query,
        headers,
        body,
    }
}
