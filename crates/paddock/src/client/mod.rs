//! The CLI's side of the HTTP API: requests with the caller's token, answers
//! decoded into the API's own types, problems turned into plain errors.

pub mod contexts;
pub mod output;
pub mod wait;

use anyhow::{Context, Result};
use api::problem::Problem;
use clap::Args;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The API refused the request (4xx): exit code 1, the problem as the message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// Where the API is and who is calling.
#[derive(Args, Debug, Clone)]
pub struct ClientArgs {
    /// URL of the Paddock API (default: the current `paddock login` context, else http://127.0.0.1:8080).
    #[arg(long, global = true, env = "PADDOCK_URL")]
    pub url: Option<String>,
    /// Bearer token (admin or tenant).
    #[arg(long, global = true, env = "PADDOCK_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Output: a table for people, json or yaml for scripts.
    #[arg(short = 'o', long, global = true, value_enum, default_value = "table")]
    pub output: output::Format,
    /// The log flags, hidden from the client commands' help.
    #[command(flatten)]
    pub log: crate::logging::ClientLogArgs,
}

/// Asks `question` on a terminal before a command does something that cannot
/// be undone; `yes` (the command's `--yes`), or no terminal on standard
/// input (a script), goes on without asking. A "no" is a refusal: exit 1,
/// nothing changed.
pub fn confirm(question: &str, yes: bool) -> Result<()> {
    use std::io::{BufRead, IsTerminal, Write};
    if yes || !std::io::stdin().is_terminal() {
        return Ok(());
    }
    let mut err = std::io::stderr().lock();
    write!(err, "{question} [y/N] ")?;
    err.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        Err(Refused("not confirmed; nothing was changed (--yes skips the question)".into()).into())
    }
}

/// Where the API is when nothing says.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";

impl ClientArgs {
    /// The URL and token to use: the flags (or PADDOCK_URL / PADDOCK_TOKEN),
    /// else the current saved context, else the default URL and no token.
    pub fn resolved(&self) -> (String, Option<String>) {
        let saved = if self.url.is_none() || self.token.is_none() {
            contexts::Contexts::load().ok().and_then(|c| c.current().cloned())
        } else {
            None
        };
        let url = self.url.clone().or_else(|| saved.as_ref().map(|s| s.url.clone())).unwrap_or(DEFAULT_URL.into());
        (url, self.token.clone().or_else(|| saved.map(|s| s.token)))
    }

    /// The token in use, if any.
    pub fn token(&self) -> Option<String> {
        self.resolved().1
    }

    pub fn client(&self) -> Result<Client> {
        let (raw, token) = self.resolved();
        let url =
            reqwest::Url::parse(&raw).map_err(|e| anyhow::anyhow!("--url / PADDOCK_URL {raw:?}: not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            anyhow::bail!("--url / PADDOCK_URL {raw:?}: must be http:// or https://");
        }
        let Some(token) = token.filter(|t| !t.trim().is_empty()) else {
            anyhow::bail!(
                "no token: pass --token, set PADDOCK_TOKEN, or save one with `paddock login` \
                 (paddock dev prints an admin token)"
            );
        };
        let http = reqwest::Client::builder()
            .user_agent(concat!("paddock-cli/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .context("cannot set up the HTTP client")?;
        Ok(Client { base: raw.trim_end_matches('/').to_string(), token: token.trim().to_string(), http })
    }

    /// The tenant a command is about: the flag, or the one a tenant token belongs to.
    pub fn tenant(&self, flag: &Option<String>) -> Result<String> {
        if let Some(t) = flag {
            return Ok(t.clone());
        }
        self.token()
            .as_deref()
            .and_then(|t| t.strip_prefix("pdk."))
            .and_then(|r| r.split('.').next())
            .map(str::to_string)
            .ok_or_else(|| anyhow::anyhow!("say which tenant: --tenant NAME (or PADDOCK_TENANT)"))
    }
}

pub struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Client {
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token)
    }

    fn unreachable(&self, e: reqwest::Error) -> Unreachable {
        Unreachable(format!("cannot reach the Paddock API at {}: {e}", self.base))
    }

    /// Sends; the status and the whole body.
    async fn answer(&self, req: RequestBuilder) -> Result<(StatusCode, axum::body::Bytes)> {
        let resp = req.send().await.map_err(|e| self.unreachable(e))?;
        let status = resp.status();
        Ok((status, resp.bytes().await.context("reading the API's answer")?))
    }

    /// Sends and decodes; a problem answer becomes `Refused` (4xx) or an error.
    pub async fn send<T: DeserializeOwned>(&self, req: RequestBuilder) -> Result<T> {
        let (status, bytes) = self.answer(req).await?;
        if status.is_success() {
            let body = if bytes.is_empty() { b"null".as_slice() } else { &bytes };
            return serde_json::from_slice(body).context("the API's answer is not what this CLI expects");
        }
        Err(problem_error(status, &bytes))
    }

    /// Writes a text answer to `out` as it arrives (a log, followed or not).
    pub async fn copy_to(&self, req: RequestBuilder, out: &mut (impl tokio::io::AsyncWrite + Unpin)) -> Result<()> {
        use futures::StreamExt;
        use tokio::io::AsyncWriteExt;
        let resp = req.send().await.map_err(|e| self.unreachable(e))?;
        let status = resp.status();
        if !status.is_success() {
            let bytes = resp.bytes().await.context("reading the API's answer")?;
            return Err(problem_error(status, &bytes));
        }
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            out.write_all(&chunk.context("reading the API's answer")?).await?;
            out.flush().await?;
        }
        Ok(())
    }

