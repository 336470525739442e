//! Strict decoding of specs and bodies: a field the type does not have is an
//! error naming it, as `kubectl apply`'s strict field validation makes it for
//! custom resources, never a field dropped in silence (a template that says
//! `privileged: true` must not be accepted as if it had not).

use serde::de::DeserializeOwned;

/// Why a document did not decode.
#[derive(Debug)]
pub enum Refused {
    /// A value does not fit its field: the path (`.` for the whole
    /// document) and serde's error.
    Invalid { path: String, error: serde_json::Error },
    /// Fields the type does not have, by path (`spec.pods[0].privileged`).
    Unknown(Vec<String>),
}

/// Decodes `de` as `T`, refusing unknown fields anywhere in it.
pub fn decode<'de, T, D>(de: D) -> Result<T, Refused>
where
    T: DeserializeOwned,
    D: serde::Deserializer<'de, Error = serde_json::Error>,
{
    let mut unknown = Vec::new();
    let mut note = |path: serde_ignored::Path| unknown.push(field_path(&path));
    let value = serde_path_to_error::deserialize(serde_ignored::Deserializer::new(de, &mut note))
        .map_err(|e| Refused::Invalid { path: e.path().to_string(), error: e.into_inner() })?;
    if unknown.is_empty() { Ok(value) } else { Err(Refused::Unknown(unknown)) }
}

/// A decoding error in words for people: serde's "invalid value: integer
/// `99999`, expected u16" becomes "99999 is out of range (0 to 65535)";
/// anything else is serde's own message, without its line and column.
pub fn reason(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let text = text.split(" at line ").next().unwrap_or(&text).to_string();
    let Some(rest) = text.strip_prefix("invalid value: integer `") else { return text };
    let Some((n, expected)) = rest.split_once("`, expected ") else { return text };
    let range = match expected {
        "u8" => "0 to 255",
        "u16" => "0 to 65535",
        "u32" => "0 to 4294967295",
        "u64" => "0 to 18446744073709551615",
        "i32" => "-2147483648 to 2147483647",
        "i64" => "-9223372036854775808 to 9223372036854775807",
        _ => return text,
    };
    format!("{n} is out of range ({range})")
}

/// A path as serde_ignored reports it, written as fields are named
/// elsewhere (`spec.pods[0].security.privileged`).
fn field_path(path: &serde_ignored::Path) -> String {
    use serde_ignored::Path as P;
    match path {
        P::Root => String::new(),
        P::Seq { parent, index } => format!("{}[{index}]", field_path(parent)),
        P::Map { parent, key } => {
            let p = field_path(parent);
            if p.is_empty() { key.clone() } else { format!("{p}.{key}") }
        }
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => field_path(parent),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::TemplateSpec;
    use serde_json::json;

    #[test]
    fn unknown_fields_are_named_wherever_they_are() {
        let v = json!({"hostNetwork": true, "pods": [{"name": "a", "image": "b", "privileged": true,
            "security": {"runAsGroup": 0}, "readinessProbe": {"httpGet": {"port": 80, "hots": "x"}}}]});
        match decode::<TemplateSpec, _>(v) {
            Err(Refused::Unknown(u)) => assert_eq!(
                u,
                [
                    "hostNetwork",
                    "pods[0].privileged",
                    "pods[0].readinessProbe.httpGet.hots",
                    "pods[0].security.runAsGroup"
                ]
            ),
            other => panic!("{other:?}"),
        }
        assert!(decode::<TemplateSpec, _>(json!({"pods": [{"name": "a", "image": "b"}]})).is_ok());
        let port = json!({"pods": [{"name": "a", "image": "b", "ports": [{"name": "http", "port": 99999}]}]});
        match decode::<TemplateSpec, _>(port) {
            Err(Refused::Invalid { path, error }) => {
                assert_eq!(
                    (path.as_str(), reason(&error).as_str()),
                    ("pods[0].ports[0].port", "99999 is out of range (0 to 65535)")
                )
            }
            other => panic!("{other:?}"),
        }
    }
}
