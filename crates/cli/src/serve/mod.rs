//! `quantlake serve`: the dashboard and its JSON API over one lake.
//!
//! Every figure a page shows comes from a function in [`data`], and the same function answers the
//! documented JSON endpoint (`/api/...`), so a page and its endpoint cannot disagree. The pages are
//! HTML rendered on the server ([`pages`]), charts are SVG drawn on the server ([`charts`]), and
//! the one stylesheet and small script are compiled into the binary: nothing is fetched from the
//! internet.
//!
//! | page | endpoint(s) |
//! |---|---|
//! | `/` overview | `/api/health` |
//! | `/dq` data quality | `/api/dq/summary`, `/api/dq/null_rates`, `/api/dq/metrics` |
//! | `/coverage` heat map | `/api/coverage` |
//! | `/jobs`, `/jobs/{id}`, `/backfill` | `/api/jobs`, `/api/jobs/{job_id}`, `/api/jobs/stream`, `/api/backfills` |
//! | `/snapshots` | `/api/snapshots`, `/api/snapshots/diff`, `/api/snapshots/restore` |
//! | `/bars` | `/api/bars` |
//! | `/lineage` | `/api/lineage` |
//! | `/validation`, `/alerts` | `/api/validation`, `/api/alerts` |
//!
//! Access: bound to 127.0.0.1 by default, where anyone on the machine may read. With `--bind` to
//! another address an access token is required ([`auth`]): `QUANTLAKE_TOKEN`, sent as a bearer
//! header or entered once in the login form.
//!
//! ```no_run
//! # async fn demo() -> quantlake::Result<()> {
//! use quantlake::config::Config;
//! use quantlake_cli::serve::{serve, ServeOptions};
//! use quantlake::table::Lake;
//!
//! let config = Config::default();
//! let lake = Lake::open("./lake", config.lake.options()).await?;
//! serve(lake, config, ServeOptions::default()).await?;
//! # Ok(()) }
//! ```

pub mod actions;
pub mod api;
mod assets;
pub mod auth;
pub mod charts;
pub mod data;
mod pages;
mod params;

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::Router;

use quantlake::config::Config;
use quantlake::error::{Error, Result};
use quantlake::table::Lake;

/// Where and how to listen.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub bind: IpAddr,
    pub port: u16,
    /// Required from every client when set; required to be set when `bind` is not a loopback address.
    pub token: Option<String>,
    /// Run backfills triggered from the dashboard in this process (otherwise they wait in the queue
    /// for a `quantlake worker`).
    pub run_jobs: bool,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self { bind: IpAddr::V4(Ipv4Addr::LOCALHOST), port: 8080, token: None, run_jobs: true }
    }
}

/// What every handler shares: the lake, the config, and the access rule.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    lake: Lake,
    config: Config,
    token: Option<auth::Token>,
    run_jobs: bool,
}

impl AppState {
    pub fn new(lake: Lake, config: Config, options: &ServeOptions) -> Self {
        let token = options.token.as_deref().map(str::trim).filter(|t| !t.is_empty()).map(auth::Token::new);
        Self { inner: Arc::new(Inner { lake, config, token, run_jobs: options.run_jobs }) }
    }

    pub fn lake(&self) -> &Lake {
        &self.inner.lake
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    fn token(&self) -> Option<&auth::Token> {
        self.inner.token.as_ref()
    }

    fn run_jobs(&self) -> bool {
        self.inner.run_jobs
    }

    /// Runs `work` on one of the runtime's blocking threads and waits for it. Everything a request
    /// does in the library goes through here: the library's work reads and computes (DuckDB, rayon)
    /// without yielding, which must not stall the threads serving requests, and its futures borrow
    /// their settings, which the compiler cannot always prove `Send` across (rust-lang/rust#110338),
    /// as a request handler needs; here they need not be.
    pub async fn run<T, F, Fut>(&self, work: F) -> Result<T>
    where
        F: FnOnce(AppState) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T>>,
        T: Send + 'static,
    {
        let state = self.clone();
        let runtime = tokio::runtime::Handle::current();
        // A panic in the work is an internal error (500), not the caller's.
        tokio::task::spawn_blocking(move || runtime.block_on(work(state)))
            .await
            .map_err(|e| Error::Io(std::io::Error::other(format!("the request's work stopped: {e}"))))?
    }

    /// Starts `work` like [`Self::run`], without waiting: a job the dashboard triggered.
    pub fn spawn<F, Fut>(&self, work: F)
    where
        F: FnOnce(AppState) -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        let state = self.clone();
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || runtime.block_on(work(state)));
    }
}

/// The whole application: pages, API, assets, behind the access check.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(pages::routes())
        .nest("/api", api::routes())
        .merge(assets::routes())
        .merge(auth::routes())
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_token))
        .with_state(state)
}

/// Serves the dashboard until the process is stopped (Ctrl-C or SIGTERM).
pub async fn serve(lake: Lake, config: Config, options: ServeOptions) -> Result<()> {
    if !options.bind.is_loopback() && options.token.as_deref().is_none_or(|t| t.trim().is_empty()) {
        return Err(Error::invalid(format!(
            "--bind {} makes the dashboard reachable from other machines: set an access token in QUANTLAKE_TOKEN (or --token)",
            options.bind
        )));
    }
    let addr = SocketAddr::new(options.bind, options.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::invalid(format!("cannot listen on {addr}: {e}")))?;
    let local = listener.local_addr().map_err(|e| Error::invalid(format!("cannot listen on {addr}: {e}")))?;
    let app = router(AppState::new(lake, config, &options));
    // The line tests and scripts wait for; the port is the real one when --port 0 asked for any.
    println!("quantlake dashboard on http://{local}/");
    tracing::info!("serving the dashboard on http://{local}/");
    // On Ctrl-C or SIGTERM: stop accepting, let requests finish, and give open connections (a jobs
    // page's event stream never ends by itself) a few seconds before leaving.
    let (stop, stopping) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown().await;
        let _ = stop.send(true);
    });
    let until_stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stopped| *stopped).await;
    };
    let server = axum::serve(listener, app).with_graceful_shutdown(until_stopped(stopping.clone()));
    let grace = async {
        until_stopped(stopping).await;
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    };
    tokio::select! {
        served = server => served.map_err(|e| Error::Io(std::io::Error::other(format!("the dashboard server stopped: {e}")))),
        _ = grace => {
            tracing::info!("dashboard stopped; connections still open were closed");
            Ok(())
        }
    }
}

async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
