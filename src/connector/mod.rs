//! The connector engine: loads a YAML connector spec, renders requests,
//! injects credentials, executes them, classifies errors and maps responses
//! into the normalized model. It knows nothing of Matrix.

pub mod auth;
pub mod budget;
pub mod expr;
pub mod http;
pub mod mapping;
pub mod params;
pub mod session;
pub mod spec;
pub mod template;
pub mod typed;
