//! The top-level `paddock --help`: the commands grouped by what they are
//! for (running Paddock, using a running Paddock, the cluster, the rest),
//! as `kubectl` and `gh` group theirs, instead of one alphabetical list
//! that mixes servers with API clients. The texts are each command's own.

use std::fmt::Write;

/// Each group's title and its commands, in the order shown.
pub const GROUPS: &[(&str, &[&str])] = &[
    ("Run Paddock", &["dev", "serve", "controller", "api", "sim", "files-server"]),
    (
        "Use a running Paddock (PADDOCK_URL and PADDOCK_TOKEN, or `paddock login`)",
        &["login", "context", "tenant", "template", "instance", "events", "token", "vpn", "files", "cluster"],
    ),
    ("Install on and inspect a cluster", &["manifests", "crds", "nodes", "audit"]),
    ("More", &["bench", "completion", "help"]),
];

/// `cmd` with its help listing the commands by [`GROUPS`].
pub fn grouped(cmd: clap::Command) -> clap::Command {
    let mut text = String::new();
    for (title, names) in GROUPS {
        let _ = writeln!(text, "{title}:");
        for name in *names {
            let about = match cmd.find_subcommand(name).and_then(|s| s.get_about()) {
                Some(a) => a.to_string(),
                None if *name == "help" => "Print this message or the help of the given command".to_string(),
                None => String::new(),
            };
            let _ = writeln!(text, "  {name:<11} {about}");
        }
        text.push('\n');
    }
    cmd.help_template(format!(
        "{{about-with-newline}}\n{{usage-heading}} {{usage}}\n\n{text}Options:\n{{options}}{{after-help}}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn every_command_is_in_exactly_one_group() {
        let mut cmd = crate::Cli::command();
        cmd.build();
        let listed: Vec<&str> = GROUPS.iter().flat_map(|(_, names)| names.iter().copied()).collect();
        for sub in cmd.get_subcommands() {
            let n = listed.iter().filter(|l| **l == sub.get_name()).count();
            assert_eq!(n, 1, "`paddock {}` is in {n} groups of the help", sub.get_name());
        }
        for name in &listed {
            assert!(cmd.find_subcommand(name).is_some(), "the help lists `{name}`, which is not a command");
        }
    }

    #[test]
    fn the_help_shows_the_groups_with_each_commands_text() {
        let help = grouped(crate::Cli::command()).render_help().to_string();
        assert!(help.contains("Run Paddock:\n  dev "), "{help}");
        assert!(help.contains("Use a running Paddock"), "{help}");
        assert!(help.contains("  instance    Instances through the API"), "{help}");
        assert!(help.contains("Options:\n"), "{help}");
    }
}
