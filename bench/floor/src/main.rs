//! The benchmark floor: a minimal hyper 1.x HTTP/1.1 server that reads the
//! request body and answers a fixed 7-byte body (`success`). It stands for the
//! most any HTTP endpoint can do on this machine with the same runtime, so
//! `bench/run` divides wxgate's figures by its figures in the same run.
//!
//! With `--axum` it answers the same body through an axum `Router` holding
//! wxgate's route shapes (`axum::serve`, as wxgate): the most an axum
//! application can do, so the report can tell the framework's share from
//! wxgate's own.
//!
//! `wxgate-bench-floor [--axum] [ADDR]` (default `127.0.0.1:0`) prints
//! `floor listening on http://ADDR` once it accepts connections. The worker
//! count is tokio's default, or `TOKIO_WORKER_THREADS`.

use std::io::Write as _;

use axum::routing::{any, get, post};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// The fixed answer: as long as WeChat's "no reply" answer.
const BODY: &[u8] = b"success";

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let axum = args.iter().any(|a| a == "--axum");
    let listen = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:0".to_owned());
    // The multi-thread runtime, as wxgate's: it reads TOKIO_WORKER_THREADS.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(&listen, axum))
}

async fn serve(listen: &str, axum: bool) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "floor listening on http://{}", listener.local_addr()?)?;
    out.flush()?;
    drop(out);
    if axum {
        return axum::serve(listener, router()).await;
    }
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(answer))
                .await;
        });
    }
}

/// Reads the whole request body, as a real endpoint does, and answers [`BODY`].
async fn answer(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
    request.into_body().collect().await?;
    let mut response = Response::new(Full::new(Bytes::from_static(BODY)));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(response)
}

/// wxgate's route shapes, each answering [`BODY`] after reading the body.
fn router() -> axum::Router {
    async fn fixed(
        _body: Bytes,
    ) -> (
        [(hyper::header::HeaderName, &'static str); 1],
        &'static [u8],
    ) {
        ([(CONTENT_TYPE, "text/plain")], BODY)
    }
    axum::Router::new()
        .route("/wx/{appid}", get(fixed).post(fixed))
        .route("/wecom/{corpid}/{agent}", get(fixed).post(fixed))
        .route("/", get(fixed).post(fixed))
        .route("/v1/apps/{appid}/jssdk/signature", post(fixed))
        .route("/v1/apps/{appid}/{kind}", get(fixed))
        .route("/proxy/{appid}/{*path}", any(fixed))
}
