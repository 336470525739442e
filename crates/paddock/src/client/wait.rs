//! Waiting on the CLI side: a spinner on a terminal (a plain line on stderr
//! per stage otherwise, as in CI logs), `--timeout` values, and polling an
//! object until it reaches a state or is gone.

use super::{Client, Refused, Unreachable};
use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use serde::de::DeserializeOwned;
use std::io::Write;
use std::time::Duration;

/// How often [`poll`] asks the API.
const POLL_EVERY: Duration = Duration::from_millis(250);

/// `--wait` and `--timeout`, for the commands that can wait for what they asked.
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct WaitArgs {
    /// Wait until it is done — running (or failed) after a start, Ready after a create, gone after a stop or
    /// delete — showing each stage.
    #[arg(long)]
    pub wait: bool,
    /// Give up waiting after this long, e.g. 2m.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// (instance start) Stop waiting, with exit code 1 and the reason, once the
    /// instance has been unschedulable this long.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub give_up_after: Duration,
}

/// `--timeout` values: 90s, 15m, 2h.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bound = resources::duration::longest_bound();
    resources::duration::within("--timeout", s, resources::duration::LONGEST, &bound).map_err(|p| p.reason)
}

/// What a person sees while a command waits.
pub struct Progress {
    bar: ProgressBar,
    /// No terminal: each new stage is a plain line on stderr.
    plain: bool,
    shown: Option<String>,
    /// The message last printed (plain output prints every change).
    said: Option<String>,
    name: String,
}

impl Progress {
    /// `show`: people are watching (table output); otherwise nothing is drawn.
    pub fn new(name: &str, show: bool) -> Self {
        let bar = if show { ProgressBar::new_spinner() } else { ProgressBar::hidden() };
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix} {wide_msg} [{elapsed}]")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(name.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        // Without a terminal the spinner draws nothing.
        let plain = show && bar.is_hidden();
        Progress { bar, plain, shown: None, said: None, name: name.to_string() }
    }

    /// The current stage (a phase) and what it is doing; a new stage is
    /// kept on screen as a line of its own.
    pub fn update(&mut self, stage: &str, message: Option<&str>) {
        // Not on a terminal, every change of the message is a line too: a
        // status that explains itself ("0/3 nodes are available...") is seen.
        if self.plain && (self.shown.as_deref() != Some(stage) || self.said.as_deref() != message) {
            let text = message.map(|m| format!("  {m}")).unwrap_or_default();
            let _ = writeln!(std::io::stderr().lock(), "{}: {stage}{text}", self.name);
            self.said = message.map(str::to_string);
        }
        if self.shown.as_deref() != Some(stage) {
            if let Some(prev) = self.shown.as_ref().filter(|_| !self.plain) {
                self.bar.println(format!("  {prev} → {stage}"));
            }
            self.shown = Some(stage.to_string());
        }
        self.bar.set_message(format!("{stage}  {}", message.unwrap_or_default()));
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// What [`poll`] makes of an answer.
pub enum Step {
    /// Not there yet: the stage and what it is doing, for the person waiting.
    Wait(String, Option<String>),
    Done,
    /// It will not get there (exit code 1, this as the reason).
    Fail(String),
}

/// Asks for `path` until `step` says it is done (`None`: the API answers 404)
/// or failed, or `timeout` passes (a [`Refused`] naming the last stage).
/// The API being unreachable for a while (a restart) is waited out within
/// the timeout. Returns the last answer.
pub async fn poll<T: DeserializeOwned>(
    c: &Client,
    path: &str,
    name: &str,
    timeout: Duration,
    show: bool,
    mut step: impl FnMut(Option<&T>) -> Step,
) -> Result<Option<T>> {
    let mut progress = Progress::new(name, show);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let now: Option<T> = match c.get_opt(path).await {
            Ok(now) => now,
            Err(e) if e.is::<Unreachable>() && tokio::time::Instant::now() + POLL_EVERY <= deadline => {
                progress.update("Waiting for the API", Some(&e.to_string()));
                tokio::time::sleep(POLL_EVERY * 4).await;
                continue;
            }
            Err(e) => {
                progress.finish();
                return Err(e);
            }
        };
        match step(now.as_ref()) {
            Step::Done => {
                progress.finish();
                return Ok(now);
            }
            Step::Fail(why) => {
                progress.finish();
                return Err(Refused(why).into());
            }
            Step::Wait(stage, message) => {
                progress.update(&stage, message.as_deref());
                if tokio::time::Instant::now() + POLL_EVERY > deadline {
                    progress.finish();
                    let why = message.map(|m| format!(" ({m})")).unwrap_or_default();
                    return Err(Refused(format!(
                        "{name} is still {stage} after {}{why}; it goes on in the background",
                        humantime(timeout)
                    ))
                    .into());
                }
            }
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// 300s → "5m", 90s → "90s".
pub fn humantime(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s >= 3600 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn a_wait_outlasts_the_api_failing_for_a_moment() {
        // 503 first (the API restarting), then the object, then gone.
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = calls.clone();
        let app =
            axum::Router::new().route("/no", axum::routing::get(|| async { (StatusCode::FORBIDDEN, "{}") })).route(
                "/x",
                axum::routing::get(move || {
                    let n = seen.fetch_add(1, Ordering::SeqCst);
                    async move {
                        match n {
                            0 => (StatusCode::SERVICE_UNAVAILABLE, "{}".to_string()),
                            1 => (StatusCode::OK, r#"{"phase": "Stopping"}"#.to_string()),
                            _ => (StatusCode::NOT_FOUND, "{}".to_string()),
                        }
                    }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let args = super::super::ClientArgs {
            url: Some(url),
            token: Some("t".into()),
            output: super::super::output::Format::Table,
            log: Default::default(),
        };
        let c = args.client().unwrap();
        let mut stages = Vec::new();
        let gone = poll(&c, "/x", "x", Duration::from_secs(30), false, |now: Option<&serde_json::Value>| match now {
            None => Step::Done,
            Some(v) => {
                stages.push(v["phase"].as_str().unwrap_or_default().to_string());
                Step::Wait("Stopping".into(), None)
            }
        })
        .await
        .unwrap();
        assert!(gone.is_none());
        assert_eq!(stages, ["Stopping"]);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        // A refusal is not waited out.
        let started = std::time::Instant::now();
        let e = poll(&c, "/no", "x", Duration::from_secs(30), false, |_: Option<&serde_json::Value>| Step::Done)
            .await
            .unwrap_err();
        assert!(e.is::<Refused>() && started.elapsed() < Duration::from_secs(5), "{e}");
    }

    #[test]
    fn timeouts_read_as_they_were_given() {
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert!(parse_duration("soon").unwrap_err().contains("not a duration"));
        assert_eq!(humantime(Duration::from_secs(300)), "5m");
        assert_eq!(humantime(Duration::from_secs(7200)), "2h");
        assert_eq!(humantime(Duration::from_secs(90)), "90s");
    }
}
