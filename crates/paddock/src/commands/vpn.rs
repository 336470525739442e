//! `paddock vpn clients|config|rotate`: the team VPN through the API.

use crate::client::ClientArgs;
use crate::client::output::{cell, print};
use anyhow::Result;
use api::routes::vpn::VpnView;
use clap::{Args, Subcommand};
use std::io::Write;

#[derive(Args, Debug)]
pub struct VpnArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// The tenant (default: the one a tenant token belongs to).
    #[arg(long, global = true, env = "PADDOCK_TENANT")]
    pub tenant: Option<String>,
    #[command(subcommand)]
    pub command: VpnCommand,
}

#[derive(Subcommand, Debug)]
pub enum VpnCommand {
    /// The VPN's endpoint and client slots.
    Clients,
    /// Print one client's wg-quick file (it holds a private key): `> team.conf`.
    Config {
        /// The client slot (1 to the tenant's client count; `vpn clients` lists them; default 1).
        #[arg(long)]
        client: Option<u32>,
    },
    /// New keys for one client (--client N) or for everything.
    Rotate {
        /// The client slot to rotate (default: the server's and every client's keys).
        #[arg(long)]
        client: Option<u32>,
        /// Do not ask, on a terminal, before replacing every key.
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

fn rows(v: &VpnView) -> Vec<Vec<String>> {
    v.clients
        .iter()
        .map(|c| vec![c.number.to_string(), c.address.clone(), c.public_key.clone(), cell(v.endpoint.clone())])
        .collect()
}

const HEADER: &[&str] = &["CLIENT", "ADDRESS", "PUBLIC KEY", "ENDPOINT"];

pub async fn run(args: VpnArgs) -> Result<()> {
    let c = args.client.client()?;
    let t = args.client.tenant(&args.tenant)?;
    let out = args.client.output;
    match args.command {
        VpnCommand::Clients => {
            let v: VpnView = c.get(&format!("/v1/tenants/{t}/vpn/clients")).await?;
            print(out, &v, HEADER, rows)
        }
        VpnCommand::Config { client } => {
            let client = match client {
                Some(n) => n,
                None => {
                    // Said on stderr (stdout is the file): which slot, of how many.
                    let v: VpnView = c.get(&format!("/v1/tenants/{t}/vpn/clients")).await?;
                    if v.clients.len() > 1 {
                        eprintln!(
                            "client 1 of {} (another: --client N; `paddock vpn clients` lists them)",
                            v.clients.len()
                        );
                    }
                    1
                }
            };
            let text = c.text(&format!("/v1/tenants/{t}/vpn/clients/{client}/config")).await?;
            std::io::stdout().lock().write_all(text.as_bytes())?;
            Ok(())
        }
        VpnCommand::Rotate { client, yes } => {
            let path = match client {
                Some(n) => format!("/v1/tenants/{t}/vpn/clients/{n}/rotate"),
                None => {
                    crate::client::confirm(
                        &format!(
                            "this replaces tenant {t}'s VPN server key and every client's: every client file stops \
                             working. Go on?"
                        ),
                        yes,
                    )?;
                    format!("/v1/tenants/{t}/vpn/rotate")
                }
            };
            let v: VpnView = c.post(&path, &serde_json::json!({})).await?;
            print(out, &v, HEADER, rows)
        }
    }
}
