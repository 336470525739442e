//! `paddock`: the single binary. Subcommands live in `commands/`.

mod commands;
mod kubeconfig;
mod logging;
mod settings;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "paddock", version, about = "Isolated, on-demand tenant workloads on Kubernetes")]
struct Cli {
    #[command(flatten)]
    log: logging::LogArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole platform on the embedded cluster (no cluster needed).
    Dev(commands::dev::DevArgs),
    /// Run kubesim, the embedded Kubernetes API server with simulated nodes.
    Sim(commands::sim::SimArgs),
    /// Run the reconcilers (leader-elected; health on --health-listen).
    Controller(commands::controller::ControllerArgs),
    /// Print Paddock's CustomResourceDefinitions as YAML.
    Crds,
    /// Print the install bundle (CRDs, RBAC, Deployment, PDB, policies) as YAML.
    Manifests(commands::manifests::ManifestArgs),
    /// List nodes with their Paddock role, or set a node's role.
    Nodes(commands::nodes::NodesArgs),
    /// Prove tenant isolation: evaluate the cluster's NetworkPolicies (exit 1 if a path crosses tenants).
    Audit(commands::audit::AuditArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = logging::init(&cli.log) {
        eprintln!("paddock: {e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("paddock: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Sim(args) => commands::sim::run(args).await.map(|()| false),
            Command::Dev(args) => commands::dev::run(args).await.map(|()| false),
            Command::Audit(args) => commands::audit::run(args).await,
            Command::Controller(args) => commands::controller::run(args).await.map(|()| false),
            Command::Crds => {
                resources::crds_yaml().map_err(anyhow::Error::from).and_then(|y| commands::print(&y)).map(|()| false)
            }
            Command::Manifests(args) => {
                commands::manifests::render(&args).and_then(|y| commands::print(&y)).map(|()| false)
            }
            Command::Nodes(args) => commands::nodes::run(args).await.map(|()| false),
        }
    });
    match result {
        Ok(false) => ExitCode::SUCCESS,
        Ok(true) => ExitCode::from(1),
        Err(e) => {
            eprintln!("paddock: {e:#}");
            ExitCode::from(2)
        }
    }
}
