//! One module per subcommand.

pub mod audit;
pub mod controller;
pub mod dev;
pub mod manifests;
pub mod nodes;
pub mod sim;

use std::io::Write;

/// Writes a command's document output to stdout.
pub fn print(text: &str) -> anyhow::Result<()> {
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}
