//! The HTTP listener. Today it answers `/health` and `/stats` (what the server has received,
//! written and refused, as JSON) so that operators and tests can see ingest at work; the render
//! API will be served from here too.

pub mod render;
pub mod reply;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Produces the JSON document `/stats` answers with.
pub type StatsFn = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

fn respond(
    status: StatusCode,
    content_type: &str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
}

fn route(req: &Request<Incoming>, stats: &StatsFn) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return respond(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "method not allowed\n",
        );
    }
    match req.uri().path() {
        "/health" => respond(StatusCode::OK, "text/plain", "OK\n"),
        "/stats" => {
            let body = serde_json::to_vec_pretty(&stats()).unwrap_or_default();
            respond(StatusCode::OK, "application/json", body)
        }
        path => respond(
            StatusCode::NOT_FOUND,
            "text/plain",
            format!("no such endpoint: {path}\n"),
        ),
    }
}

/// Serves until `shutdown` turns true; each connection runs on its own task.
pub async fn serve(listener: TcpListener, stats: StatsFn, mut shutdown: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => break,
        };
        let (stream, peer): (_, SocketAddr) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("http accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let stats = stats.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let resp = route(&req, &stats);
                async move { Ok::<_, Infallible>(resp) }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!("http connection from {peer} ended: {e}");
            }
        });
    }
}
