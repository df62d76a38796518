//! `tollgate`: rate limiting as a service.
//!
//! ```text
//! tollgate [--log-format text|json] serve [--config FILE] [--listen ADDR] [--storage URI]
//! tollgate check-config FILE
//! tollgate peek|reset --policy NAME KEY [--config FILE] [--storage URI | --server URL] [--token T] [--json]
//! tollgate simulate --config FILE [--config FILE...] ACCESS_LOG...
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tollgate_server::{LogFormat, Overrides, Settings};

/// Rate limiting as a service: an HTTP check API, a reverse proxy and Envoy's rate limit
/// service, over memory or Redis.
#[derive(Debug, Parser)]
#[command(name = "tollgate", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How log lines on standard error are written (RUST_LOG sets the level: info unless set).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serves the check API (and the proxy and gRPC service if configured). SIGHUP reloads
    /// the configuration; SIGTERM or Ctrl-C stops after requests in flight finish.
    Serve {
        /// The TOML configuration file; without one, the check API on 127.0.0.1:8080 in memory.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Where the check API listens (overrides server.listen in the file).
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
        /// The storage URI: memory://, redis://HOST:PORT/DB, redis+cluster://H1:P1,H2:P2
        /// (overrides server.storage in the file).
        #[arg(long, value_name = "URI")]
        storage: Option<String>,
    },
    /// Replays access logs through configurations and reports what they would deny.
    Simulate(tollgate_server::SimulateArgs),
    /// Checks a configuration file and prints the policies it defines.
    CheckConfig {
        /// The TOML configuration file.
        file: PathBuf,
    },
    /// Shows a key's count under a policy without charging it, on a running server
    /// (--server) or in the storage directly (--config, --storage).
    Peek(tollgate_server::AdminArgs),
    /// Clears a key's count (and ban) under a policy, on a running server (--server, with
    /// the admin token) or in the storage directly (--config, --storage).
    Reset(tollgate_server::AdminArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tollgate_server::init_logging(cli.log_format);
    match cli.command {
        Command::CheckConfig { file } => check_config(&file),
        Command::Peek(args) => tollgate_server::admin(tollgate_server::AdminAction::Peek, &args),
        Command::Reset(args) => tollgate_server::admin(tollgate_server::AdminAction::Reset, &args),
        Command::Simulate(args) => tollgate_server::simulate(args),
        Command::Serve {
            config,
            listen,
            storage,
        } => {
            let settings = Settings {
                config,
                overrides: Overrides { listen, storage },
            };
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(runtime) => runtime,
                Err(err) => {
                    eprintln!("tollgate: cannot start the runtime: {err}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(serve(settings)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("tollgate: {err}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

async fn serve(settings: Settings) -> Result<(), Box<dyn std::error::Error>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = signal(SignalKind::hangup())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            // A reload already pending covers this one too.
            let _ = reload_tx.try_send(());
        }
    });
    let shutdown = async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    tollgate_server::serve(settings, reload_rx, shutdown).await?;
    Ok(())
}

/// Checks `file` as `serve` would, then prints what it puts in force.
fn check_config(file: &std::path::Path) -> ExitCode {
    let settings = Settings {
        config: Some(file.to_owned()),
        ..Settings::default()
    };
    let config = match tollgate_server::check(&settings) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}: ok", file.display());
    for (name, policy) in &config.policies {
        let shadow = if config.shadow_policies.contains(name) {
            ", shadow"
        } else {
            ""
        };
        let in_flight = config.in_flight.get(name).map_or(String::new(), |limit| {
            format!(
                ", at most {} in flight (leases of {:?})",
                limit.max(),
                limit.lease_ttl()
            )
        });
        println!("policy {name}: {policy}{shadow}{in_flight}");
    }
    if let Some(proxy) = &config.proxy {
        println!("proxy {} -> {}", proxy.listen, proxy.upstream);
        for route in &proxy.routes {
            match (&route.policy, &route.shadow_policy) {
                (Some(policy), None) => println!("  route {} -> policy {policy}", route.path),
                (Some(policy), Some(shadow)) => println!(
                    "  route {} -> policy {policy}, shadow policy {shadow}",
                    route.path
                ),
                (None, Some(shadow)) => {
                    println!("  route {} -> shadow policy {shadow}", route.path)
                }
                (None, None) => println!("  route {} exempt", route.path),
            }
        }
    }
    if let Some(envoy) = &config.envoy {
        println!("envoy {}:", envoy.file());
        for limit in envoy.limits() {
            println!("  {limit}");
        }
    }
    ExitCode::SUCCESS
}
