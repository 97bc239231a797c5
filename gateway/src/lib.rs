//! An HTTP front door for an [`EventQueue`]: Nakama's `POST /v2/event` and
//! the queue's Prometheus text on `GET /metrics`, on hyper (HTTP/1.1) and
//! tokio. The runnable program is `examples/http_gateway.rs`; this crate is
//! the part of it that tests and load tests drive.
//!
//! | request | answer |
//! | --- | --- |
//! | `POST /v2/event`, a valid event | `202`, empty body: emitted with `external = true` |
//! | `POST /v2/event`, a body `emit_json` refuses | `400`, the error text |
//! | `POST /v2/event`, a body over the limit | `413`; the body is not read past the limit |
//! | `POST /v2/event`, the queue refuses (`Reject` and full, or shut down) | `503` (`Retry-After: 1` when full) |
//! | `GET /metrics` | `200`, the queue's stats and this gateway's response counts |
//! | another method on those paths / another path | `405` with `Allow` / `404` |
//!
//! [`Gateway::serve`] runs until its shutdown future completes, then stops
//! accepting, lets open connections finish the request in flight (idle
//! keep-alive connections close at once), waits at most a grace period for
//! them and returns. Draining the queue is the caller's next step
//! ([`EventQueue::shutdown`]), so that no request can emit into a queue that
//! is draining.

use evqueue::json::{JsonError, MAX_JSON_BYTES};
use evqueue::{Error, EventQueue};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::fmt::Write;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

pub mod client;

/// The default body limit: the JSON ingestion's own, 64 KiB.
pub const DEFAULT_BODY_LIMIT: usize = MAX_JSON_BYTES;

/// What `POST /v2/event` does with a body that is within the limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Parse it and emit it (`emit_json(body, external = true)`).
    #[default]
    Emit,
    /// Answer `202` without parsing or emitting: the cost of the HTTP
    /// stack alone, for load tests.
    Floor,
}

/// Responses by status code, for `/metrics`.
#[derive(Default)]
struct Responses {
    accepted: AtomicU64,
    bad_request: AtomicU64,
    too_large: AtomicU64,
    unavailable: AtomicU64,
    ok: AtomicU64,
    other: AtomicU64,
}

impl Responses {
    fn count(&self, status: StatusCode) {
        let counter = match status {
            StatusCode::ACCEPTED => &self.accepted,
            StatusCode::BAD_REQUEST => &self.bad_request,
            StatusCode::PAYLOAD_TOO_LARGE => &self.too_large,
            StatusCode::SERVICE_UNAVAILABLE => &self.unavailable,
            StatusCode::OK => &self.ok,
            _ => &self.other,
        };
        counter.fetch_add(1, Relaxed);
    }

    fn render(&self, out: &mut String) {
        out.push_str(
            "# HELP evqueue_gateway_responses_total HTTP responses sent, by status code \
             (\"other\": 404 and 405).\n\
             # TYPE evqueue_gateway_responses_total counter\n",
        );
        for (code, counter) in [
            ("200", &self.ok),
            ("202", &self.accepted),
            ("400", &self.bad_request),
            ("413", &self.too_large),
            ("503", &self.unavailable),
            ("other", &self.other),
        ] {
            let _ = writeln!(
                out,
                "evqueue_gateway_responses_total{{code=\"{code}\"}} {}",
                counter.load(Relaxed)
            );
        }
    }
}

/// What [`Gateway::serve`] reports once it has returned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServeReport {
    /// Connections accepted.
    pub connections: u64,
    /// Connections still open when the grace period ended, closed without
    /// waiting further.
    pub cut_off: usize,
    /// `accept` failures (for example, out of file descriptors); the server
    /// backs off 10 ms after each and keeps going.
    pub accept_errors: u64,
}

/// The HTTP front door of one queue; see the [crate docs](crate).
pub struct Gateway {
    queue: Arc<EventQueue>,
    mode: Mode,
    body_limit: usize,
    responses: Responses,
}

impl Gateway {
    /// A gateway for `queue`, in [`Mode::Emit`], with [`DEFAULT_BODY_LIMIT`].
    pub fn new(queue: Arc<EventQueue>) -> Self {
        Gateway {
            queue,
            mode: Mode::Emit,
            body_limit: DEFAULT_BODY_LIMIT,
            responses: Responses::default(),
        }
    }

    /// Sets the mode.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets the body limit in bytes. Bodies above it get `413` without being
    /// read further. (Above [`MAX_JSON_BYTES`], `emit_json` refuses the body
    /// anyway, and that too is answered `413`.)
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// The queue this gateway emits into.
    pub fn queue(&self) -> &Arc<EventQueue> {
        &self.queue
    }

