//! The HTTP listener: graphite-web's read API (`/render`, `/metrics/*`, `/functions`,
//! `/version`) for Grafana and other Graphite clients, plus `/health` and `/stats` (what the
//! server has received, written and refused) for operators and tests. Endpoints are plain
//! functions from parameters to a `Reply`; this module does the HTTP around them: GET and POST
//! form parameters, paths with or without a trailing slash (never a redirect, which would turn
//! Grafana's POST into a GET), CORS for Grafana's browser mode, and gzip when asked.

pub mod functions;
pub mod metrics;
pub mod render;
pub mod reply;
pub mod tags;

use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{header, Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::query::eval::{Limits, SeriesSource};
use crate::query::time::Zone;
use reply::{Params, Reply};

/// Produces the JSON document `/stats` answers with.
pub type StatsFn = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// The version graphite-web reports; Grafana's data source is configured with it.
pub const GRAPHITE_VERSION: &str = "1.1.10";

/// Largest request body read (form-encoded targets); larger ones get 413.
const MAX_BODY: usize = 8 << 20;

/// What the read endpoints need.
pub struct ReadApi {
    pub source: Arc<dyn SeriesSource>,
    pub index: Arc<crate::index::Index>,
    /// Tagged series, for `/tags/*` and `seriesByTag`.
    pub tags: Arc<crate::index::tags::TagIndex>,
    /// The whisper tree, for the intervals `/metrics/find` reports for leaves.
    pub whisper_dir: std::path::PathBuf,
    pub default_zone: Zone,
    pub limits: Limits,
    pub max_targets: usize,
}

/// Everything the listener serves.
pub struct Endpoints {
    pub stats: StatsFn,
    pub read: Option<Arc<ReadApi>>,
}

fn now_epoch() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Answers one request (already read) with a `Reply`; blocking work (evaluation, file reads) is
/// the caller's to move off the reactor.
pub fn answer(
    endpoints: &Endpoints,
    method: &Method,
    path: &str,
    params: &Params,
    accept: Option<&str>,
) -> Reply {
    if method != Method::GET && method != Method::HEAD && method != Method::POST {
        return Reply::text(405, "method not allowed");
    }
    let raw_path = path;
    let path = match path.trim_end_matches('/') {
        "" => "/",
        p => p,
    };
    match path {
        "/health" => Reply::text(200, "OK"),
        "/stats" => {
            Reply::json(serde_json::to_vec_pretty(&(endpoints.stats)()).unwrap_or_default())
        }
        "/version" => Reply::text(200, GRAPHITE_VERSION),
        "/functions" => functions::list(params),
        p if p.starts_with("/functions/") => functions::details(&p["/functions/".len()..], params),
        "/render" => match &endpoints.read {
            Some(read) => {
                let env = render::RenderEnv {
                    source: read.source.as_ref(),
                    default_zone: read.default_zone,
                    limits: read.limits,
                    max_targets: read.max_targets,
                    now: now_epoch(),
                };
                render::render(params, &env)
            }
            None => Reply::text(503, "the read API is not configured"),
        },
        "/metrics" | "/metrics/find" | "/metrics/expand" | "/metrics/index.json" => {
            let Some(read) = &endpoints.read else {
                return Reply::text(503, "the read API is not configured");
            };
            let root = read.whisper_dir.clone();
            let intervals = move |rel: &std::path::Path| {
                metrics::whisper_intervals(&root, rel, metrics::time_now())
            };
            let mut env = metrics::MetricsEnv::new(read.default_zone);
            env.accept = accept;
            env.intervals = Some(&intervals);
            match path {
                "/metrics/expand" => metrics::expand(&read.index, params, &env),
                "/metrics/index.json" => metrics::index_json(&read.index, params, &env),
                _ => metrics::find(&read.index, params, &env),
            }
        }
        p if p == "/tags" || p.starts_with("/tags/") => match &endpoints.read {
            Some(read) => {
                // graphite-web's tag views see the path with its trailing slash.
                let rest = &raw_path["/tags".len().min(raw_path.len())..];
                tags::answer(&read.tags, method.as_str(), rest, params)
            }
            None => Reply::text(503, "the read API is not configured"),
        },
        "/events/get_data" => Reply::json("[]"),
        p => Reply::text(404, format!("no such endpoint: {p}")),
    }
}

fn to_response(reply: Reply, gzip: bool, head: bool) -> Response<Full<Bytes>> {
    let mut body = reply.body;
    let mut compressed = false;
    if gzip && body.len() > 1024 {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        if enc.write_all(&body).is_ok() {
            if let Ok(z) = enc.finish() {
                body = z;
                compressed = true;
            }
        }
    }
    let len = body.len();
    let mut resp = Response::new(Full::new(if head {
        Bytes::new()
    } else {
        Bytes::from(body)
    }));
    *resp.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    if let Ok(v) = reply.content_type.parse() {
        h.insert(header::CONTENT_TYPE, v);
    }
    if compressed {
        h.insert(
            header::CONTENT_ENCODING,
            header::HeaderValue::from_static("gzip"),
        );
    }
    if head {
        h.insert(header::CONTENT_LENGTH, header::HeaderValue::from(len));
    }
    h.insert(
        header::VARY,
        header::HeaderValue::from_static("Accept-Encoding"),
    );
    cors(h);
    resp
}

/// Grafana's browser mode calls from another origin, with credentials when configured.
fn cors(h: &mut hyper::HeaderMap) {
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        header::HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        header::HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        header::HeaderValue::from_static(
            "Authorization, Content-Type, Accept, Origin, X-Requested-With",
        ),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        header::HeaderValue::from_static("86400"),
    );
}

async fn handle(req: Request<Incoming>, endpoints: Arc<Endpoints>) -> Response<Full<Bytes>> {
    if req.method() == Method::OPTIONS {
        let mut resp = Response::new(Full::new(Bytes::new()));
        *resp.status_mut() = StatusCode::NO_CONTENT;
        cors(resp.headers_mut());
        return resp;
    }
    let gzip = req
        .headers()
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    let head = req.method() == Method::HEAD;
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(String::from);
    let req_accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            let too_big = e
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some();
            let reply = if too_big {
                Reply::text(413, format!("request body larger than {MAX_BODY} bytes"))
            } else {
                Reply::text(400, format!("cannot read the request body: {e}"))
            };
            return to_response(reply, false, head);
        }
    };
    let accept = req_accept;
    let form = (method == Method::POST && (is_form || !body.is_empty())).then_some(&body[..]);
    let params = Params::parse(query.as_deref(), form);
    let reply = tokio::task::spawn_blocking(move || {
        answer(&endpoints, &method, &path, &params, accept.as_deref())
    })
    .await
    .unwrap_or_else(|e| Reply::text(500, format!("request failed: {e}")));
    to_response(reply, gzip, head)
}

/// Serves until `shutdown` turns true; each connection runs on its own task.
pub async fn serve(
    listener: TcpListener,
    endpoints: Endpoints,
    mut shutdown: watch::Receiver<bool>,
) {
    let endpoints = Arc::new(endpoints);
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
        let endpoints = endpoints.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let endpoints = endpoints.clone();
                async move { Ok::<_, Infallible>(handle(req, endpoints).await) }
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
