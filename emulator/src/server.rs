//! The accept loop and per-connection serving, with the one thing axum's `serve` cannot do: close a
//! connection on purpose without a response (the `drop` fault).
//!
//! Each connection gets a [`ConnectionControl`] in its requests' extensions. A handler that calls
//! [`ConnectionControl::abort`] makes the connection task set `SO_LINGER` to zero and drop the socket, so
//! the client sees a TCP reset instead of an HTTP status.

use std::sync::Arc;

use axum::Router;
use hyper::body::Incoming;
use hyper::service::Service as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinSet;

/// Lets a handler close its own connection without answering.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConnectionControl {
    abort: Arc<Notify>,
}

impl ConnectionControl {
    /// Ask the connection task to reset the connection.
    pub(crate) fn abort(&self) {
        self.abort.notify_one();
    }
}

/// Accept connections until `shutdown` fires (or its sender is dropped), then cut every open connection.
pub(crate) async fn serve(listener: TcpListener, router: Router, mut shutdown: oneshot::Receiver<()>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    tracing::debug!(%peer, "connection accepted");
                    connections.spawn(serve_connection(stream, router.clone()));
                }
                Err(error) => {
                    // Typically EMFILE; back off briefly instead of spinning.
                    tracing::warn!(%error, "unable to accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
}

async fn serve_connection(stream: TcpStream, router: Router) {
    let _ = stream.set_nodelay(true);
    let reset = ResetHandle::new(&stream);
    let control = ConnectionControl::default();
    let tower = TowerToHyperService::new(router);
    let request_control = control.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(request_control.clone());
        tower.call(request)
    });
    let mut connection = Box::pin(
        hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .serve_connection(TokioIo::new(stream), service),
    );
    tokio::select! {
        result = &mut connection => {
            if let Err(error) = result {
                tracing::debug!(%error, "connection ended with an error");
            }
        }
        () = control.abort.notified() => {
            reset.arm();
            drop(connection);
        }
    }
}

/// A second handle on the socket, used only to set `SO_LINGER = 0` just before the socket is dropped.
struct ResetHandle {
    #[cfg(unix)]
    dup: Option<std::net::TcpStream>,
}

impl ResetHandle {
    #[cfg(unix)]
    fn new(stream: &TcpStream) -> Self {
        use std::os::fd::AsFd;
        let dup = stream
            .as_fd()
            .try_clone_to_owned()
            .ok()
            .map(std::net::TcpStream::from);
        Self { dup }
    }

    #[cfg(not(unix))]
    fn new(_stream: &TcpStream) -> Self {
        Self {}
    }

    /// Make the socket's final close send RST; the duplicate descriptor is closed here, the socket itself
    /// when the connection is dropped.
    fn arm(self) {
        #[cfg(unix)]
        if let Some(dup) = self.dup {
            match TcpStream::from_std(dup) {
                Ok(dup) => {
                    if let Err(error) = dup.set_zero_linger() {
                        tracing::debug!(%error, "unable to set SO_LINGER; the connection closes with FIN");
                    }
                }
                Err(error) => tracing::debug!(%error, "unable to register the socket duplicate"),
            }
        }
    }
}
