//! Start-up and the command line: the first start's bootstrap ([`bootstrap`]), loading every
//! organization's stored configuration ([`startup`]), assembling and serving ([`serve`]), and the
//! administrative commands ([`commands`]).

pub mod bootstrap;
pub mod commands;
pub mod serve;
pub mod startup;
