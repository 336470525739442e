//! Paddock's custom resources, group `paddock.dev`, version `v1alpha1`.
//!
//! Each kind lives in its own module with its defaults and a `validate`
//! function that names the field and the reason for every problem; the CRDs
//! are generated from these types (`paddock crds`).

pub mod admission;
pub mod cluster;
pub mod duration;
#[cfg(feature = "hostile")]
pub mod hostile;
pub mod instance;
pub mod kubernetes;
pub mod labels;
pub mod policy;
pub mod strict;
pub mod template;
pub mod tenant;
pub mod usage;
pub mod vocabulary;

pub use instance::{Instance, InstancePhase, InstanceSpec, InstanceStatus};
pub use template::{Template, TemplateSpec, TemplateStatus};
pub use tenant::{Tenant, TenantSpec, TenantStatus};

use kube::CustomResourceExt;

pub const GROUP: &str = "paddock.dev";
pub const VERSION: &str = "v1alpha1";

/// A DNS label: lowercase letters, digits and '-', not at either end, at most 63 characters.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// One problem with a spec: the field path and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldProblem {
    pub field: String,
    pub reason: String,
}

impl FieldProblem {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { field: field.into(), reason: reason.into() }
    }
}

/// Every CRD Paddock installs.
pub fn crds() -> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> {
    vec![Tenant::crd(), Template::crd(), Instance::crd(), cluster::Cluster::crd(), cluster::ClusterProfile::crd()]
}
