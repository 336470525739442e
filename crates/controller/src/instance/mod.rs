//! Instances: the pods, services, policies and secrets of one running template.

mod apply;
pub mod build;
pub mod cache;
pub mod cleanup;
pub mod phase;
pub mod reconcile;
mod status;
pub mod status_events;
