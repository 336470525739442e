//! Instances: the pods, services, policies and secrets of one running template.

mod activity;
mod apply;
pub mod build;
pub mod cache;
pub mod cleanup;
mod cold;
pub mod context;
pub mod idle;
pub mod observe;
pub mod phase;
pub mod reconcile;
mod status;
pub mod status_events;
pub mod suspend;
pub mod validate;
mod warm;
pub mod world;
