//! Adding and removing a finalizer with JSON patches guarded by a test of
//! the current list, so a concurrent change fails the patch instead of
//! being overwritten (as kube's finalizer helper does).

use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;

/// Adds `finalizer` to `obj` with a JSON patch guarded by a test of the current
/// list (as kube's finalizer helper does, so a concurrent change fails the
/// patch instead of being overwritten) and returns the patched object, so the
/// reconcile can go on at once instead of waiting for the watch to bring the
/// patch back through the queue.
pub async fn add_finalizer<K>(api: &Api<K>, obj: &K, finalizer: &str) -> Result<K, kube::Error>
where
    K: Resource + Clone + Serialize + DeserializeOwned + Debug,
{
    let patch = match &obj.meta().finalizers {
        None => serde_json::json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": [finalizer]}]),
        Some(current) => serde_json::json!([
            {"op": "test", "path": "/metadata/finalizers", "value": current},
            {"op": "add", "path": "/metadata/finalizers/-", "value": finalizer}]),
    };
    let patch: json_patch::Patch = serde_json::from_value(patch).map_err(kube::Error::SerdeError)?;
    let mut with = api.patch(&obj.name_any(), &PatchParams::default(), &Patch::Json::<()>(patch)).await?;
    with.managed_fields_mut().clear();
    Ok(with)
}

/// Removes a finalizer, if the object has it, guarded by a `test` of its
/// place in the list (a concurrent change makes this a 422 to retry).
pub async fn remove_finalizer<K>(api: &Api<K>, obj: &K, finalizer: &str) -> Result<(), kube::Error>
where
    K: Resource + Clone + Serialize + DeserializeOwned + Debug,
{
    let Some(i) = obj.meta().finalizers.iter().flatten().position(|f| f == finalizer) else { return Ok(()) };
    let patch = serde_json::json!([
        {"op": "test", "path": format!("/metadata/finalizers/{i}"), "value": finalizer},
        {"op": "remove", "path": format!("/metadata/finalizers/{i}")}]);
    let patch: json_patch::Patch = serde_json::from_value(patch).map_err(kube::Error::SerdeError)?;
    match api.patch(&obj.name_any(), &PatchParams::default(), &Patch::Json::<()>(patch)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}
