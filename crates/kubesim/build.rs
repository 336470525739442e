//! Compiles the vendored Kubernetes protobuf definitions (proto/) into a
//! descriptor set that kubesim decodes protobuf request bodies with.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from("proto");
    println!("cargo:rerun-if-changed=proto");
    let mut files = Vec::new();
    for group in [
        "core",
        "apps",
        "events",
        "networking",
        "rbac",
        "coordination",
        "policy",
        "node",
        "storage",
        "discovery",
        "authentication",
    ] {
        files.push(format!("k8s.io/api/{group}/v1/generated.proto"));
    }
    let set = protox::compile(&files, [&root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?).join("k8s.fds");
    std::fs::write(out, prost::Message::encode_to_vec(&set))?;
    Ok(())
}
