//! `paddock events [--tenant T] [--instance NAME]`: follow instance status as it changes.

use crate::client::output::{Format, cell};
use crate::client::{Client, ClientArgs, Unreachable};
use anyhow::{Context, Result};
use api::model::{DeletedEvent, InstanceView, SnapshotEvent, StatusEvent};
use clap::Args;
use eventsource_stream::Eventsource;
use futures::{Stream, StreamExt};
use std::io::Write;

#[derive(Args, Debug)]
pub struct EventsArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Only this tenant's instances (required with a tenant token; admins see all without it).
    #[arg(long, env = "PADDOCK_TENANT")]
    pub tenant: Option<String>,
    /// Resume after this event id.
    #[arg(long)]
    pub after: Option<String>,
    /// Only this instance (by name).
    #[arg(long)]
    pub instance: Option<String>,
}

/// One decoded event.
#[derive(Debug)]
pub enum Update {
    Snapshot(String, Vec<InstanceView>),
    Status(String, Box<InstanceView>),
    Deleted(String, DeletedEvent),
}

impl Update {
    /// The update as far as instance `name` is concerned: a snapshot keeps
    /// only it, a change of another instance is dropped (None).
    fn about(self, name: &str) -> Option<Update> {
        match self {
            Update::Snapshot(id, items) => {
                Some(Update::Snapshot(id, items.into_iter().filter(|i| i.name == name).collect()))
            }
            Update::Status(_, ref i) if i.name != name => None,
            Update::Deleted(_, ref d) if d.name != name => None,
            u => Some(u),
        }
    }

    /// The event's id, to resume after it.
    fn id(&self) -> &str {
        match self {
            Update::Snapshot(id, _) | Update::Status(id, _) | Update::Deleted(id, _) => id,
        }
    }
}

/// The connection under an event stream failed (as opposed to an event the
/// CLI cannot read): [`Follow`] connects again.
#[derive(Debug, thiserror::Error)]
#[error("the event stream broke: {0}")]
struct Broken(String);

/// Connection attempts in a row after which [`Follow`] gives up.
const CONNECT_TRIES: u32 = 6;

/// A stream of updates kept up across disconnects: when it ends or breaks
/// (the API restarted, a proxy closed the connection), it connects again
/// with the last event id, so the API replays what was missed, or sends a
/// fresh snapshot when that is too old.
pub struct Follow<'a> {
    c: &'a Client,
    tenant: Option<String>,
    last: Option<String>,
    stream: Option<std::pin::Pin<Box<dyn Stream<Item = Result<Update>> + Send>>>,
    /// Whether a connection ever succeeded (the first one fails fast: a wrong
    /// URL or token is said at once).
    connected: bool,
}

impl<'a> Follow<'a> {
    pub fn new(c: &'a Client, tenant: Option<&str>, after: Option<&str>) -> Self {
        Self { c, tenant: tenant.map(str::to_string), last: after.map(str::to_string), stream: None, connected: false }
    }

