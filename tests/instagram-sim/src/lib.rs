//! A stateful simulator of Instagram's private API and web login.
