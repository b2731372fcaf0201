//! The listener loop: the router served over HTTP/1.1 and HTTP/2 by hyper, with a timeout on
//! reading a request's headers. `axum::serve` sets no timer, so a client sending its headers
//! one byte at a time (slow-loris) would hold a connection and a task for as long as it likes;
//! here such a connection is closed after `header_read_timeout`. Reading the body and handling
//! the request are bounded by the router's own request timeout.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::Service;

/// Serves `app` on `listener` until `shutdown` is cancelled, then lets open requests finish.
/// Handlers see the peer's address as `ConnectInfo<SocketAddr>`.
pub async fn serve(listener: TcpListener, app: Router, header_read_timeout: Duration, shutdown: CancellationToken) -> std::io::Result<()> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    // Every connection holds a receiver; once all are dropped, shutdown is complete.
    let (closed_tx, closed_rx) = tokio::sync::watch::channel(());
    loop {
        let (stream, remote) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut req: axum::http::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo::<SocketAddr>(remote));
            app.clone().call(req.map(axum::body::Body::new))
        });
        let builder = builder.clone();
        let shutdown = shutdown.clone();
        let closed = closed_rx.clone();
        tokio::spawn(async move {
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => log_connection_end(result),
                _ = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    log_connection_end(conn.await);
                }
            }
            drop(closed);
        });
    }
    drop(listener);
    drop(closed_rx);
    closed_tx.closed().await;
    Ok(())
}

fn log_connection_end(result: Result<(), Box<dyn std::error::Error + Send + Sync>>) {
    if let Err(e) = result {
        // Clients going away and header-read timeouts end here; none is Nova's failure.
        tracing::debug!(error = %e, "connection closed with an error");
    }
}
