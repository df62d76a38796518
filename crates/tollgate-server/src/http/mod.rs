//! The HTTP front ends: the check API and the reverse proxy.

pub(crate) mod check_api;
mod check_request;
pub(crate) mod health;
pub(crate) mod limits;
pub(crate) mod openapi;
pub(crate) mod proxy;
pub(crate) mod slots_api;
