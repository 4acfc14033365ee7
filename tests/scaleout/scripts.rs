//! The Lua fence against a real Redis.
