//! One module per subcommand.

pub mod api;
pub mod audit;
pub mod bench;
pub mod cluster;
pub mod controller;
pub mod crds;
pub mod dev;
pub mod events;
pub mod files;
pub mod instance;
pub mod login;
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

/// The text of a `-f` argument: the file, or standard input for `-`.
pub fn read_arg(path: &std::path::Path) -> anyhow::Result<String> {
    use anyhow::Context;
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin().lock(), &mut text)
            .context("-f -: cannot read standard input")?;
        return Ok(text);
    }
    std::fs::read_to_string(path).with_context(|| format!("-f {}: cannot read it", path.display()))
}

/// Decodes a manifest's `spec`; an error names the field it is about
/// (`spec.pods[0].ports[0]: missing field `name``), not just `spec`.
pub fn decode_spec<T: serde::de::DeserializeOwned>(spec: serde_json::Value) -> Result<T, String> {
    use resources::strict::Refused;
    resources::strict::decode(spec).map_err(|e| match e {
        Refused::Invalid { path, error } if path == "." => format!("spec: {}", resources::strict::reason(&error)),
        Refused::Invalid { path, error } => format!("spec.{path}: {}", resources::strict::reason(&error)),
        Refused::Unknown(fields) => {
            let named: Vec<String> = fields.iter().map(|f| format!("spec.{f}")).collect();
            format!("{}: unknown field(s); remove them", named.join(", "))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::decode_spec;
    use resources::template::TemplateSpec;
    use serde_json::json;

    #[test]
    fn a_bad_spec_names_the_field() {
        let spec = json!({"pods": [{"name": "web", "image": "nginx", "ports": [{"port": 80}]}]});
        let e = decode_spec::<TemplateSpec>(spec).unwrap_err();
        assert_eq!(e, "spec.pods[0].ports[0]: missing field `name`");
        let e = decode_spec::<TemplateSpec>(json!("web")).unwrap_err();
        assert!(e.starts_with("spec: invalid type"), "{e}");
        let e = decode_spec::<TemplateSpec>(json!({"pods": [{"name": "web", "image": "nginx", "privileged": true}]}))
            .unwrap_err();
        assert_eq!(e, "spec.pods[0].privileged: unknown field(s); remove them");
    }
}
