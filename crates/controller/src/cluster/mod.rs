//! The cluster reconciler: a tenant's Kubernetes cluster, built by Cluster
//! API. Paddock is the multi-tenant front end, policy and health layer
//! over it: it checks a `Cluster` against its `ClusterProfile` and the
//! tenant's quota, renders the Cluster API objects ([`build`]) and applies
//! them, keeps the kubeconfig and an SSH key sealed ([`sealed`], [`vault`]),
//! audits the cluster's health through its own API server ([`audit`]) and
//! repairs it ([`repair`]), and on deletion waits for Cluster API to take
//! everything down.

pub mod audit;
pub mod build;
pub mod reconcile;
pub mod repair;
pub mod sealed;
pub mod vault;

pub use reconcile::{Context, FINALIZER, run};
