//! One module per subcommand.

pub mod api;
pub mod audit;
pub mod bench;
pub mod controller;
pub mod dev;
pub mod events;
pub mod instance;
pub mod manifests;
pub mod nodes;
pub mod platform;
pub mod sim;
pub mod template;
pub mod tenant;
pub mod token;
pub mod vpn;

use std::io::Write;

/// Writes a command's document output to stdout.
pub fn print(text: &str) -> anyhow::Result<()> {
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}
