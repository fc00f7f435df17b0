//! Client commands of the interaction, catalog and analysis services.

mod analyses;
mod common;
mod dead_letters;
mod interactions;
mod metrics;
mod products;
mod watch;

pub(crate) use analyses::*;
pub(crate) use dead_letters::*;
pub(crate) use interactions::*;
pub(crate) use metrics::*;
pub(crate) use products::*;
pub(crate) use watch::*;

pub(crate) use common::channel;
