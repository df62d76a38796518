//! The Tower middleware: [`HttpLimitLayer`] and the [`HttpLimitService`] it wraps services in,
//! with its response future in [`future`].

pub mod future;
mod held_body;
mod layer;
mod service;

pub use held_body::SlotHeldBody;
pub(crate) use held_body::SlotRelease;
pub use layer::HttpLimitLayer;
pub use service::{HttpLimitBody, HttpLimitService};
