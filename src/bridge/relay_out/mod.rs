//! Matrix -> Instagram: what a user does in a portal room, carried out on
//! Instagram.

pub mod media;
