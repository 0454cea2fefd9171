//! What a joined connection does on each event, decided in one place: a pure function of the
//! connection's state and the event, so that every decision is a row of a table (see the
//! tests) instead of flags spread through a loop. The driver (`join`) does the I/O and feeds
//! the events in; it never decides.

use std::time::Duration;

pub use super::events::*;
use crate::conn::Kind;

/// How often a connection checks that its peers are still there (well inside the 8 s a
/// closing vsock peer waits before it resets).
pub const PROBE_EVERY: Duration = Duration::from_secs(2);
/// How long our stdin may stay quiet once its peer is found gone at its end-of-file: what was
/// already on its way (an end-of-file a moment behind) still goes, as in socat's 0.5 s `-t`.
pub const SETTLE_STDIO: Duration = Duration::from_millis(500);
/// The same for a command (or another side that cannot be told of the end): it may still be at
/// work on what it was sent (saving an upload), silently, on a loaded machine, where starting a
/// process alone can take a second (a UML guest beside a busy CI was seen to take over 2 s for
/// `sleep 0.1; mv`); found within a probe and ended after this, it is still inside the 8 s a
/// closing vsock peer waits before it resets.
pub const SETTLE_COMMAND: Duration = Duration::from_secs(4);
/// How long the side that did not fail has to take what it was sent before it is reset (a
/// reset throws away what it has not read).
pub const RESET_AFTER: Duration = PROBE_EVERY;

/// A direction's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Copying.
    Running,
    /// Its reader ended and everything read was written, the end passed on as the receiving
    /// side's half-close mode says.
    Ended,
    /// Its receiving socket takes no more (it refused a write, or its peer is gone with our
    /// write held up): what its reader brings is read and dropped, so that the way back is not
    /// stopped by a full buffer, until the way back has ended too.
    Refused,
    /// Done after a refusal: nothing more is read.
    Stopped,
}

impl Phase {
    /// Whether it does nothing more.
    pub fn is_done(self) -> bool {
        matches!(self, Phase::Ended | Phase::Stopped)
    }
}

/// A joined connection as the policy sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct State {
    /// A and B.
    pub sides: [SideInfo; 2],
    /// A to B and B to A.
    pub dirs: [Phase; 2],
    /// Whether a direction was refused (told at the end as the connection's failure).
    pub refused: [bool; 2],
    /// The direction given a last moment (see [`Action::Settle`]), while it has it.
    pub settling: Option<Dir>,
    /// End as soon as B's data has all reached A (a terminal on stdin may never end).
    pub stop_when_b_ends: bool,
    /// Waiting for B's peer to take all we sent before the close (`--send-only`).
    pub delivering: bool,
}

impl State {
    /// A connection of these two sides, both directions running.
    pub fn new(a: SideInfo, b: SideInfo, stop_when_b_ends: bool) -> State {
        State {
            sides: [a, b],
            dirs: [Phase::Running; 2],
            refused: [false; 2],
            settling: None,
            stop_when_b_ends,
            delivering: false,
        }
    }

    fn side(&self, s: Side) -> SideInfo {
        self.sides[s.index()]
    }

    fn phase(&self, d: Dir) -> Phase {
        self.dirs[d.index()]
    }

    fn set(&mut self, d: Dir, p: Phase) {
        self.dirs[d.index()] = p;
        if self.settling == Some(d) && p.is_done() {
            self.settling = None;
        }
    }

    /// Whether the check should ask if `side`'s peer is gone: only what a decision reads is
    /// asked (a zero-length send per side).
    pub fn wants_probe(&self, side: Side, writing_to_it: bool) -> bool {
        let toward = Dir(side.other());
        !self.phase(toward).is_done() && (writing_to_it || !self.side(side.other()).told_by_eof)
    }

