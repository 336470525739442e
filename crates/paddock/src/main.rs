//! `paddock`: the single binary. Subcommands live in `commands/`.

mod client;
mod commands;
mod descriptors;
mod help;
mod kubeconfig;
mod logging;
#[cfg(test)]
mod reference;
mod settings;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

// jemalloc rather than glibc's malloc: under glibc the async workers slept
// on arena locks when one freed what another allocated (the tasks move
// between them), 241 times in one 100-start burst of `bench api`; mimalloc
// ended that too but doubled the resident memory.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
    /// Run the HTTP API (tenants, templates, instances, tokens, live events).
    Api(commands::api::ApiArgs),
    /// Run the controller and the API in one process (small installs).
    Serve(commands::api::ServeArgs),
    /// Print Paddock's CustomResourceDefinitions as YAML, for a Kubernetes version.
    Crds(commands::crds::CrdArgs),
    /// Print the install bundle (CRDs, RBAC, Deployment, PDB, policies) as YAML.
    Manifests(commands::manifests::ManifestArgs),
    /// List nodes with their Paddock role, or set a node's role.
    Nodes(commands::nodes::NodesArgs),
    /// Tenants through the API: create, update, list, get, kubeconfig, delete.
    Tenant(commands::tenant::TenantArgs),
    /// Templates through the API: apply -f, list, get, delete.
    Template(commands::template::TemplateArgs),
    /// Instances through the API: start [--wait], list, get, logs, stop, renew.
    Instance(commands::instance::InstanceArgs),
    /// Browse a tenant's volumes through the API: ls, get, put, rm, mkdir.
    Files(commands::files::FilesArgs),
    /// Run a tenant's file server (the controller starts it as a pod; not for people).
    FilesServer(files::server::ServerArgs),
    /// Follow instance status live (Server-Sent Events).
    Events(commands::events::EventsArgs),
    /// Tenant tokens through the API: issue, list, revoke (admin token).
    Token(commands::token::TokenArgs),
    /// The team VPN through the API: clients, config (a wg-quick file), rotate.
    Vpn(commands::vpn::VpnArgs),
    /// A tenant's own Kubernetes clusters: create [--wait], list, get, scale, upgrade, delete, kubeconfig, ssh-key.
    Cluster(commands::cluster::ClusterArgs),
    /// Measure Paddock (prints figures; --json for machines).
    Bench(commands::bench::BenchArgs),
    /// Prove tenant isolation: evaluate the cluster's NetworkPolicies (exit 1 if a path crosses tenants).
    Audit(commands::audit::AuditArgs),
    /// Save an API URL and token as a named context, checked against the API first.
    Login(commands::login::LoginArgs),
    /// The saved contexts: list, use NAME, delete NAME.
    Context(commands::login::ContextArgs),
    /// Print a shell completion script: `source <(paddock completion bash)`.
    Completion {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

impl Command {
    /// Whether the command runs a server (many connections for a long time)
    /// rather than a client's single request.
    fn serves(&self) -> bool {
        matches!(
            self,
            Command::Dev(_)
                | Command::Sim(_)
                | Command::Controller(_)
                | Command::Api(_)
                | Command::Serve(_)
                | Command::Bench(_)
                | Command::FilesServer(_)
        )
    }

    /// The async runtime the command runs on: the controller's as its
    /// `--worker-threads` says, every other command's with a worker per CPU.
    fn runtime(&self) -> tokio::runtime::Builder {
        match self {
            Command::Controller(args) if args.worker_threads == 1 => tokio::runtime::Builder::new_current_thread(),
            Command::Controller(args) if args.worker_threads > 1 => {
                let mut b = tokio::runtime::Builder::new_multi_thread();
                b.worker_threads(usize::from(args.worker_threads));
                b
            }
            _ => tokio::runtime::Builder::new_multi_thread(),
        }
    }
}

fn main() -> ExitCode {
    let matches = help::grouped(<Cli as clap::CommandFactory>::command()).get_matches();
    let cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if let Command::Completion { shell } = cli.command {
        // Written before any logging or runtime: only the script reaches stdout.
        let mut cmd = <Cli as clap::CommandFactory>::command();
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut cmd, "paddock", &mut script);
        // A reader that stops early (`| head`) is not an error.
        return match std::io::Write::write_all(&mut std::io::stdout().lock(), &script) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                eprintln!("paddock: cannot write the completion script: {e}");
                ExitCode::from(2)
            }
            _ => ExitCode::SUCCESS,
        };
    }
    if let Err(e) = logging::init(&cli.log) {
        eprintln!("paddock: {e}");
        return ExitCode::from(2);
    }
    if cli.command.serves() {
        // Before the runtime's threads exist, so growing the table costs nothing.
        let d = descriptors::prepare();
        tracing::debug!(limit_before = ?d.limit_before, limit = ?d.limit, table = ?d.table, "open-files limit and descriptor table");
    }
    let runtime = match cli.command.runtime().enable_all().build() {
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
            Command::Login(args) => commands::login::login(args).await.map(|()| false),
            Command::Context(args) => commands::login::context(args).map(|()| false),
            // Answered in `main` before the runtime starts.
            Command::Completion { .. } => Ok(false),
            Command::Controller(args) => commands::controller::run(args).await.map(|()| false),
            Command::Api(args) => commands::api::run_api(args).await.map(|()| false),
            Command::Serve(args) => commands::api::run_serve(args).await.map(|()| false),
            Command::Crds(args) => commands::crds::run(args).await.map(|()| false),
            Command::Manifests(args) => match args.version.resolve().await {
                Ok(v) => commands::manifests::render(&args, v).and_then(|y| commands::print(&y)).map(|()| false),
                Err(e) => Err(e),
            },
            Command::Nodes(args) => commands::nodes::run(args).await.map(|()| false),
            Command::Tenant(args) => commands::tenant::run(args).await.map(|()| false),
            Command::Template(args) => commands::template::run(args).await.map(|()| false),
            Command::Instance(args) => commands::instance::run(args).await.map(|()| false),
            Command::Events(args) => commands::events::run(args).await.map(|()| false),
            Command::Token(args) => commands::token::run(args).await.map(|()| false),
            Command::Vpn(args) => commands::vpn::run(args).await.map(|()| false),
            Command::Cluster(args) => commands::cluster::run(args).await.map(|()| false),
            Command::Files(args) => commands::files::run(args).await.map(|()| false),
            Command::FilesServer(args) => commands::files::serve(args).await.map(|()| false),
            Command::Bench(args) => commands::bench::run(args).await.map(|()| false),
        }
    });
    match result {
        Ok(false) => ExitCode::SUCCESS,
        Ok(true) => ExitCode::from(1),
        Err(e) => {
            eprintln!("paddock: {e:#}");
            // Refused by the API (or an instance that failed): 1; anything else: 2.
            if e.downcast_ref::<client::Refused>().is_some() { ExitCode::from(1) } else { ExitCode::from(2) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::{CommandFactory, Parser};

    /// Every command, flag and argument says what it is in `--help`.
    #[test]
    fn every_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in cmd.get_arguments() {
                let id = a.get_id().as_str();
                if id != "help" && id != "version" && a.get_help().is_none() && a.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_about().is_none() && sub.get_name() != "help" {
                    missing.push(format!("{path} {} (the command)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        let cmd = Cli::command();
        walk(&cmd, "paddock", &mut missing);
        assert!(missing.is_empty(), "arguments without help:\n{}", missing.join("\n"));
    }

    /// The API client commands keep the log flags out of their help, yet take
    /// them, before or after the subcommand; the server commands show them.
    #[test]
    fn client_commands_hide_the_log_flags_but_take_them() {
        let mut cmd = Cli::command();
        cmd.build();
        let list = cmd.find_subcommand_mut("instance").unwrap().find_subcommand_mut("list").unwrap();
        let help = list.render_long_help().to_string();
        assert!(!help.contains("--log-level") && help.contains("--selector"), "{help}");
        let serve = cmd.find_subcommand_mut("serve").unwrap().render_long_help().to_string();
        assert!(serve.contains("--log-level") && serve.contains("--log-format"), "{serve}");
        let cli = Cli::try_parse_from(["paddock", "instance", "list", "--log-level", "debug"]).unwrap();
        assert_eq!(cli.log.log_level, "debug");
        let cli = Cli::try_parse_from(["paddock", "--log-format", "json", "tenant", "list"]).unwrap();
        assert_eq!(cli.log.log_format, crate::logging::LogFormat::Json);
        let cli = Cli::try_parse_from(["paddock", "serve", "--log-level", "warn"]).unwrap();
        assert_eq!(cli.log.log_level, "warn");
    }

    /// The runtime a command line gets: its flavour and worker count.
    fn runtime_of(args: &[&str]) -> (tokio::runtime::RuntimeFlavor, usize) {
        let cli = Cli::try_parse_from(args).unwrap();
        let rt = cli.command.runtime().enable_all().build().unwrap();
        (rt.handle().runtime_flavor(), rt.metrics().num_workers())
    }

    #[test]
    fn the_controller_runs_on_one_thread_unless_told_otherwise() {
        use tokio::runtime::RuntimeFlavor::{CurrentThread, MultiThread};
        assert_eq!(runtime_of(&["paddock", "controller"]), (CurrentThread, 1));
        assert_eq!(runtime_of(&["paddock", "controller", "--worker-threads", "3"]), (MultiThread, 3));
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(runtime_of(&["paddock", "controller", "--worker-threads", "0"]), (MultiThread, cpus));
        assert_eq!(runtime_of(&["paddock", "api"]), (MultiThread, cpus), "the API keeps a worker per CPU");
        let e = Cli::try_parse_from(["paddock", "controller", "--worker-threads", "2000"]).err().unwrap().to_string();
        assert!(e.contains("--worker-threads") && e.contains("0..=1024"), "{e}");
    }
}
