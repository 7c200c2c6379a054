//! The HTTP side: a [`tiny_http`] server on its own thread serving `/metrics` and
//! `/histograms` from the latest figures.

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use kistrel_control::{ControlFigures, Publish};
use kistrel_engine::runtime::WorkerStats;
use tiny_http::{Header, Method, Request, Response};

use super::exposition::{render, Format};
use super::figures::{zeroed, Figures};
use super::histograms::page;
use crate::config::ConfigError;
use crate::error::CliError;

/// Serves a node's figures until dropped.
pub struct MetricsServer {
    figures: Arc<Mutex<Figures>>,
    http: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
    addr: SocketAddr,
}

impl std::fmt::Debug for MetricsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl MetricsServer {
    /// Binds `addr` and starts the HTTP thread; the pages list workers `0..workers` at zero
    /// until they report.
    pub fn start(addr: SocketAddr, workers: usize) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let http =
            tiny_http::Server::from_listener(listener, None).map_err(std::io::Error::other)?;
        let http = Arc::new(http);
        let figures = Arc::new(Mutex::new(zeroed(workers)));
        let thread = {
            let (http, figures) = (Arc::clone(&http), Arc::clone(&figures));
            std::thread::Builder::new()
                .name("kistrel-metrics".into())
                .spawn(move || {
                    for request in http.incoming_requests() {
                        serve(request, &figures);
                    }
                })?
        };
        Ok(MetricsServer {
            figures,
            http,
            thread: Some(thread),
            addr,
        })
    }

    /// Starts the server for a config's `MetricsPort` (if set) and prints `metrics addr=ADDR`
    /// on stdout, so a parent that asked for port 0 learns the port. `in_use` builds the
    /// config error for a taken port (exit 2).
    pub fn for_config(
        addr: Option<SocketAddr>,
        workers: usize,
        in_use: impl FnOnce(&'static str, SocketAddr) -> ConfigError,
    ) -> Result<Option<Self>, CliError> {
        let Some(addr) = addr else { return Ok(None) };
        let server = Self::start(addr, workers).map_err(|e| match e.kind() {
            std::io::ErrorKind::AddrInUse => CliError::from(in_use("MetricsPort", addr)),
            _ => CliError::runtime(format!("binding MetricsPort {addr}"), e),
        })?;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "metrics addr={}", server.addr());
        let _ = out.flush();
        Ok(Some(server))
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where the control thread publishes the figures this server serves.
    pub fn publisher(&self) -> MetricsPublisher {
        MetricsPublisher {
            figures: Arc::clone(&self.figures),
        }
    }
}

/// Takes the control loop's figures for a [`MetricsServer`] (on the control thread; the
/// HTTP thread renders from the same figures).
#[derive(Debug, Clone)]
pub struct MetricsPublisher {
    figures: Arc<Mutex<Figures>>,
}

impl Publish for MetricsPublisher {
    fn worker(&mut self, stats: &WorkerStats) {
        let mut figures = self.figures.lock().unwrap_or_else(PoisonError::into_inner);
        let w = figures.entry(stats.worker).or_default();
        w.stats = stats.relay;
        w.sched = stats.sched.clone();
        w.scheduler = Some(stats.scheduler);
        w.events_dropped = stats.events_dropped;
        w.links = stats.links;
        w.io = stats.io;
    }

