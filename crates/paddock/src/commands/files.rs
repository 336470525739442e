//! `paddock files ls|get|put|rm|mkdir`: a tenant's volumes through the API's
//! file browser (`--group G` for a group volume the tenant is a member of);
//! and `paddock files-server`, the file server the controller runs in a
//! tenant's namespace.

use crate::client::output::{cell, print};
use crate::client::{Client, ClientArgs};
use anyhow::{Context, Result, bail};
use api::routes::storage::{FileEntry, FileListing};
use clap::{Args, Subcommand};
use files::disk::DiskStore;
use files::server::{Served, ServerArgs, volume_flags};
use reqwest::Method;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Args, Debug)]
pub struct FilesArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// The tenant (default: the one a tenant token belongs to).
    #[arg(long, global = true, env = "PADDOCK_TENANT")]
    pub tenant: Option<String>,
    /// A group volume the tenant is a member of, instead of its own.
    #[arg(long, global = true)]
    pub group: Option<String>,
    #[command(subcommand)]
    pub command: FilesCommand,
}

#[derive(Subcommand, Debug)]
pub enum FilesCommand {
    /// List a directory (default: the volume's root).
    Ls {
        /// The directory, from the volume's root.
        #[arg(default_value = "/")]
        path: String,
    },
    /// Download a file to a local file, or to standard output.
    Get {
        /// The file, from the volume's root.
        path: String,
        /// The local file to write (default, or `-`: standard output).
        local: Option<PathBuf>,
    },
    /// Upload a local file (streamed).
    Put {
        /// The local file.
        local: PathBuf,
        /// Where it goes, from the volume's root (its directory must exist).
        path: String,
        /// Replace a file already there.
        #[arg(long)]
        replace: bool,
    },
    /// Delete a file or an empty directory (-r: a directory and all it holds).
    Rm {
        /// The file or directory.
        path: String,
        /// Delete a directory with all it holds.
        #[arg(long, short = 'r')]
        recursive: bool,
    },
    /// Make a directory (its parent must exist).
    Mkdir {
        /// The new directory.
        path: String,
    },
}

fn base(tenant: &str, group: &Option<String>) -> String {
    match group {
        Some(g) => format!("/v1/tenants/{tenant}/storage/groups/{g}/files"),
        None => format!("/v1/tenants/{tenant}/storage/files"),
    }
}

fn rows(l: &FileListing) -> Vec<Vec<String>> {
    l.entries
        .iter()
        .map(|e: &FileEntry| {
            let name = if e.kind == "Directory" { format!("{}/", e.name) } else { e.name.clone() };
            vec![name, e.kind.clone(), e.size.to_string(), cell(e.modified.clone())]
        })
        .collect()
}

pub async fn run(args: FilesArgs) -> Result<()> {
    let c = args.client.client()?;
    let t = args.client.tenant(&args.tenant)?;
    let base = base(&t, &args.group);
    match args.command {
        FilesCommand::Ls { path } => {
            let l: FileListing = c.send(c.request(Method::GET, &base).query(&[("path", &path)])).await?;
            if l.truncated {
                eprintln!("(the directory holds more than the {} entries listed)", l.entries.len());
            }
            print(args.client.output, &l, &["NAME", "KIND", "SIZE", "MODIFIED"], rows)
        }
        FilesCommand::Get { path, local } => get(&c, &base, &path, local).await,
        FilesCommand::Put { local, path, replace } => {
            let file =
                tokio::fs::File::open(&local).await.with_context(|| format!("{}: cannot open it", local.display()))?;
            let len = file.metadata().await.map(|m| m.len()).ok();
            let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
            let mut req = c
                .request(Method::PUT, &format!("{base}/content"))
                .query(&[("path", path.as_str()), ("replace", if replace { "true" } else { "false" })])
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .body(body);
            if let Some(n) = len {
                req = req.header(reqwest::header::CONTENT_LENGTH, n);
            }
            let e: FileEntry = c.send(req).await?;
            eprintln!("{path}: {} bytes written", e.size);
            Ok(())
        }
        FilesCommand::Rm { path, recursive } => {
            let q = [("path", path.as_str()), ("recursive", if recursive { "true" } else { "false" })];
            c.send::<serde_json::Value>(c.request(Method::DELETE, &base).query(&q)).await?;
            eprintln!("{path}: deleted");
            Ok(())
        }
        FilesCommand::Mkdir { path } => {
            c.send::<FileEntry>(c.request(Method::POST, &format!("{base}/mkdir")).query(&[("path", &path)])).await?;
            eprintln!("{path}: made");
            Ok(())
        }
    }
}

async fn get(c: &Client, base: &str, path: &str, output: Option<PathBuf>) -> Result<()> {
    let req = c.request(Method::GET, &format!("{base}/content")).query(&[("path", path)]);
    match output.filter(|o| o.as_os_str() != "-") {
        None => c.copy_to(req, &mut tokio::io::stdout()).await,
        Some(o) => {
            // Written beside the target and renamed, so a failed download leaves nothing.
            let part = o.with_extension("paddock-part");
            let mut f =
                tokio::fs::File::create(&part).await.with_context(|| format!("{}: cannot write it", part.display()))?;
            let r = c.copy_to(req, &mut f).await;
            drop(f);
            if let Err(e) = r {
                let _ = tokio::fs::remove_file(&part).await;
                return Err(e);
            }
            tokio::fs::rename(&part, &o).await.with_context(|| format!("{}: cannot write it", o.display()))?;
            Ok(())
        }
    }
}

/// `paddock files-server`: serves the volumes given on disk until SIGTERM.
pub async fn serve(args: ServerArgs) -> Result<()> {
    let token = std::fs::read_to_string(&args.token_file)
        .with_context(|| format!("--token-file {}: cannot read it", args.token_file.display()))?;
    let token = token.trim().to_string();
    if token.len() < 16 {
        bail!("--token-file {}: the token is shorter than 16 characters", args.token_file.display());
    }
    let mut volumes: BTreeMap<String, Arc<dyn files::Store>> = BTreeMap::new();
    for (name, dir) in volume_flags(&args.volumes).map_err(anyhow::Error::msg)? {
        let store = DiskStore::open(&dir, args.read_only)
            .with_context(|| format!("--volume {name}={}: cannot open the directory", dir.display()))?;
        volumes.insert(name, Arc::new(store));
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("--listen {}: cannot listen there", args.listen))?;
    tracing::info!(listen = %args.listen, volumes = ?volumes.keys().collect::<Vec<_>>(), read_only = args.read_only, "file server ready");
    let router = files::server::router(Served { volumes, token });
    files::server::serve(listener, router, super::sim::shutdown_signal()).await.context("the file server failed")
}