    /// A request's text answer (any method).
    pub async fn send_text(&self, req: RequestBuilder) -> Result<String> {
        let (status, bytes) = self.answer(req).await?;
        if status.is_success() {
            return Ok(String::from_utf8_lossy(&bytes).into_owned());
        }
        Err(problem_error(status, &bytes))
    }

    /// A text answer (e.g. a VPN client file).
    pub async fn text(&self, path: &str) -> Result<String> {
        self.send_text(self.request(Method::GET, path)).await
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.send(self.request(Method::GET, path)).await
    }

    /// A GET where 404 is an answer (`None`): the object is not there (any more).
    pub async fn get_opt<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>> {
        let (status, bytes) = self.answer(self.request(Method::GET, path)).await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if status.is_success() {
            return serde_json::from_slice(&bytes).map(Some).context("the API's answer is not what this CLI expects");
        }
        Err(problem_error(status, &bytes))
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        self.send(self.request(Method::POST, path).json(body)).await
    }

    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.send(self.request(Method::DELETE, path)).await
    }

    /// Every page of a list.
    pub async fn list_all<T: DeserializeOwned>(&self, path: &str) -> Result<Vec<T>> {
        self.list_all_with(path, &[]).await
    }

    /// Every page of a list route, with these query parameters.
    pub async fn list_all_with<T: DeserializeOwned>(&self, path: &str, query: &[(&str, String)]) -> Result<Vec<T>> {
        let mut items = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let mut req = self.request(Method::GET, path).query(query);
            if let Some(c) = &next {
                req = req.query(&[("continue", c)]);
            }
            let page: api::model::Page<T> = self.send(req).await?;
            items.extend(page.items);
            match page.next {
                Some(c) => next = Some(c),
                None => return Ok(items),
            }
        }
    }

    /// Opens an event stream.
    pub async fn events(&self, path: &str, last_event_id: Option<&str>) -> Result<reqwest::Response> {
        let mut req = self.request(Method::GET, path).header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let resp = req.send().await.map_err(|e| self.unreachable(e))?;
        if !resp.status().is_success() {
            let status = resp.status();
            let bytes = resp.bytes().await.unwrap_or_default();
            return Err(problem_error(status, &bytes));
        }
        Ok(resp)
    }
}

/// The API asks to try again shortly: what the request needs is still being
/// set up (a tenant just created). Commands retry it for a while, then report
/// it as a [`Refused`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotYet(pub String, pub u64);

/// The API could not be reached, or answered 5xx: worth trying again later
/// (exit code 2 when it is the end of the command).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unreachable(pub String);

fn problem_error(status: StatusCode, body: &[u8]) -> anyhow::Error {
    let text = match serde_json::from_slice::<Problem>(body) {
        Ok(p) if p.kind.ends_with("/tenant-provisioning") => {
            return NotYet(p.to_string(), p.retry_after.unwrap_or(1)).into();
        }
        Ok(p) => {
            let retry = p.retry_after.map(|s| format!(" (retry in {s}s)")).unwrap_or_default();
            format!("{p}{retry}")
        }
        Err(_) => format!("the API answered {status}: {}", String::from_utf8_lossy(body).trim()),
    };
    if status.is_client_error() && status != StatusCode::UNAUTHORIZED {
        Refused(text).into()
    } else if status == StatusCode::UNAUTHORIZED {
        anyhow::anyhow!("{text}: check --token / PADDOCK_TOKEN")
    } else if status.is_server_error() {
        // Worth trying again later (the API or the cluster behind it is failing).
        Unreachable(text).into()
    } else {
        anyhow::anyhow!(text)
    }
}
