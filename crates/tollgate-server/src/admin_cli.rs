//! `tollgate peek` and `tollgate reset`: a key's count under a policy, looked at or cleared
//! by an operator, on a running server (`--server URL`: its `/v1/peek` and `/v1/reset`) or
//! directly in the storage the servers share (`--storage URI`, or the configuration's, with
//! the policy from `--config FILE`).
//!
//! Directly in the storage, the request goes to the check API's own router in this process,
//! over the configuration's policies and the storage opened as `serve` opens it: the keys,
//! the answers and the errors are the server's, so a reset clears what the servers count.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::{Request, StatusCode, Uri, header};
use http_body_util::BodyExt;
use serde_json::Value;
use tollgate::FailureMode;

use crate::config::Overrides;
use crate::http::check_api::check_api_router;
use crate::server::Settings;
use crate::state::ServerState;

/// The environment variable `--token` defaults to.
const TOKEN_VARIABLE: &str = "TOLLGATE_ADMIN_TOKEN";

/// How long an answer from `--server` may take.
const SERVER_TIMEOUT: Duration = Duration::from_secs(10);

/// The arguments of `tollgate peek` and `tollgate reset`.
///
/// ```
/// use clap::Parser;
/// use tollgate_server::AdminArgs;
///
/// #[derive(Parser)]
/// struct Cli {
///     #[command(flatten)]
///     admin: AdminArgs,
/// }
/// let cli = Cli::parse_from(["tollgate", "--policy", "login", "user:42", "--server", "http://127.0.0.1:8080"]);
/// assert_eq!(cli.admin.key, "user:42");
/// assert!(Cli::try_parse_from(["tollgate", "--policy", "login", "k", "--server", "u", "--storage", "s"]).is_err());
/// ```
#[derive(Debug, Clone, clap::Args)]
pub struct AdminArgs {
    /// The policy, as configured (`[policies.NAME]`).
    #[arg(long, value_name = "NAME")]
    pub policy: String,
    /// The key, as the check API is given it (`user:42`).
    pub key: String,
    /// The configuration the policy is defined in (needed without --server).
    #[arg(long, value_name = "FILE", conflicts_with = "server")]
    pub config: Option<PathBuf>,
    /// The storage to open directly, overriding the configuration's: redis://HOST:PORT/DB,
    /// redis+cluster://H1:P1,H2:P2.
    #[arg(long, value_name = "URI", conflicts_with = "server")]
    pub storage: Option<String>,
    /// A running server's check API (http://HOST:PORT), asked instead of the storage.
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// The server's admin token, for reset (TOLLGATE_ADMIN_TOKEN unless given).
    #[arg(long, value_name = "TOKEN", requires = "server")]
    pub token: Option<String>,
    /// Prints the check API's JSON answer instead of a line of text.
    #[arg(long)]
    pub json: bool,
}

/// What `tollgate peek` or `tollgate reset` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminAction {
    /// Shows the key's count without charging it (`/v1/peek`).
    Peek,
    /// Clears the key's count and ban (`/v1/reset`).
    Reset,
}

impl AdminAction {
    fn path(self) -> &'static str {
        match self {
            AdminAction::Peek => "/v1/peek",
            AdminAction::Reset => "/v1/reset",
        }
    }
}

/// Runs `tollgate peek` or `tollgate reset` with `args`: the answer on standard output, an
/// error on standard error with a failing exit code.
///
/// ```
/// use tollgate_server::{AdminAction, AdminArgs, admin};
///
/// let args = AdminArgs {
///     policy: "login".into(),
///     key: "user:42".into(),
///     config: None,
///     storage: None,
///     server: None,
///     token: None,
///     json: false,
/// };
/// // Neither a server nor a configuration to find the storage and the policy in.
/// assert_eq!(admin(AdminAction::Peek, &args), std::process::ExitCode::FAILURE);
/// ```
pub fn admin(action: AdminAction, args: &AdminArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("tollgate: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(ask(action, args)) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("tollgate: {err}");
            ExitCode::FAILURE
        }
    }
}

