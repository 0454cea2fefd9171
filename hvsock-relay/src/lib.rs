//! The engine behind `hvsock connect`, `listen` and `relay`, as a library: open an endpoint of
//! any kind ([`connect`], [`Listener`]), join two connections both ways ([`join()`]) and serve a
//! relay ([`Relay`]).
//!
//! A joined connection passes half-closes on (a socket's peer reads end-of-file and can still
//! answer), passes a failure on as a reset of the other side, moves bulk streams with splice(2)
//! on Linux, finds a peer that went away (a killed vsock peer closes both ways at once and may
//! leave our write held up for ever), and ends idle or stopped connections. What it does on
//! each event is decided in one place, [`join::policy`], a pure function tested as a table.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! // vsock-proxy's job inside your own agent: guests reach a host service on port 8000.
//! use hvsock_relay::{Listener, Relay, Signals, Summary, Target};
//! let listener = Listener::bind(&"vsock:any:8000".parse()?).await?;
//! let relay = Relay {
//!     target: Target::Fixed("tcp:127.0.0.1:80".parse()?),
//!     allow: Default::default(),
//!     peers: Default::default(),
//!     max_conns: Some(100),
//!     ceiling: Some(hvsock_relay::descriptors::Ceiling::raise().conns),
//!     idle: None,
//!     connect_timeout: std::time::Duration::from_secs(5),
//!     full_queue_wait: std::time::Duration::from_secs(1),
//!     half_close: Default::default(),
//!     grace: std::time::Duration::from_secs(10),
//!     count: None,
//! };
//! let code = relay.serve(listener, Signals::new()?, Default::default()).await;
//! # let _ = code; Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod activation;
pub mod allowlist;
pub mod blocking;
mod conn;
mod connect;
pub mod delivery;
pub mod descriptors;
pub mod error;
pub mod forward;
mod held_up;
pub mod join;
mod listener;
#[cfg(unix)]
pub mod messages;
mod open;
pub mod peers;
mod relay;
mod runtime;
mod shared;
#[cfg(unix)]
mod stdio;
pub mod stopping;
pub mod wildcard;
mod zero_copy;

pub use allowlist::Allowlist;
pub use conn::{Conn, HalfCloseMode, HalfClosing, Kind, Reader, SocketHandle, Unread, Writer, HYBRID_QUIET};
pub use connect::{connect, connect_patiently};
pub use join::{join, Counters, End, Options};
pub use listener::Listener;
pub use relay::{Relay, Summary};
pub use runtime::runtime;
pub use stopping::Signals;
pub use wildcard::Target;