    /// Connects; fails if the API refuses the stream (a 4xx answer, such as an
    /// unknown tenant or a token no longer valid), cannot be reached the first
    /// time, or cannot be reached again [`CONNECT_TRIES`] times in a row.
    async fn connect(&mut self) -> Result<()> {
        let mut tries = 0;
        loop {
            match subscribe(self.c, self.tenant.as_deref(), self.last.as_deref()).await {
                Ok(s) => {
                    self.stream = Some(Box::pin(s));
                    self.connected = true;
                    return Ok(());
                }
                Err(e) if !self.connected || !e.is::<Unreachable>() || tries + 1 >= CONNECT_TRIES => return Err(e),
                Err(e) => {
                    tries += 1;
                    let pause = std::time::Duration::from_millis(500 << tries.min(4));
                    tracing::warn!(error = %e, retry_in = ?pause, "cannot reach the event stream; trying again");
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }

    /// The next update.
    pub async fn next(&mut self) -> Result<Update> {
        let mut quick_ends = 0u32;
        loop {
            let Some(stream) = self.stream.as_mut() else {
                self.connect().await?;
                continue;
            };
            match stream.next().await {
                Some(Ok(u)) => {
                    self.last = Some(u.id().to_string());
                    return Ok(u);
                }
                Some(Err(e)) if !e.is::<Broken>() => return Err(e),
                end => {
                    self.stream = None;
                    let why = match end {
                        Some(Err(e)) => e.to_string(),
                        _ => "the API ended the event stream".to_string(),
                    };
                    tracing::warn!(%why, after = ?self.last, "reconnecting to the event stream");
                    // A stream that ends again without an event is not hammered.
                    if quick_ends > 0 {
                        tokio::time::sleep(std::time::Duration::from_millis(250 << quick_ends.min(5))).await;
                    }
                    quick_ends += 1;
                }
            }
        }
    }
}

/// The tenant's (or, for None, everyone's) stream, decoded.
async fn subscribe(
    c: &Client,
    tenant: Option<&str>,
    after: Option<&str>,
) -> Result<impl Stream<Item = Result<Update>> + use<>> {
    let path = match tenant {
        Some(t) => format!("/v1/tenants/{t}/events"),
        None => "/v1/events".to_string(),
    };
    let resp = c.events(&path, after).await?;
    Ok(resp.bytes_stream().eventsource().filter_map(|ev| async move {
        let ev = match ev {
            Ok(e) => e,
            Err(e) => return Some(Err(Broken(e.to_string()).into())),
        };
        let decoded = match ev.event.as_str() {
            "snapshot" => serde_json::from_str::<SnapshotEvent>(&ev.data).map(|s| Update::Snapshot(ev.id, s.instances)),
            "status" => {
                serde_json::from_str::<StatusEvent>(&ev.data).map(|s| Update::Status(ev.id, Box::new(s.instance)))
            }
            "deleted" => serde_json::from_str::<DeletedEvent>(&ev.data).map(|d| Update::Deleted(ev.id, d)),
            // The token was revoked or expired: final, no reconnect helps.
            "closed" => {
                let why = serde_json::from_str::<serde_json::Value>(&ev.data)
                    .ok()
                    .and_then(|v| v["reason"].as_str().map(str::to_string))
                    .unwrap_or_else(|| ev.data.clone());
                return Some(Err(anyhow::anyhow!("the API closed the event stream: {why}")));
            }
            _ => return None,
        };
        Some(decoded.context("an event the CLI cannot read"))
    }))
}

fn line(i: &InstanceView) -> String {
    let progress = [("scheduled", i.progress.scheduled), ("pulled", i.progress.pulled), ("ready", i.progress.ready)]
        .iter()
        .filter_map(|(n, v)| v.map(|s| format!("{n} {s:.1}s")))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{}/{}  {}  {}{}",
        i.tenant,
        i.name,
        cell(i.phase.clone()),
        if progress.is_empty() { String::new() } else { format!("({progress})  ") },
        i.message.clone().unwrap_or_default()
    )
}

/// One update as printed: a line per instance for people, a JSON line, or a
/// YAML document (`---` before each, so the output is one YAML stream).
fn render(u: &Update, format: Format) -> Result<String> {
    if format != Format::Table {
        let v = match u {
            Update::Snapshot(id, items) => serde_json::json!({"id": id, "type": "snapshot", "instances": items}),
            Update::Status(id, i) => serde_json::json!({"id": id, "type": "status", "instance": i}),
            Update::Deleted(id, d) => {
                serde_json::json!({"id": id, "type": "deleted", "tenant": d.tenant, "name": d.name})
            }
        };
        return Ok(if format == Format::Yaml {
            format!("---\n{}", serde_yaml_ng::to_string(&v)?)
        } else {
            format!("{v}\n")
        });
    }
    Ok(match u {
        Update::Snapshot(_, items) => items.iter().map(|i| format!("{}\n", line(i))).collect(),
        Update::Status(_, i) => format!("{}\n", line(i)),
        Update::Deleted(_, d) => format!("{}/{}  deleted\n", d.tenant, d.name),
    })
}

pub async fn run(args: EventsArgs) -> Result<()> {
    let c = args.client.client()?;
    let tenant = match &args.tenant {
        Some(t) => Some(t.clone()),
        None if args.client.token().is_some_and(|t| t.starts_with("pdk.")) => Some(args.client.tenant(&None)?),
        None => None,
    };
    let mut stream = Follow::new(&c, tenant.as_deref(), args.after.as_deref());
    loop {
        let mut u = stream.next().await?;
        if let Some(name) = &args.instance {
            match u.about(name) {
                Some(mine) => u = mine,
                None => continue,
            }
        }
        let mut out = std::io::stdout().lock();
        out.write_all(render(&u, args.client.output)?.as_bytes())?;
        out.flush()?;
    }
}

#[cfg(test)]
mod tests {
    use super::{Follow, Update};

    #[test]
    fn one_instance_only_when_asked() {
        let view = |name: &str| -> api::model::InstanceView {
            serde_json::from_value(serde_json::json!({"name": name, "tenant": "a", "template": "t",
                "progress": {}, "stopping": false}))
            .unwrap()
        };
        let snap = Update::Snapshot("e-1".into(), vec![view("web"), view("db")]);
        match snap.about("web") {
            Some(Update::Snapshot(_, items)) => {
                assert_eq!(items.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(), ["web"])
            }
            other => panic!("{other:?}"),
        }
        assert!(Update::Status("e-2".into(), Box::new(view("db"))).about("web").is_none());
        assert!(Update::Status("e-3".into(), Box::new(view("web"))).about("web").is_some());
        let gone = Update::Deleted("e-4".into(), api::model::DeletedEvent { tenant: "a".into(), name: "db".into() });
        assert!(gone.about("web").is_none());
    }

    #[test]
    fn updates_print_as_lines_json_lines_or_a_yaml_stream() {
        use crate::client::output::Format;
        let gone =
            || Update::Deleted("e-7".into(), api::model::DeletedEvent { tenant: "a".into(), name: "web".into() });
        assert_eq!(super::render(&gone(), Format::Table).unwrap(), "a/web  deleted\n");
        let json: serde_json::Value = serde_json::from_str(&super::render(&gone(), Format::Json).unwrap()).unwrap();
        assert_eq!(json["type"], "deleted");
        let two = super::render(&gone(), Format::Yaml).unwrap() + &super::render(&gone(), Format::Yaml).unwrap();
        let docs: Vec<serde_json::Value> =
            serde_yaml_ng::Deserializer::from_str(&two).map(|d| serde::Deserialize::deserialize(d).unwrap()).collect();
        assert_eq!(docs.len(), 2, "one YAML document per update: {two}");
        assert_eq!((docs[1]["id"].as_str(), docs[1]["name"].as_str()), (Some("e-7"), Some("web")));
    }
    use crate::client::ClientArgs;
    use axum::http::{HeaderMap, header};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn deleted(id: &str, name: &str) -> String {
        format!("id: {id}\nevent: deleted\ndata: {{\"tenant\":\"t\",\"name\":\"{name}\"}}\n\n")
    }

    #[tokio::test]
    async fn a_stream_that_ends_is_resumed_after_its_last_event() {
        // Each answer carries one event and ends, as when the API restarts.
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = calls.clone();
        let app = axum::Router::new().route(
            "/v1/events",
            axum::routing::get(move |h: HeaderMap| {
                let n = seen.fetch_add(1, Ordering::SeqCst);
                async move {
                    let after = h.get("last-event-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                    let body = match (n, after.as_str()) {
                        (0, "") => deleted("1", "a"),
                        (1, "1") => deleted("2", "b"),
                        _ => deleted("9", &format!("call {n} after {after:?}")),
                    };
                    ([(header::CONTENT_TYPE, "text/event-stream")], body)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let args = ClientArgs {
            url: Some(url),
            token: Some("t".into()),
            output: crate::client::output::Format::Table,
            log: Default::default(),
        };
        let c = args.client().unwrap();
        let mut f = Follow::new(&c, None, None);
        let mut names = Vec::new();
        for _ in 0..2 {
            match f.next().await.unwrap() {
                Update::Deleted(_, d) => names.push(d.name),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(names, ["a", "b"]);
    }

    #[tokio::test]
    async fn a_refused_stream_is_not_retried() {
        let app = axum::Router::new().route(
            "/v1/events",
            axum::routing::get(|| async {
                (axum::http::StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "application/problem+json")],
                    r#"{"type":"https://paddock.dev/problems/not-found","title":"Not found","status":404,"detail":"tenant \"x\" does not exist"}"#)
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let args = ClientArgs {
            url: Some(url),
            token: Some("t".into()),
            output: crate::client::output::Format::Table,
            log: Default::default(),
        };
        let c = args.client().unwrap();
        let e = Follow::new(&c, None, None).next().await.unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
    }
}
