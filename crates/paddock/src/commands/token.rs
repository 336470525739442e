//! `paddock token issue|list|revoke` through the API (admin token).

use crate::client::ClientArgs;
use crate::client::output::{Format, cell, print};
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
        /// How long it works, 1m to 400d, e.g. 12h or 30d (default: until revoked).
        #[arg(long)]
        ttl: Option<String>,
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

/// A creation time to the second, as the other tables show times.
fn created(at: &str) -> String {
    at.parse::<jiff::Timestamp>().map(|t| t.round(jiff::Unit::Second).unwrap_or(t).to_string()).unwrap_or(at.into())
}

pub async fn run(args: TokenArgs) -> Result<()> {
    let c = args.client.client()?;
    let out = args.client.output;
    match args.command {
        TokenCommand::Issue { tenant, description, ttl } => {
            let body = NewToken { description, ttl };
            let t: IssuedToken = c.post(&format!("/v1/tenants/{tenant}/tokens"), &body).await?;
            print(out, &t, &["ID", "TENANT", "EXPIRES", "TOKEN (shown once)"], |t| {
                vec![vec![t.id.clone(), t.tenant.clone(), cell(t.expires.clone()), t.token.clone()]]
            })
        }
        TokenCommand::List { tenant } => {
            let items: Vec<TokenInfo> = c.get(&format!("/v1/tenants/{tenant}/tokens")).await?;
            let now = jiff::Timestamp::now();
            let expires = |t: &TokenInfo| match t.expires.as_deref() {
                None => "never".to_string(),
                Some(e) if e.parse::<jiff::Timestamp>().is_ok_and(|e| e <= now) => format!("{e} (expired)"),
                Some(e) => e.to_string(),
            };
            print(out, &items, &["ID", "CREATED", "EXPIRES", "DESCRIPTION"], |v| {
                v.iter()
                    .map(|t| vec![t.id.clone(), created(&t.created), expires(t), cell(t.description.clone())])
                    .collect()
            })
        }
        TokenCommand::Revoke { id, tenant } => {
            let _: serde_json::Value = c.delete(&format!("/v1/tenants/{tenant}/tokens/{id}")).await?;
            if out == Format::Table {
                println!("token {id} of tenant {tenant} revoked: requests with it fail from now on");
                return Ok(());
            }
            print(out, &serde_json::json!({"revoked": id, "tenant": tenant}), &[], |_| Vec::new())
        }
    }
}
