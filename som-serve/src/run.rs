//! Serving a router on a socket until Ctrl-C.

use std::net::SocketAddr;

use tokio::net::TcpListener;

use crate::error::{Result, ServeError};
use crate::server::SomServer;

/// Serves `router` on `listener` until Ctrl-C (or SIGTERM), then finishes the
/// requests in flight.
///
/// # Errors
/// [`ServeError::Io`] when the listener fails.
pub async fn serve(listener: TcpListener, router: axum::Router) -> Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(ServeError::Io)
}

/// Runs `server` on `addr` (`host:port`; port 0 picks a free one) on a
/// multi-threaded runtime of its own, calls `on_ready` with the address it
/// listens on, and blocks until Ctrl-C. For programs that are not async;
/// async ones mount [`SomServer::router`] or call [`serve`].
///
/// # Errors
/// [`ServeError::Bind`] when `addr` cannot be listened on, [`ServeError::Io`]
/// when the runtime cannot start or the listener fails.
pub fn run(server: &SomServer, addr: &str, on_ready: impl FnOnce(SocketAddr)) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("som-serve")
        .build()
        .map_err(ServeError::Io)?;
    runtime.block_on(async {
        let listener = TcpListener::bind(addr).await.map_err(|source| ServeError::Bind {
            addr: addr.to_string(),
            source,
        })?;
        let local = listener.local_addr().map_err(ServeError::Io)?;
        on_ready(local);
        serve(listener, server.router()).await
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        // If the handler cannot be installed, run until killed.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