    /// Serves HTTP/1.1 on `listener` until `shutdown` completes; then stops
    /// accepting, asks every connection to close after the request it is
    /// serving, waits for them at most `grace`, closes the rest and returns.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
        grace: Duration,
    ) -> ServeReport {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let mut report = ServeReport::default();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        report.connections += 1;
                        // Each response goes out in one write; no reason to
                        // let Nagle hold back the next one.
                        let _ = stream.set_nodelay(true);
                        tasks.spawn(self.clone().connection(stream, stop_rx.clone()));
                    }
                    Err(_) => {
                        report.accept_errors += 1;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
                // Reap finished connections so the set does not grow.
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        drop(listener);
        // Nobody may be listening any more (every connection finished).
        let _ = stop_tx.send(true);
        let all_closed = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, all_closed).await.is_err() {
            report.cut_off = tasks.len();
            tasks.shutdown().await;
        }
        report
    }

    async fn connection(
        self: Arc<Self>,
        stream: tokio::net::TcpStream,
        mut stop: watch::Receiver<bool>,
    ) {
        let service = service_fn(move |req| {
            let gateway = self.clone();
            async move { Ok::<_, Infallible>(gateway.handle(req).await) }
        });
        let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
        tokio::pin!(conn);
        tokio::select! {
            // A client's reset or a malformed request ends the connection;
            // there is nobody to tell.
            _ = conn.as_mut() => return,
            _ = stop.wait_for(|stop| *stop) => {}
        }
        // Finish the request in flight, if any, then close.
        conn.as_mut().graceful_shutdown();
        let _ = conn.await;
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        enum Route {
            Event,
            Metrics,
            WrongMethod(&'static str),
            NotFound,
        }
        let route = match (req.uri().path(), req.method()) {
            ("/v2/event", &Method::POST) => Route::Event,
            ("/metrics", &Method::GET) => Route::Metrics,
            ("/v2/event", _) => Route::WrongMethod("POST"),
            ("/metrics", _) => Route::WrongMethod("GET"),
            _ => Route::NotFound,
        };
        let response = match route {
            Route::Event => self.post_event(req).await,
            Route::Metrics => self.metrics(),
            Route::WrongMethod(allow) => {
                let mut r = text(StatusCode::METHOD_NOT_ALLOWED, format!("use {allow}\n"));
                r.headers_mut()
                    .insert(ALLOW, HeaderValue::from_static(allow));
                r
            }
            Route::NotFound => text(
                StatusCode::NOT_FOUND,
                "not found: the routes are POST /v2/event and GET /metrics\n".into(),
            ),
        };
        self.responses.count(response.status());
        response
    }

    async fn post_event(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let limit = self.body_limit;
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(len) = declared.filter(|&len| len > limit as u64) {
            return too_large(format!(
                "body is {len} bytes, more than the limit of {limit}\n"
            ));
        }
        // Chunked bodies (or a lying Content-Length, which hyper refuses by
        // itself): `Limited` fails as soon as the limit is passed.
        let body = match Limited::new(req.into_body(), limit).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
                return too_large(format!("body is more than the limit of {limit} bytes\n"));
            }
            Err(e) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("could not read the body: {e}\n"),
                );
            }
        };
        if self.mode == Mode::Floor {
            return text(StatusCode::ACCEPTED, String::new());
        }
        match self.queue.emit_json(&body, true) {
            Ok(_) => text(StatusCode::ACCEPTED, String::new()),
            Err(JsonError::Event(Error::Full)) => {
                let mut r = text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "queue full: event rejected, retry later\n".into(),
                );
                r.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from_static("1"));
                r
            }
            Err(JsonError::Event(Error::Closed)) => {
                let mut r = text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n".into());
                r.headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
                r
            }
            Err(e @ JsonError::TooLarge { .. }) => too_large(format!("{e}\n")),
            Err(e) => text(StatusCode::BAD_REQUEST, format!("{e}\n")),
        }
    }

    fn metrics(&self) -> Response<Full<Bytes>> {
        let mut out = self.queue.stats().to_prometheus();
        self.responses.render(&mut out);
        let mut r = text(StatusCode::OK, out);
        r.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        r
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let empty = body.is_empty();
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if !empty {
        r.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
    }
    r
}

/// `413` and `Connection: close`: the rest of the body is not read, so the
/// connection cannot carry another request.
fn too_large(message: String) -> Response<Full<Bytes>> {
    let mut r = text(StatusCode::PAYLOAD_TOO_LARGE, message);
    r.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    r
}
