//! The policy's vocabulary: the two sides and directions, what the driver tells the policy
//! (an [`Event`]) and what it is told to do (an [`Action`]), and how a connection ends.

use std::time::Duration;

use crate::conn::Kind;

/// One of the two connections joined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The first (`connect`/`listen`: our stdio or the command; `relay`: the client).
    A,
    /// The second (the peer; `relay`: the upstream).
    B,
}

impl Side {
    /// The other one.
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// A direction, named by the side it reads from: `Dir(Side::A)` copies A's data to B.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Dir(pub Side);

impl Dir {
    /// A to B and B to A.
    pub const BOTH: [Dir; 2] = [Dir(Side::A), Dir(Side::B)];

    /// The side it reads from.
    pub fn from(self) -> Side {
        self.0
    }

    /// The side it writes to.
    pub fn to(self) -> Side {
        self.0.other()
    }

    /// The opposite direction.
    pub fn back(self) -> Dir {
        Dir(self.0.other())
    }

    /// Its slot in per-direction arrays.
    pub fn index(self) -> usize {
        self.0.index()
    }
}

/// What a side is, for how it learns that its peer has gone. Fixed for the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SideInfo {
    /// A socket, our stdio, or a command.
    pub kind: Kind,
    /// Our half-close tells it that its peer's data has ended (a socket, unless
    /// `--no-shutdown`): if it then sends on, the gone peer's refusal fails it, as TCP tells a
    /// peer of a closed socket. A side that cannot be told so is ended when its peer is gone,
    /// or it might wait for ever.
    pub told_by_eof: bool,
    /// The end of the other side's data closes this one, ending the connection (`--send-only`).
    pub closes: bool,
}

/// Something that happened, as the driver saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// `dir`'s reader ended and everything read was written and the end passed on. `gone`:
    /// the reading side's peer closed both ways, not just its sending half.
    #[allow(missing_docs)]
    Ended { dir: Dir, gone: bool },
    /// A refused direction's reader ended (or failed): nothing more comes to drop.
    Drained(Dir),
    /// A read of `dir` failed.
    ReadFailed(Dir),
    /// A write of `dir` failed; `broken_pipe`: the receiver stopped reading (EPIPE); `gone`:
    /// the reading side's peer closed both ways.
    #[allow(missing_docs)]
    WriteFailed { dir: Dir, broken_pipe: bool, gone: bool },
    /// The periodic check.
    Probe(Probe),
    /// The last moment given to `dir` (see [`Action::Settle`]) is over; `writing`: a write is
    /// held up in it.
    #[allow(missing_docs)]
    SettleOver { dir: Dir, writing: bool },
    /// `--send-only`: B's peer has taken all we sent (`ok`), or the connection failed first.
    #[allow(missing_docs)]
    Delivered { ok: bool },
    /// Nothing moved either way for the idle limit.
    Idle,
    /// The server stops: its grace period is over, or a second signal came.
    Stop,
}

/// What the periodic check found. Per side: `gone`; per direction: `moved` (since the
/// previous check) and `writing` (a write is held up in it now).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    /// Per side: its peer closed both ways.
    pub gone: [bool; 2],
    /// Per direction: it moved something since the last check.
    pub moved: [bool; 2],
    /// Per direction: a write is held up in it.
    pub writing: [bool; 2],
}

/// When a joined connection checks that its peers are still there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeTimer {
    /// Every [`PROBE_EVERY`](super::policy::PROBE_EVERY), for the connection's life.
    Always,
    /// Every `PROBE_EVERY` while a write is held up, and not at all otherwise.
    WhileHeldUp,
    /// Never: no side can be probed.
    Never,
}

/// How long a settling direction has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settle {
    /// Until it is quiet this long (or ends).
    Quiet(Duration),
    /// At most this long.
    Within(Duration),
}

/// What the driver does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Give up `dir`'s held-up write and read on from its reader, dropping what comes.
    Refuse(Dir),
    /// Stop `dir`: nothing more is read.
    Stop(Dir),
    /// Give `dir` a last moment, then tell [`Event::SettleOver`] (unless it ends first).
    Settle(Dir, Settle),
    /// Wait until B's peer has taken all we sent, then tell [`Event::Delivered`].
    AwaitDelivery,
    /// The connection is over.
    End(Outcome),
}

/// How a joined connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Both directions reached their end.
    Clean,
    /// B's data all reached A and `stop_when_b_ends` was set.
    PeerDone,
    /// One side failed; the other learns it as a reset (`reset`), once it has taken what it
    /// was sent or a moment has passed.
    #[allow(missing_docs)]
    Failed { why: Why, reset: Reset },
    /// Nothing moved for the idle limit: both are reset.
    Idle,
}

/// Who is reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reset {
    /// This side: the other one failed.
    Side(Side),
    /// Both (a stop cut them).
    Both,
}

/// Why the connection failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// Reading this side failed.
    Read(Side),
    /// Writing to this side failed.
    Write(Side),
    /// This side refused our writes (its peer closed both ways, or reset).
    Refused(Side),
    /// This side's peer went away (closed both ways) before the other side had finished.
    Gone(Side),
    /// `--send-only`: B's peer did not take all we sent.
    Undelivered,
    /// The server stopped while the connection was open.
    Stopped,
}
