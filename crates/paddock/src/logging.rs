//! Logging setup: `--log-level` / `PADDOCK_LOG_LEVEL` and `--log-format text|json`.

use clap::{Args, ValueEnum};
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Args, Debug, Clone)]
pub struct LogArgs {
    /// Log filter: a level (error, warn, info, debug, trace) or a tracing directive list.
    #[arg(long, global = true, env = "PADDOCK_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Log output format.
    #[arg(long, global = true, env = "PADDOCK_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// The same two flags on the API client commands (`tenant`, `instance`, ...),
/// hidden from their help: a person using the CLI rarely wants them, and they
/// crowded out the flags that matter. They still work there: clap hands a
/// global flag's value given after a subcommand up to [`LogArgs`].
#[derive(Args, Debug, Clone)]
pub struct ClientLogArgs {
    /// Log filter (see `paddock --help`).
    #[arg(long, global = true, hide = true, env = "PADDOCK_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Log output format (see `paddock --help`).
    #[arg(long, global = true, hide = true, env = "PADDOCK_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

impl Default for ClientLogArgs {
    fn default() -> Self {
        Self { log_level: "info".into(), log_format: LogFormat::Text }
    }
}

/// kube's client logs every failed request (a refused connection, a 5xx) at
/// ERROR without saying which, every broken watch stream at WARN in Debug
/// form, and an answer it cannot decode with the whole body (which may be a
/// Secret's). Paddock reports each of these failures where it happens, with
/// what it was doing, so those lines are off unless the filter names
/// `kube_client` itself (e.g. `info,kube_client=warn`); the TLS warnings (a
/// CA bundle that cannot be reloaded, verification switched off) stay on.
const QUIET: &str = "kube_client::client=off,kube_client::client::tls=warn";

fn filter(level: &str) -> Result<EnvFilter, String> {
    let directives = if level.contains("kube_client") { level.to_string() } else { format!("{level},{QUIET}") };
    EnvFilter::try_new(&directives).map_err(|e| format!("--log-level {level:?} is not a valid level or filter: {e}"))
}

pub fn init(args: &LogArgs) -> Result<(), String> {
    let filter = filter(&args.log_level)?;
    // Colours only for a person at a terminal: a file, a pipe or a log
    // collector gets plain text, and NO_COLOR (no-color.org) turns them off.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match args.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn kube_clients_request_errors_are_off_unless_asked_for() {
        let quiet = super::filter("info").unwrap().to_string();
        assert!(
            quiet.contains("kube_client::client=off") && quiet.contains("kube_client::client::tls=warn"),
            "{quiet}"
        );
        assert!(!super::filter("info,kube_client=error").unwrap().to_string().contains("=off"));
        assert!(super::filter("x=loud").is_err(), "a directive with a level that is none");
    }
}
