//! What the tests that run `paddock dev` as a process share.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

/// A running `paddock dev` (JSON debug log to `dir/paddock.log`): the
/// process, its banner and its kubeconfig.
pub async fn start_dev(dir: &std::path::Path) -> (std::process::Child, String, std::path::PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let kc = dir.join("kubeconfig");
    let log_path = dir.join("paddock.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_paddock"))
        .args(["--log-format", "json", "--log-level", "debug"])
        .args(["dev", "--listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0", "--kubeconfig-out"])
        .arg(&kc)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let banner = tokio::task::spawn_blocking(move || {
        let mut text = String::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            text.push_str(&line);
            text.push('\n');
            if line.starts_with("Ctrl-C stops it.") {
                break;
            }
        }
        text
    });
    let banner = tokio::time::timeout(Duration::from_secs(60), banner).await.expect("paddock dev came up").unwrap();
    assert!(banner.contains("paddock dev is running"), "{banner}");
    (child, banner, kc)
}

/// The rest of the banner line that starts with `key` (`API:`, `admin token:`).
pub fn banner_value(banner: &str, key: &str) -> String {
    banner
        .lines()
        .find_map(|l| l.trim().strip_prefix(key))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("{key} in {banner}"))
}