    fn control(&mut self, control: &ControlFigures) {
        let mut figures = self.figures.lock().unwrap_or_else(PoisonError::into_inner);
        for (worker, &dropped) in control.commands_dropped.iter().enumerate() {
            figures.entry(worker).or_default().commands_dropped = dropped;
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.http.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `response` with the header `name: value` (ASCII constants here, so it always parses).
fn with_header<R: std::io::Read>(response: Response<R>, name: &str, value: &str) -> Response<R> {
    match Header::from_bytes(name.as_bytes(), value.as_bytes()) {
        Ok(h) => response.with_header(h),
        Err(()) => response,
    }
}

/// Answers one request (tiny_http leaves the body out for HEAD).
fn serve(request: Request, figures: &Mutex<Figures>) {
    let path = request.url().split('?').next().unwrap_or("").to_owned();
    let method = request.method().clone();
    if !matches!(method, Method::Get | Method::Head) {
        let response = with_header(
            Response::from_string("use GET or HEAD\n").with_status_code(405),
            "Allow",
            "GET, HEAD",
        );
        let _ = request.respond(response);
        return;
    }
    // Copy under the lock, render after it: the control thread's update never waits long.
    let snapshot = || {
        figures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    };
    let (body, content_type) = match path.as_str() {
        "/metrics" => {
            let accept = request
                .headers()
                .iter()
                .find(|h| h.field.equiv("Accept"))
                .map(|h| h.value.as_str().to_owned());
            let format = Format::negotiate(accept.as_deref());
            (render(&snapshot(), format), format.content_type())
        }
        "/histograms" => match serde_json::to_string(&page(&snapshot())) {
            Ok(json) => (json, "application/json"),
            Err(e) => {
                let msg = format!("encoding the histograms page: {e}\n");
                let _ = request.respond(Response::from_string(msg).with_status_code(500));
                return;
            }
        },
        _ => {
            let response = Response::from_string("not found: try /metrics or /histograms\n")
                .with_status_code(404);
            let _ = request.respond(response);
            return;
        }
    };
    let response = with_header(Response::from_string(body), "Content-Type", content_type);
    let _ = request.respond(response);
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    use kistrel_engine::relay::RelayStats;
    use kistrel_engine::runtime::LinkStats;
    use kistrel_sched::{SchedMetrics, SchedulerKind};

    use super::*;

    /// One raw HTTP/1.0 exchange: (status line, headers, body).
    fn exchange(addr: SocketAddr, request: &str) -> (String, String, String) {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
        (status.to_owned(), headers.to_owned(), body.to_owned())
    }

    #[test]
    fn serves_both_formats_histograms_and_head_from_the_first_request() {
        let server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), 2).unwrap();
        let addr = server.addr();
        let (status, headers, body) = exchange(addr, "GET /metrics HTTP/1.0\r\n\r\n");
        assert!(status.contains("200"), "{status}");
        assert!(headers.contains("text/plain; version=0.0.4"), "{headers}");
        // Zero-valued series for both workers before any report.
        assert!(
            body.contains("kistrel_cells_in_total{worker=\"1\"} 0\n"),
            "{body}"
        );
        assert!(!body.contains("# EOF"));
        let (_, headers, body) = exchange(
            addr,
            "GET /metrics HTTP/1.0\r\nAccept: application/openmetrics-text; version=1.0.0\r\n\r\n",
        );
        assert!(
            headers.contains("application/openmetrics-text"),
            "{headers}"
        );
        assert!(body.ends_with("# EOF\n"), "{body}");
        let (status, headers, body) = exchange(addr, "HEAD /metrics HTTP/1.0\r\n\r\n");
        assert!(status.contains("200"), "{status}");
        assert!(headers.contains("text/plain"), "{headers}");
        assert!(body.is_empty(), "{body}");

        let mut m = SchedMetrics::new();
        m.runs = 4;
        let mut publisher = server.publisher();
        publisher.worker(&WorkerStats {
            worker: 1,
            relay: RelayStats::default(),
            sched: m,
            scheduler: SchedulerKind::Vanilla,
            events_dropped: 2,
            links: LinkStats {
                tls_user: 4,
                ..LinkStats::default()
            },
            io: kistrel_engine::runtime::DriverStats {
                recv_no_buffers: 9,
                ..Default::default()
            },
        });
        publisher.control(&ControlFigures {
            commands_dropped: vec![0, 3],
            circuits: None,
        });
        let (_, _, body) = exchange(addr, "GET /metrics HTTP/1.0\r\n\r\n");
        for want in [
            "kistrel_control_events_dropped_total{worker=\"1\"} 2\n",
            "kistrel_control_commands_dropped_total{worker=\"1\"} 3\n",
            "kistrel_links_tls_user_total{worker=\"1\"} 4\n",
            "kistrel_io_recv_no_buffers_total{worker=\"1\"} 9\n",
        ] {
            assert!(body.contains(want), "missing {want:?} in\n{body}");
        }
        let (_, headers, body) = exchange(addr, "GET /histograms HTTP/1.0\r\n\r\n");
        assert!(headers.contains("application/json"), "{headers}");
        let page: super::super::HistogramsPage = serde_json::from_str(&body).unwrap();
        assert_eq!(page.workers[1].counters.runs, 4);
        assert_eq!(page.workers[1].scheduler.as_deref(), Some("Vanilla"));

        let (status, _, _) = exchange(addr, "GET /nope HTTP/1.0\r\n\r\n");
        assert!(status.contains("404"), "{status}");
        let (status, headers, _) = exchange(addr, "POST /metrics HTTP/1.0\r\n\r\n");
        assert!(status.contains("405"), "{status}");
        assert!(headers.contains("Allow: GET, HEAD"), "{headers}");
        // Dropping stops the serving thread (and returns: the join in Drop does not hang).
        drop(server);
    }
}
