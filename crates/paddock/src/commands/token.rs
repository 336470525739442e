//! `paddock token issue|list|revoke` through the API (admin token).

use crate::client::ClientArgs;
use crate::client::output::{cell, print};
use anyhow::Result;
use api::auth::{IssuedToken, TokenInfo};
use api::model::NewToken;
use clap::{Args, Subcommand};

#[derive(Args, Debug)]
pub struct TokenArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: TokenCommand,
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Issue a token for a tenant; it is shown once.
    Issue {
        /// The tenant the token acts for.
        #[arg(long, env = "PADDOCK_TENANT")]
        tenant: String,
        /// What the token is for (shown by `token list`), e.g. "CTF site".
        #[arg(long)]
        description: Option<String>,
    },
    /// List a tenant's tokens (ids, never the tokens).
    List {
        /// The tenant whose tokens to list.
        #[arg(long, env = "PADDOCK_TENANT")]
        tenant: String,
    },
    /// Revoke a token by id.
    Revoke {
        /// The token's id (`token list` shows them; a token reads pdk.TENANT.ID.SECRET).
        id: String,
        /// The tenant the token belongs to.
        #[arg(long, env = "PADDOCK_TENANT")]
        tenant: String,
    },
}

pub async fn run(args: TokenArgs) -> Result<()> {
    let c = args.client.client()?;
    let out = args.client.output;
    match args.command {
        TokenCommand::Issue { tenant, description } => {
            let t: IssuedToken = c.post(&format!("/v1/tenants/{tenant}/tokens"), &NewToken { description }).await?;
            print(out, &t, &["ID", "TENANT", "TOKEN (shown once)"], |t| {
                vec![vec![t.id.clone(), t.tenant.clone(), t.token.clone()]]
            })
        }
        TokenCommand::List { tenant } => {
            let items: Vec<TokenInfo> = c.get(&format!("/v1/tenants/{tenant}/tokens")).await?;
            print(out, &items, &["ID", "CREATED", "DESCRIPTION"], |v| {
                v.iter().map(|t| vec![t.id.clone(), t.created.clone(), cell(t.description.clone())]).collect()
            })
        }
        TokenCommand::Revoke { id, tenant } => {
            let _: serde_json::Value = c.delete(&format!("/v1/tenants/{tenant}/tokens/{id}")).await?;
            print(out, &serde_json::json!({"revoked": id}), &["REVOKED"], |_| vec![vec![id.clone()]])
        }
    }
}
