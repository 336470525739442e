//! Paddock's reconcilers. Each is a pipeline: read → validate → build (pure,
//! tested from fixtures) → apply (server-side apply, field manager `paddock`)
//! → status.

pub mod backoff;
pub mod cache;
pub mod cluster;
pub mod config;
pub mod error;
pub mod events;
pub mod finalizers;
pub mod index;
pub mod install;
pub mod instance;
pub mod labels;
pub mod leader;
pub mod ledger;
pub mod merge;
pub mod metrics;
pub mod noderoles;
pub mod pool;
pub mod quota;
pub mod rbac;
pub mod requests;
pub mod sent;
pub mod template;
pub mod tenant;