    /// When the peer check has to run, given which sides can be probed at all: a side whose
    /// other side learns of an end by end-of-file is asked only while a write to it is held
    /// up (see [`wants_probe`](Self::wants_probe)), so its check runs only then — no timer,
    /// and no clock read at each wake-up of the runtime, while data flows.
    pub fn probe_timer(&self, probed: [bool; 2]) -> ProbeTimer {
        let always = [Side::A, Side::B]
            .into_iter()
            .any(|side| probed[side.index()] && !self.side(side.other()).told_by_eof);
        match (always, probed.contains(&true)) {
            (true, _) => ProbeTimer::Always,
            (false, true) => ProbeTimer::WhileHeldUp,
            (false, false) => ProbeTimer::Never,
        }
    }

    /// What to do on `event`; the state is brought up to date.
    pub fn decide(&mut self, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::Ended { dir, gone } => self.ended(dir, gone, &mut out),
            Event::Drained(dir) => {
                if self.phase(dir) == Phase::Refused {
                    self.set(dir, Phase::Stopped);
                }
            }
            Event::ReadFailed(dir) => {
                let why = Why::Read(dir.from());
                out.push(Action::End(Outcome::Failed { why, reset: Reset::Side(dir.to()) }));
                return out;
            }
            Event::WriteFailed { dir, broken_pipe, gone } => match self.side(dir.to()).kind {
                // A command that stopped reading its input is done with input, not broken.
                Kind::Command if broken_pipe => self.ended(dir, gone, &mut out),
                // A socket that refuses takes nothing more, but the way back may still bring
                // its last data, and a command its last work: ending now would lose them.
                Kind::Socket => self.refuse(dir, &mut out),
                _ => {
                    let why = Why::Write(dir.to());
                    out.push(Action::End(Outcome::Failed { why, reset: Reset::Side(dir.from()) }));
                    return out;
                }
            },
            Event::Probe(p) => self.probe(p, &mut out),
            Event::SettleOver { dir, writing } => self.settle_over(dir, writing, &mut out),
            Event::Delivered { ok } => {
                self.delivering = false;
                if !ok {
                    let why = Why::Undelivered;
                    out.push(Action::End(Outcome::Failed { why, reset: Reset::Side(Side::A) }));
                    return out;
                }
                out.push(Action::End(self.outcome()));
                return out;
            }
            Event::Idle => {
                out.push(Action::End(Outcome::Idle));
                return out;
            }
            Event::Stop => {
                out.push(Action::End(Outcome::Failed { why: Why::Stopped, reset: Reset::Both }));
                return out;
            }
        }
        if out.iter().any(|a| matches!(a, Action::End(_))) {
            return out;
        }
        self.follow_up(&mut out);
        out
    }

    /// `dir` delivered all its reader had.
    fn ended(&mut self, dir: Dir, gone: bool, out: &mut Vec<Action>) {
        self.set(dir, Phase::Ended);
        let (from, to, back) = (dir.from(), dir.to(), dir.back());
        if to == Side::B && self.side(Side::B).closes {
            // B's peer may still send: it is read on until it has taken all of ours, or the
            // close would be a reset that loses the rest.
            self.delivering = true;
            out.push(Action::AwaitDelivery);
            return;
        }
        if from == Side::B && self.stop_when_b_ends {
            // A refusal still fails it.
            let outcome = match self.outcome() {
                Outcome::Clean => Outcome::PeerDone,
                failed => failed,
            };
            out.push(Action::End(outcome));
            return;
        }
        // The end of the reader's data may be its side gone altogether, with the other still
        // to be heard: what that one already has on its way still goes, then it is ended.
        if self.phase(back) == Phase::Running && gone && !self.side(to).told_by_eof {
            let quiet = if self.side(to).kind == Kind::Stdio { SETTLE_STDIO } else { SETTLE_COMMAND };
            self.settling = Some(back);
            out.push(Action::Settle(back, Settle::Quiet(quiet)));
        }
    }

    fn refuse(&mut self, dir: Dir, out: &mut Vec<Action>) {
        if self.phase(dir) == Phase::Running {
            self.set(dir, Phase::Refused);
            self.refused[dir.index()] = true;
            out.push(Action::Refuse(dir));
        }
    }

    /// After a step: refused directions whose way back has ended stop (a command's output
    /// gets a moment: it may still be at work), and a connection whose directions are both
    /// done ends.
    fn follow_up(&mut self, out: &mut Vec<Action>) {
        for dir in Dir::BOTH {
            if self.phase(dir) == Phase::Refused
                && self.phase(dir.back()).is_done()
                && self.settling != Some(dir)
            {
                if self.side(dir.from()).kind == Kind::Command {
                    self.settling = Some(dir);
                    out.push(Action::Settle(dir, Settle::Within(SETTLE_COMMAND)));
                } else {
                    self.set(dir, Phase::Stopped);
                    out.push(Action::Stop(dir));
                }
            }
        }
        if self.dirs.iter().all(|p| p.is_done()) && !self.delivering {
            out.push(Action::End(self.outcome()));
        }
    }

    /// How a connection whose directions are done ended: a refusal fails it (the side that
    /// did not refuse is reset), or both ended cleanly.
    fn outcome(&self) -> Outcome {
        for dir in Dir::BOTH {
            if self.refused[dir.index()] {
                return Outcome::Failed { why: Why::Refused(dir.to()), reset: Reset::Side(dir.from()) };
            }
        }
        Outcome::Clean
    }

    fn settle_over(&mut self, dir: Dir, writing: bool, out: &mut Vec<Action>) {
        if self.settling != Some(dir) {
            return; // it ended meanwhile
        }
        self.settling = None;
        match self.phase(dir) {
            Phase::Refused => {
                self.set(dir, Phase::Stopped);
                out.push(Action::Stop(dir));
            }
            Phase::Running => {
                // The other side's peer is gone and this one has had its moment: a side that is
                // our stdio and holds nothing unsent is done; anything else has failed.
                let (x, y) = (dir.to(), dir.from());
                out.push(Action::End(self.gone_outcome(x, y, writing)));
            }
            Phase::Ended | Phase::Stopped => {}
        }
    }

    /// `x`'s peer is gone and `y` is ended: cleanly if `y` is our stdio and nothing of its is
    /// held up unsent (`held`), or else as a failure.
    fn gone_outcome(&self, x: Side, y: Side, held: bool) -> Outcome {
        if self.side(y).kind == Kind::Stdio && !held {
            self.outcome()
        } else {
            Outcome::Failed { why: Why::Gone(x), reset: Reset::Side(y) }
        }
    }

    fn probe(&mut self, p: Probe, out: &mut Vec<Action>) {
        if self.settling.is_some() {
            return; // one direction has its last moment: not cut under it
        }
        for x in [Side::A, Side::B] {
            let (y, from_x, to_x) = (x.other(), Dir(x), Dir(x.other()));
            // After our half-close, a peer that closes both ways is answering it, not gone.
            if !p.gone[x.index()] || self.phase(to_x).is_done() {
                continue;
            }
            let writing_to_x = p.writing[to_x.index()] && self.phase(to_x) == Phase::Running;
            if writing_to_x {
                // A write to a gone peer never completes (a vsock peer killed with our data
                // unread gives no room and no error): what y sends now is dropped, and y
                // hears of it when x's data is all delivered.
                self.refuse(to_x, out);
            }
            if self.side(y).told_by_eof {
                continue;
            }
            // y (a command, our stdio, or --no-shutdown) cannot learn of it by end-of-file.
            let from_x_quiet = self.phase(from_x).is_done() || !p.moved[from_x.index()];
            let to_x_quiet = self.phase(to_x) != Phase::Running || !p.moved[to_x.index()];
            if self.side(y).kind != Kind::Stdio {
                // Once x's data is delivered, or stopped moving (the command no longer reads
                // it), the command is ended. Not before: a peer that sends and closes at once
                // has not failed.
                if from_x_quiet {
                    out.push(Action::End(Outcome::Failed { why: Why::Gone(x), reset: Reset::Side(y) }));
                    return;
                }
            } else if self.phase(from_x) == Phase::Ended && to_x_quiet {
                // Our stdio: the session ends once x's data is all out and stdin is quiet (a
                // stdout slow to take it only waits); input held up unsent is a failure.
                out.push(Action::End(self.gone_outcome(x, y, writing_to_x)));
                return;
            }
        }
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
