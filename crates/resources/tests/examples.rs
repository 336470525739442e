//! The example templates in examples/templates parse and validate.

use resources::Template;

#[test]
fn every_example_template_is_valid() {
    let dir = format!("{}/../../examples/templates", env!("CARGO_MANIFEST_DIR"));
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        // Through a JSON value, as the API server sees it.
        let v: serde_json::Value = serde_yaml_ng::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let t: Template = serde_json::from_value(v).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let problems = t.spec.validate();
        assert!(problems.is_empty(), "{}: {problems:?}", path.display());
        seen += 1;
    }
    assert!(seen >= 3, "expected the three example templates, found {seen}");
}
