//! Matrix -> Instagram: what users do in portal rooms, carried out on Instagram.

pub mod changes;
