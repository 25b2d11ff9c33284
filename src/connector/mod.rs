//! The connector engine: loads a YAML connector spec, renders requests,
//! injects credentials, executes them, classifies errors and maps responses
//! into the normalized model. It knows nothing of Matrix.

pub mod expr;
pub mod mapping;
pub mod template;
