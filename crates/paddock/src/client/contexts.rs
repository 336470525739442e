//! Saved contexts (`paddock login`): named API URLs and tokens in the
//! user's config file, one of them current, like kubectl's contexts or
//! `gh auth login`. Flags and `PADDOCK_URL`/`PADDOCK_TOKEN` still win.
//!
//! The file is `$PADDOCK_CONFIG`, else `$XDG_CONFIG_HOME/paddock/config.yaml`,
//! else `~/.config/paddock/config.yaml`, written with mode 0600: it holds tokens.

use anyhow::{Context as _, Result, anyhow};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// One saved API and token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Saved {
    pub url: String,
    pub token: String,
}

/// The config file's content.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Contexts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    #[serde(default)]
    pub contexts: BTreeMap<String, Saved>,
}

/// Where the contexts are kept.
pub fn path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PADDOCK_CONFIG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("paddock").join("config.yaml"))
}

impl Contexts {
    /// The saved contexts; none when the file does not exist.
    pub fn load() -> Result<Self> {
        let Some(p) = path() else { return Ok(Self::default()) };
        match std::fs::read_to_string(&p) {
            Ok(text) => {
                serde_yaml_ng::from_str(&text).with_context(|| format!("{} is not a paddock config", p.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", p.display())),
        }
    }

    /// Writes the file (mode 0600, its directory made if needed); returns its path.
    pub fn save(&self) -> Result<PathBuf> {
        let p = path().ok_or_else(|| anyhow!("no config directory: set PADDOCK_CONFIG or HOME"))?;
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let text = serde_yaml_ng::to_string(self)?;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&p).with_context(|| format!("cannot write {}", p.display()))?;
        // A file made by an older version keeps its mode: set it anyway.
        #[cfg(unix)]
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        std::io::Write::write_all(&mut f, text.as_bytes()).with_context(|| format!("cannot write {}", p.display()))?;
        Ok(p)
    }

    /// The current context, if one is set and saved.
    pub fn current(&self) -> Option<&Saved> {
        self.contexts.get(self.current.as_deref()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts_round_trip_and_name_the_current_one() {
        let mut c = Contexts::default();
        c.contexts.insert("dev".into(), Saved { url: "http://127.0.0.1:8080".into(), token: "t".into() });
        c.current = Some("dev".into());
        let text = serde_yaml_ng::to_string(&c).unwrap();
        let back: Contexts = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.current().map(|s| s.token.as_str()), Some("t"));
        assert_eq!(Contexts::default().current(), None);
    }
}
