//! The Tower middleware: [`HttpLimitLayer`] and the [`HttpLimitService`] it wraps services in,
//! with its response future in [`future`].

pub mod future;
mod layer;
mod service;

pub use layer::HttpLimitLayer;
pub use service::{HttpLimitBody, HttpLimitService};
