//! The tenant reconciler: namespace, network policies, quota, limits, service
//! account and role, storage, the team VPN; drift repair; deletion with
//! retained storage.

pub mod build;
pub mod cache;
pub mod files;
pub mod groups;
pub mod reconcile;
pub mod status;
pub mod vpn;

pub use build::{Desired, build, namespace_name};
pub use reconcile::{Context, Stores, Watches, run, run_with};
