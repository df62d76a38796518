//! The OpenAPI document (`openapi.json`) cannot drift from the server: every route the
//! router mounts is in it and every operation in it is mounted (`routes.rs`), and the live
//! server answers what it says, by schemathesis (`schemathesis.rs`).

#[path = "../support/mod.rs"]
mod support;

mod routes;
mod schemathesis;
