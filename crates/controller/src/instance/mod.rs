//! Instances: the pods, services, policies and secrets of one running template.

pub mod build;
pub mod phase;
pub mod reconcile;
