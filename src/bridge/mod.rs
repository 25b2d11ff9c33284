//! The bridge core: the bot, management rooms and commands, and (later)
//! portals, puppets and relaying. It speaks the normalized model and Matrix.
