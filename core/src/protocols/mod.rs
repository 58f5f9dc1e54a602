//! Inbound wire protocols: parsing and validating what callers send, and
//! rendering what they receive. One module per protocol.

pub mod aigne;
pub mod anthropic;
pub mod openai;
