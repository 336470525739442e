//! What the controller's end-to-end tests share: a run that names its
//! cluster-scoped objects (Tenants, Templates) uniquely, gives its
//! reconcilers a scope of their own (`Settings::scope`) and labels its
//! objects with it, so the suites can run against one cluster at once, and
//! a failed test's objects are still deleted (`TestCluster::owns_labelled`).
#![allow(dead_code)]

use controller::config::Settings;
use kube::discovery::ApiResource;
use kubesim::testing::TestCluster;
use serde_json::{Value, json};

/// The label a run's objects carry, and its reconcilers select.
pub const LABEL: &str = "paddock.dev/test-run";

pub struct Run {
    /// Unique to the run: `<tag><digits>`, a DNS label.
    pub id: String,
}

impl Run {
    /// A run of the test tagged `tag` (two or three letters).
    pub fn new(tag: &str) -> Run {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        Run { id: format!("{tag}{}{}", std::process::id() % 100_000, nanos % 1000) }
    }

    /// A cluster-scoped name unique to the run.
    pub fn name(&self, base: &str) -> String {
        format!("{base}-{}", self.id)
    }

    /// Settings of the run's reconcilers: its own namespaces and scope.
    pub fn settings(&self) -> Settings {
        Settings {
            namespace_prefix: format!("{}-", self.id),
            system_namespace: format!("{}-system", self.id),
            pool_namespace: format!("{}-pool", self.id),
            scope: Some((LABEL.to_string(), self.id.clone())),
            ..Default::default()
        }
    }

    /// `object` with the run's label.
    pub fn labelled(&self, mut object: Value) -> Value {
        object["metadata"]["labels"][LABEL] = json!(self.id);
        object
    }

    /// Makes the run's Tenants, Templates and namespaces the test's to delete
    /// when it ends on a cluster that outlives it, passed or failed.
    pub fn own(&self, tc: &mut TestCluster) {
        let selector = format!("{LABEL}={}", self.id);
        tc.owns_labelled(ApiResource::erase::<resources::Tenant>(&()), &selector);
        tc.owns_labelled(ApiResource::erase::<resources::Template>(&()), &selector);
        // Its namespaces (tenants', the pool's, the system one) and the
        // instances in them, whose finalizer the stopped controller no longer removes.
        tc.owns_prefixed(&format!("{}-", self.id), vec![ApiResource::erase::<resources::Instance>(&())]);
    }
}
