//! Reference tables made from the code, which the docs embed between
//! markers so they cannot drift: every setting of the commands that run
//! Paddock and of the CLI's connection, from their clap definitions (flag,
//! variable, default, doc comment). A test fails when docs/configuration.md
//! differs; `PADDOCK_UPDATE_DOCS=1 cargo test -p paddock reference` rewrites
//! the table.

use std::collections::BTreeMap;

/// The commands whose settings the table lists, and the command whose
/// connection flags stand for every API client command.
const SERVERS: &[&str] = &["controller", "api", "serve"];
const CLIENT: &str = "instance";
/// Client flags that are about one command, not the connection.
const CLIENT_SETTINGS: &[&str] = &["url", "token", "tenant"];

/// The first paragraph of a flag's doc comment, on one line.
fn meaning(arg: &clap::Arg) -> String {
    let help = arg.get_long_help().or(arg.get_help()).map(|h| h.to_string()).unwrap_or_default();
    let first = help.split("\n\n").next().unwrap_or("");
    first.split_whitespace().collect::<Vec<_>>().join(" ").replace('|', "\\|")
}

fn default(arg: &clap::Arg) -> String {
    let values: Vec<String> = arg.get_default_values().iter().map(|v| v.to_string_lossy().into_owned()).collect();
    match values.as_slice() {
        [] => "—".into(),
        [v] if v == "false" && !arg.get_action().takes_values() => "off".into(),
        vs => format!("`{}`", vs.join(",")),
    }
}

/// One row per (flag, variable), with the commands that take it.
fn rows(cmd: &clap::Command) -> BTreeMap<(String, String), (String, String, Vec<String>)> {
    let mut rows: BTreeMap<(String, String), (String, String, Vec<String>)> = BTreeMap::new();
    let mut take = |sub: &clap::Command, label: &str, only: Option<&[&str]>| {
        for arg in sub.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if matches!(long, "help" | "version") || arg.is_hide_set() || only.is_some_and(|o| !o.contains(&long)) {
                continue;
            }
            let env = arg.get_env().map(|e| e.to_string_lossy().into_owned()).unwrap_or_default();
            let row = rows.entry((long.to_string(), env)).or_insert_with(|| (default(arg), meaning(arg), vec![]));
            if !row.2.iter().any(|c| c == label) {
                row.2.push(label.to_string());
            }
        }
    };
    for name in SERVERS {
        if let Some(sub) = cmd.find_subcommand(name) {
            take(sub, name, None);
        }
    }
    if let Some(sub) = cmd.find_subcommand(CLIENT) {
        take(sub, "CLI", Some(CLIENT_SETTINGS));
    }
    rows
}

/// The settings table (Markdown).
pub fn settings(cmd: &clap::Command) -> String {
    let mut out = String::from("| flag | variable | default | commands | meaning |\n|---|---|---|---|---|\n");
    for ((long, env), (default, meaning, commands)) in rows(cmd) {
        let env = if env.is_empty() { "—".to_string() } else { format!("`{env}`") };
        out.push_str(&format!("| `--{long}` | {env} | {default} | {} | {meaning} |\n", commands.join(", ")));
    }
    out
}

/// `doc` with the text between `<!-- BEGIN name -->` and `<!-- END name -->`
/// replaced by `body`, or None when the markers are missing.
pub fn splice(doc: &str, name: &str, body: &str) -> Option<String> {
    let begin = format!("<!-- BEGIN {name}");
    let end = format!("<!-- END {name} -->");
    let b = doc.find(&begin)?;
    let b = b + doc[b..].find("-->")? + 3;
    let e = doc.find(&end)?;
    (b <= e).then(|| format!("{}\n{body}{}", &doc[..b], &doc[e..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_configuration_reference_is_the_code() {
        let mut cmd = crate::Cli::command();
        cmd.build();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/configuration.md");
        let doc = std::fs::read_to_string(path).unwrap();
        let want = splice(&doc, "settings", &settings(&cmd)).expect("docs/configuration.md has the settings markers");
        if std::env::var_os("PADDOCK_UPDATE_DOCS").is_some() {
            std::fs::write(path, &want).unwrap();
            return;
        }
        assert!(
            doc == want,
            "docs/configuration.md's settings table differs from the flags; run \
             `PADDOCK_UPDATE_DOCS=1 cargo test -p paddock reference` and commit the result"
        );
    }

    #[test]
    fn every_setting_has_a_variable_and_a_meaning() {
        let mut cmd = crate::Cli::command();
        cmd.build();
        for ((long, env), (_, meaning, _)) in rows(&cmd) {
            assert!(env.starts_with("PADDOCK_"), "--{long} has no PADDOCK_* variable");
            assert!(!meaning.is_empty(), "--{long} has no doc comment");
        }
    }

    #[test]
    fn splice_replaces_between_markers() {
        let doc = "a\n<!-- BEGIN t: made -->\nold\n<!-- END t -->\nb\n";
        assert_eq!(splice(doc, "t", "new\n").unwrap(), "a\n<!-- BEGIN t: made -->\nnew\n<!-- END t -->\nb\n");
        assert!(splice("no markers", "t", "x").is_none());
    }
}
