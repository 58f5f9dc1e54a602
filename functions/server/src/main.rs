//! `hub`: Hub as a self-hosted server.
//!
//! `hub serve` runs the gateway on an embedded libSQL file (default `./hub.db`)
//! or a remote libSQL/Turso database; `hub migrate` only applies the schema.

mod peers;
mod serve;
mod site;
mod telemetry;

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "hub",
    version,
    about = "Hub: one endpoint in front of many model providers, with exact credit metering."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone, Debug)]
pub struct DbArgs {
    /// Database: a file path (embedded libSQL) or a libsql://, https:// or http:// URL (remote libSQL/Turso).
    #[arg(long = "db", env = "HUB_DATABASE_URL", default_value = "hub.db")]
    pub db: String,
    /// Auth token for a remote database.
    #[arg(long, env = "HUB_DATABASE_TOKEN", hide_env_values = true)]
    pub db_token: Option<String>,
}

#[derive(clap::Args, Clone, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "HUB_LISTEN", default_value = "127.0.0.1:8787")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub db: DbArgs,
    /// Seconds in-flight calls get to finish after SIGINT/SIGTERM.
    #[arg(long, env = "HUB_SHUTDOWN_GRACE", default_value_t = 30)]
    pub shutdown_grace: u64,
    /// Directory of a built admin site (`admin-ui/dist`) to serve at `/` beside the API, instead of
    /// the one built into `hub`.
    #[arg(long, env = "HUB_UI_DIR")]
    pub ui_dir: Option<PathBuf>,
    /// Threads serving connections (default: one per core this process may run on).
    #[arg(long, env = "HUB_WORKERS")]
    pub workers: Option<std::num::NonZeroUsize>,
    /// Directory of the settlement journal: finished calls' usage is written here before their last byte
    /// is sent, so a crash or a database outage never loses it (default: `<db>.journal` beside an embedded
    /// database; none for a remote one unless set).
    #[arg(long, env = "HUB_JOURNAL_DIR")]
    pub journal_dir: Option<PathBuf>,
    /// Seconds a client gets to send a request's headers, counted from the
    /// connection's start or the end of the previous response (an idle
    /// keep-alive connection is closed after it).
    #[arg(long, env = "HUB_HEADER_TIMEOUT", default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout: u64,
    /// Seconds a client gets to send a whole request body once its headers are in; slower bodies get 408.
    #[arg(long, env = "HUB_BODY_TIMEOUT", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub body_timeout: u64,
    /// Most connections open at once from one client address (trusted proxies are exempt). 0: no limit.
    #[arg(long, env = "HUB_MAX_CONNECTIONS_PER_IP", default_value_t = 256)]
    pub max_connections_per_ip: usize,
    /// Serve `GET /metrics` on this address too, open to whoever reaches it unless HUB_METRICS_TOKEN is
    /// set (on the main address `/metrics` always needs that token or an owner or admin key).
    #[arg(long, env = "HUB_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Master key file for an embedded database when HUB_MASTER_KEY is not set (default: beside the database).
    #[arg(long, env = "HUB_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    #[command(after_help = options_help())]
    Serve(Box<ServeArgs>),
    /// Apply schema migrations and exit.
    Migrate(DbArgs),
    /// Exit 0 if the server on this machine is ready (`GET /readyz` answers 200),
    /// else 1: a container health check for images without curl.
    Healthcheck(HealthcheckArgs),
}

#[derive(clap::Args, Clone, Debug)]
pub struct HealthcheckArgs {
    /// The address `hub serve` listens on; an unspecified one (0.0.0.0, ::) is asked on loopback.
    #[arg(long, env = "HUB_LISTEN", default_value = "127.0.0.1:8787")]
    pub listen: SocketAddr,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 5)]
    pub timeout: u64,
}

/// The `HUB_*` variables Hub's options are read from (by the core's one
/// loader, as on every runtime), for `hub serve --help`.
fn options_help() -> String {
    use hub_core::options::{Runtime, VARIABLES};
    let mut help = String::from("Environment (read when the server starts):\n");
    for var in VARIABLES.iter().filter(|v| v.runtimes.contains(&Runtime::Server)) {
        help.push_str(&format!("  {:<24} {}\n", var.name, var.help));
    }
    help
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("HUB_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("HUB_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    // This runtime accepts connections and runs housekeeping; requests are
    // served by the worker threads `serve` starts, one runtime each.
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hub: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::serve(*args).await,
            Command::Migrate(db) => serve::migrate(db).await,
            Command::Healthcheck(args) => healthcheck(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("hub: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `hub healthcheck`: asks the local server's `/readyz` (which checks the database).
async fn healthcheck(args: HealthcheckArgs) -> Result<(), serve::BoxError> {
    let mut addr = args.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let url = format!("http://{addr}/readyz");
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(args.timeout))
        .no_proxy()
        .build()?;
    let res = client.get(&url).send().await.map_err(|e| format!("{url}: {e}"))?;
    match res.status().as_u16() {
        200 => Ok(()),
        status => Err(format!("{url} answered {status}").into()),
    }
}
