//! What browsers load: the console ([`console`]), the decision page behind e-mailed links
//! ([`decision_page`]) and the live-event WebSocket ([`ws`]).

pub mod console;
pub mod decision_page;
pub mod ws;