/// The line to print for `action`, or what went wrong.
async fn ask(action: AdminAction, args: &AdminArgs) -> Result<String, String> {
    let body = serde_json::json!({ "policy": args.policy, "key": args.key }).to_string();
    let (status, answer) = match &args.server {
        Some(server) => {
            let token = args
                .token
                .clone()
                .or_else(|| std::env::var(TOKEN_VARIABLE).ok());
            from_server(server, action, body, token.as_deref()).await?
        }
        None => from_storage(action, args, body).await?,
    };
    let text = String::from_utf8_lossy(&answer);
    let value: Value = serde_json::from_slice(&answer)
        .map_err(|err| format!("the answer ({status}) is not JSON ({err}): {text}"))?;
    let error = value["error"].as_str().unwrap_or(&text);
    match status {
        StatusCode::OK | StatusCode::TOO_MANY_REQUESTS if args.json => Ok(value.to_string()),
        StatusCode::OK if action == AdminAction::Reset => {
            Ok(format!("{} {}: reset", args.policy, args.key))
        }
        StatusCode::OK | StatusCode::TOO_MANY_REQUESTS => Ok(describe(args, &value)),
        StatusCode::UNAUTHORIZED => Err(format!(
            "{error} ({status}): give the server's admin token with --token or {TOKEN_VARIABLE}"
        )),
        _ => Err(format!("{error} ({status})")),
    }
}

/// A peek's answer as a line: `login user:42: allowed, 3 of 5 left, whole again in 42.0 s`.
fn describe(args: &AdminArgs, answer: &Value) -> String {
    let number = |field: &str| answer[field].as_u64().unwrap_or(0);
    let seconds = |ms: u64| format!("{:.1} s", ms as f64 / 1000.0);
    let state = if answer["banned"] == true {
        "banned"
    } else if answer["shadow_denied"] == true {
        "shadow-denied (counted, not enforced)"
    } else if answer["allowed"] == true {
        "allowed"
    } else {
        "denied"
    };
    let mut line = format!(
        "{} {}: {state}, {} of {} left, whole again in {}",
        args.policy,
        args.key,
        number("remaining"),
        number("limit"),
        seconds(number("reset_after_ms")),
    );
    if let Some(retry) = answer["retry_after_ms"].as_u64() {
        line.push_str(&format!(", retry in {}", seconds(retry)));
    }
    line
}

/// Asks the check API at `server`.
async fn from_server(
    server: &str,
    action: AdminAction,
    body: String,
    token: Option<&str>,
) -> Result<(StatusCode, Bytes), String> {
    let base = server.trim_end_matches('/');
    let uri: Uri = format!("{base}{}", action.path())
        .parse()
        .map_err(|err| format!("--server {server:?}: not a URL: {err}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!(
            "--server {server:?}: expected http://HOST:PORT, the check API's address"
        ));
    }
    let mut request = Request::post(uri).header(header::CONTENT_TYPE, "application/json");
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request
        .body(Body::from(body))
        .map_err(|err| format!("--token: {err}"))?;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Body>();
    let exchange = async {
        let response = client
            .request(request)
            .await
            .map_err(|err| format!("cannot reach the server at {server}: {}", chain(&err)))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|err| format!("the server at {server} broke off its answer: {err}"))?;
        Ok((status, body.to_bytes()))
    };
    tokio::time::timeout(SERVER_TIMEOUT, exchange)
        .await
        .map_err(|_| {
            format!(
                "the server at {server} did not answer within {} s",
                SERVER_TIMEOUT.as_secs()
            )
        })?
}

/// An error with its causes, which say why a connection failed.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// Asks the check API's router in this process, over the storage opened directly and the
/// policies of the configuration.
async fn from_storage(
    action: AdminAction,
    args: &AdminArgs,
    body: String,
) -> Result<(StatusCode, Bytes), String> {
    let Some(file) = &args.config else {
        return Err(
            "give --server URL (a running server), or --config FILE (the policy's definition, \
             and its storage unless --storage URI)"
                .to_owned(),
        );
    };
    let settings = Settings {
        config: Some(file.clone()),
        overrides: Overrides {
            listen: None,
            storage: args.storage.clone(),
        },
    };
    let mut config = settings.load().map_err(|err| err.to_string())?;
    if config.storage.is_memory() {
        return Err(format!(
            "the storage is {}: a server's memory is its own; give --storage redis://..., or \
             --server URL to ask the server",
            config.storage
        ));
    }
    // A storage that fails is an error here, never an answer from a failure mode.
    config.on_storage_error = FailureMode::Deny;
    // The request never leaves this process: any token will do.
    let token = "tollgate-admin-command";
    config.admin_token = Some(token.to_owned());
    let store = config
        .storage
        .open()
        .await
        .map_err(|err| format!("cannot open storage: {err}"))?;
    let state = ServerState::new(&config, store).map_err(|err| format!("proxy: {err}"))?;
    let router = check_api_router(Arc::new(state));
    let request = Request::post(action.path())
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::from(body))
        .map_err(|err| err.to_string())?;
    let Ok(response) = tower::ServiceExt::oneshot(router, request).await;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|err| err.to_string())?;
    Ok((status, body.to_bytes()))
}
