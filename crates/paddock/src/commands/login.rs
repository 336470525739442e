//! `paddock login` and `paddock context`: save an API URL and token under a
//! name (checked against the API first), list the saved ones, pick one.
//! See `client::contexts` for where they are kept.

use crate::client::contexts::{Contexts, Saved};
use crate::client::output::{Format, print};
use crate::client::{ClientArgs, Refused};
use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde::Serialize;

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// URL of the Paddock API.
    #[arg(long)]
    pub url: String,
    /// The token (admin or tenant); `-` reads it from standard input.
    #[arg(long)]
    pub token: String,
    /// The context's name (default: the URL's host and port).
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(Args, Debug)]
pub struct ContextArgs {
    #[command(subcommand)]
    pub command: ContextCommand,
    /// Output: a table for people, json or yaml for scripts.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: Format,
}

#[derive(Subcommand, Debug)]
pub enum ContextCommand {
    /// The saved contexts; `*` marks the current one.
    List,
    /// Make a saved context the current one.
    Use {
        /// The context's name (`context list` shows them).
        name: String,
    },
    /// Forget a saved context.
    Delete {
        /// The context's name.
        name: String,
    },
}

/// Who a token is, as the CLI reads it (the API checked it).
fn who(token: &str) -> String {
    match token.strip_prefix("pdk.").and_then(|r| r.split('.').next()) {
        Some(t) => format!("tenant {t}"),
        None => "admin".into(),
    }
}

pub async fn login(args: LoginArgs) -> Result<()> {
    let token = if args.token == "-" {
        let mut t = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin().lock(), &mut t)?;
        t.trim().to_string()
    } else {
        args.token.trim().to_string()
    };
    let client = ClientArgs {
        url: Some(args.url.clone()),
        token: Some(token.clone()),
        output: Format::Table,
        log: Default::default(),
    }
    .client()?;
    // Any valid token may list tenants (a tenant token sees its own): the check.
    let _: serde_json::Value = client.send(client.request(Method::GET, "/v1/tenants?limit=1")).await?;
    let name = match args.name {
        Some(n) => n,
        None => reqwest::Url::parse(&args.url)
            .ok()
            .and_then(|u| u.host_str().map(|h| format!("{h}{}", u.port().map(|p| format!(":{p}")).unwrap_or_default())))
            .unwrap_or_else(|| "default".into()),
    };
    if name.is_empty() || name.contains(char::is_whitespace) {
        bail!("--name {name:?}: a context name has no spaces");
    }
    let mut c = Contexts::load()?;
    c.contexts.insert(name.clone(), Saved { url: args.url.trim_end_matches('/').to_string(), token: token.clone() });
    c.current = Some(name.clone());
    let path = c.save()?;
    eprintln!(
        "logged in to {} as {}; saved as context {name} in {} (now current)",
        args.url,
        who(&token),
        path.display()
    );
    Ok(())
}

#[derive(Serialize)]
struct Row {
    name: String,
    url: String,
    who: String,
    current: bool,
}

pub fn context(args: ContextArgs) -> Result<()> {
    let mut c = Contexts::load()?;
    match args.command {
        ContextCommand::List => {
            let rows: Vec<Row> = c
                .contexts
                .iter()
                .map(|(n, s)| Row {
                    name: n.clone(),
                    url: s.url.clone(),
                    who: who(&s.token),
                    current: c.current.as_ref() == Some(n),
                })
                .collect();
            print(args.output, &rows, &["CURRENT", "NAME", "URL", "AS"], |rows| {
                rows.iter()
                    .map(|r| {
                        vec![
                            if r.current { "*".into() } else { String::new() },
                            r.name.clone(),
                            r.url.clone(),
                            r.who.clone(),
                        ]
                    })
                    .collect()
            })
        }
        ContextCommand::Use { name } => {
            if !c.contexts.contains_key(&name) {
                let known: Vec<&str> = c.contexts.keys().map(String::as_str).collect();
                return Err(Refused(format!(
                    "no context {name:?} (saved: {})",
                    if known.is_empty() { "none".into() } else { known.join(", ") }
                ))
                .into());
            }
            c.current = Some(name.clone());
            c.save()?;
            eprintln!("now using context {name}");
            Ok(())
        }
        ContextCommand::Delete { name } => {
            if c.contexts.remove(&name).is_none() {
                return Err(Refused(format!("no context {name:?}")).into());
            }
            if c.current.as_ref() == Some(&name) {
                c.current = None;
            }
            c.save()?;
            eprintln!("forgot context {name}");
            Ok(())
        }
    }
}
