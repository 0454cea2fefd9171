//! The policy as a table (each row: two sides, what happened before, one event, what must be
//! done), and as properties over random event sequences.

use proptest::prelude::*;

use super::*;

const A: Side = Side::A;
const B: Side = Side::B;
const AB: Dir = Dir(Side::A);
const BA: Dir = Dir(Side::B);

fn side(kind: Kind, told_by_eof: bool, closes: bool) -> SideInfo {
    SideInfo { kind, told_by_eof, closes }
}
/// A socket we half-close (TCP, vsock, Unix, hybrid).
const SOCK: SideInfo = SideInfo { kind: Kind::Socket, told_by_eof: true, closes: false };
/// A socket under --no-shutdown.
const SOCK_KEPT: SideInfo = SideInfo { kind: Kind::Socket, told_by_eof: false, closes: false };
/// --send-only's peer.
const SOCK_CLOSED: SideInfo = SideInfo { kind: Kind::Socket, told_by_eof: true, closes: true };
const STDIO: SideInfo = SideInfo { kind: Kind::Stdio, told_by_eof: false, closes: false };
const CMD: SideInfo = SideInfo { kind: Kind::Command, told_by_eof: false, closes: false };

fn probe(gone: [bool; 2], moved: [bool; 2], writing: [bool; 2]) -> Event {
    Event::Probe(Probe { gone, moved, writing })
}
fn ended(dir: Dir, gone: bool) -> Event {
    Event::Ended { dir, gone }
}
fn failed(why: Why, reset: Side) -> Action {
    Action::End(Outcome::Failed { why, reset: Reset::Side(reset) })
}
const NO: [bool; 2] = [false, false];
const ONLY_A: [bool; 2] = [true, false];
const ONLY_B: [bool; 2] = [false, true];

struct Row {
    what: &'static str,
    a: SideInfo,
    b: SideInfo,
    stop_when_b_ends: bool,
    before: Vec<Event>,
    event: Event,
    then: Vec<Action>,
}

fn row(
    what: &'static str,
    (a, b): (SideInfo, SideInfo),
    before: Vec<Event>,
    event: Event,
    then: Vec<Action>,
) -> Row {
    Row { what, a, b, stop_when_b_ends: false, before, event, then }
}

fn table() -> Vec<Row> {
    let relay = (SOCK, SOCK);
    let exec = (SOCK, CMD);
    let connect = (STDIO, SOCK);
    let quiet = |d| Settle::Quiet(d);
    vec![
        // Both sides sockets (relay): each learns of the other's end by end-of-file.
        row("relay: one end of data waits for the other", relay, vec![], ended(AB, false), vec![]),
        row(
            "relay: both ends of data end it",
            relay,
            vec![ended(AB, false)],
            ended(BA, false),
            vec![Action::End(Outcome::Clean)],
        ),
        row(
            "relay: a gone client's end of data still waits for the upstream",
            relay,
            vec![],
            ended(AB, true),
            vec![],
        ),
        row(
            "relay: a read error resets the other side",
            relay,
            vec![],
            Event::ReadFailed(AB),
            vec![failed(Why::Read(A), B)],
        ),
        row(
            "relay: a refused write drops what comes, for the way back",
            relay,
            vec![],
            Event::WriteFailed { dir: AB, broken_pipe: true, gone: false },
            vec![Action::Refuse(AB)],
        ),
        row(
            "relay: a refusal is told once the way back ends",
            relay,
            vec![Event::WriteFailed { dir: AB, broken_pipe: false, gone: false }],
            ended(BA, false),
            vec![Action::Stop(AB), failed(Why::Refused(B), A)],
        ),
        row(
            "relay: a gone peer that is told by end-of-file needs nothing",
            relay,
            vec![],
            probe(ONLY_A, NO, NO),
            vec![],
        ),
        // The regression: a killed client whose connection is stalled both ways.
        row(
            "relay: a write held up towards a gone peer is refused",
            relay,
            vec![],
            probe(ONLY_A, NO, ONLY_B),
            vec![Action::Refuse(BA)],
        ),
        row(
            "relay: ... and the gone peer's last data then ends it",
            relay,
            vec![probe(ONLY_A, NO, ONLY_B)],
            ended(AB, true),
            vec![Action::Stop(BA), failed(Why::Refused(A), B)],
        ),
        row(
            "relay: the same the other way (a gone upstream)",
            relay,
            vec![],
            probe(ONLY_B, NO, ONLY_A),
            vec![Action::Refuse(AB)],
        ),
        row(
            "relay: both stalled towards gone peers: both refused",
            relay,
            vec![],
            probe([true, true], NO, [true, true]),
            vec![Action::Refuse(BA), Action::Refuse(AB)],
        ),
        row(
            "relay: a peer we half-closed is answering, not gone",
            relay,
            vec![ended(BA, false)],
            probe(ONLY_A, NO, NO),
            vec![],
        ),
        row(
            "relay --no-shutdown: a gone client ends the upstream once its data stops",
            (SOCK, SOCK_KEPT),
            vec![],
            probe(ONLY_A, NO, NO),
            vec![failed(Why::Gone(A), B)],
        ),
        // A command (listen --exec).
        row(
            "exec: a gone client's data still flowing is not cut",
            exec,
            vec![],
            probe(ONLY_A, ONLY_A, NO),
            vec![],
        ),
        row(
            "exec: a gone client's data stopped: the command is ended",
            exec,
            vec![],
            probe(ONLY_A, NO, NO),
            vec![failed(Why::Gone(A), B)],
        ),
        row(
            "exec: stalled both ways: refused, and the command ended",
            exec,
            vec![],
            probe(ONLY_A, NO, ONLY_B),
            vec![Action::Refuse(BA), failed(Why::Gone(A), B)],
        ),
        row(
            "exec: a gone client's end of data gives the command a moment",
            exec,
            vec![],
            ended(AB, true),
            vec![Action::Settle(BA, quiet(SETTLE_COMMAND))],
        ),
        row(
            "exec: ... after which it is ended",
            exec,
            vec![ended(AB, true)],
            Event::SettleOver { dir: BA, writing: false },
            vec![failed(Why::Gone(A), B)],
        ),
        row(
            "exec: a probe does not cut a settling command",
            exec,
            vec![ended(AB, true)],
            probe(ONLY_A, NO, NO),
            vec![],
        ),
        row("exec: a half-close (not gone) lets the command finish", exec, vec![], ended(AB, false), vec![]),
        row(
            "exec: a command that stops reading is done with input",
            exec,
            vec![],
            Event::WriteFailed { dir: AB, broken_pipe: true, gone: false },
            vec![],
        ),
        row(
            "exec: a command that breaks its input otherwise fails",
            exec,
            vec![],
            Event::WriteFailed { dir: AB, broken_pipe: false, gone: false },
            vec![failed(Why::Write(B), A)],
        ),
        row(
            "exec: a refused answer: the command gets a moment once input ends",
            exec,
            vec![Event::WriteFailed { dir: BA, broken_pipe: false, gone: false }],
            ended(AB, false),
            vec![Action::Settle(BA, Settle::Within(SETTLE_COMMAND))],
        ),
        row(
            "exec: ... then stopped, and the refusal told",
            exec,
            vec![Event::WriteFailed { dir: BA, broken_pipe: false, gone: false }, ended(AB, false)],
            Event::SettleOver { dir: BA, writing: false },
            vec![Action::Stop(BA), failed(Why::Refused(A), B)],
        ),
        // Our stdio (connect, listen).
        row(
            "stdio: the peer's end with the peer gone gives stdin a moment",
            connect,
            vec![],
            ended(BA, true),
            vec![Action::Settle(AB, quiet(SETTLE_STDIO))],
        ),
        row(
            "stdio: ... a quiet stdin then ends cleanly",
            connect,
            vec![ended(BA, true)],
            Event::SettleOver { dir: AB, writing: false },
            vec![Action::End(Outcome::Clean)],
        ),
        row(
            "stdio: ... input held up unsent fails",
            connect,
            vec![ended(BA, true)],
            Event::SettleOver { dir: AB, writing: true },
            vec![failed(Why::Gone(B), A)],
        ),
        row("stdio: a half-closing peer lets stdin go on", connect, vec![], ended(BA, false), vec![]),
        row(
            "stdio: a gone peer whose data is out, stdin quiet: clean",
            connect,
            vec![ended(BA, false)],
            probe(ONLY_B, NO, NO),
            vec![Action::End(Outcome::Clean)],
        ),
        row(
            "stdio: a gone peer whose data is out, stdin held up: refused and failed",
            connect,
            vec![ended(BA, false)],
            probe(ONLY_B, NO, ONLY_A),
            vec![Action::Refuse(AB), failed(Why::Gone(B), A)],
        ),
        row(
            "stdio: a stdout slow to take a gone peer's data only waits",
            connect,
            vec![],
            probe(ONLY_B, NO, ONLY_B),
            vec![],
        ),
        row(
            "stdio: ... but stdin held up towards it is refused",
            connect,
            vec![],
            probe(ONLY_B, NO, [true, true]),
            vec![Action::Refuse(AB)],
        ),
        row(
            "stdio: stdout that fails resets the peer",
            connect,
            vec![],
            Event::WriteFailed { dir: BA, broken_pipe: true, gone: false },
            vec![failed(Why::Write(A), B)],
        ),
        Row {
            what: "terminal: the peer's end ends the session",
            a: STDIO,
            b: SOCK,
            stop_when_b_ends: true,
            before: vec![],
            event: ended(BA, false),
            then: vec![Action::End(Outcome::PeerDone)],
        },
        Row {
            what: "terminal: ... but a refusal still fails it",
            a: STDIO,
            b: SOCK,
            stop_when_b_ends: true,
            before: vec![Event::WriteFailed { dir: AB, broken_pipe: false, gone: false }],
            event: ended(BA, false),
            then: vec![failed(Why::Refused(B), A)],
        },
        // --send-only.
        row(
            "send-only: the end of input waits for delivery",
            (STDIO, SOCK_CLOSED),
            vec![],
            ended(AB, false),
            vec![Action::AwaitDelivery],
        ),
        row(
            "send-only: delivered: clean",
            (STDIO, SOCK_CLOSED),
            vec![ended(AB, false)],
            Event::Delivered { ok: true },
            vec![Action::End(Outcome::Clean)],
        ),
        row(
            "send-only: the way back ending does not end it before delivery",
            (STDIO, SOCK_CLOSED),
            vec![ended(AB, false)],
            ended(BA, false),
            vec![],
        ),
        row(
            "send-only: undelivered fails",
            (STDIO, SOCK_CLOSED),
            vec![ended(AB, false)],
            Event::Delivered { ok: false },
            vec![failed(Why::Undelivered, A)],
        ),
        // Limits and stops.
        row("idle: both reset", relay, vec![], Event::Idle, vec![Action::End(Outcome::Idle)]),
        row(
            "stop: both reset, never a clean end",
            relay,
            vec![],
            Event::Stop,
            vec![Action::End(Outcome::Failed { why: Why::Stopped, reset: Reset::Both })],
        ),
        row(
            "a settle over with no settle asked is nothing",
            exec,
            vec![ended(AB, false)],
            Event::SettleOver { dir: BA, writing: false },
            vec![],
        ),
    ]
}

#[test]
fn every_row_of_the_table() {
    let mut wrong = Vec::new();
    for r in table() {
        let mut s = State::new(r.a, r.b, r.stop_when_b_ends);
        for e in &r.before {
            let done = s.decide(*e);
            assert!(
                !done.iter().any(|a| matches!(a, Action::End(_))),
                "{}: ended before its event: {done:?}",
                r.what
            );
        }
        let got = s.decide(r.event);
        if got != r.then {
            wrong.push(format!("{}: expected {:?}, got {:?}", r.what, r.then, got));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_peer_check_runs_only_when_a_decision_can_read_it() {
    let (yes, no) = (true, false);
    // (A, B, which are probed): the timer.
    let rows = [
        ("relay, vsock both sides", SOCK, SOCK, [yes, yes], ProbeTimer::WhileHeldUp),
        ("relay, vsock to tcp", SOCK, SOCK, [yes, no], ProbeTimer::WhileHeldUp),
        ("relay, tcp both sides", SOCK, SOCK, [no, no], ProbeTimer::Never),
        ("listen --exec on vsock", SOCK, CMD, [yes, no], ProbeTimer::Always),
        ("connect on vsock", STDIO, SOCK, [no, yes], ProbeTimer::Always),
        ("connect on tcp", STDIO, SOCK, [no, no], ProbeTimer::Never),
        ("--no-shutdown towards a vsock peer", SOCK_KEPT, SOCK, [no, yes], ProbeTimer::Always),
        ("--no-shutdown on the vsock side itself", SOCK, SOCK_KEPT, [no, yes], ProbeTimer::WhileHeldUp),
        ("--send-only", STDIO, SOCK_CLOSED, [no, yes], ProbeTimer::Always),
    ];
    for (what, a, b, probed, want) in rows {
        let state = State::new(a, b, false);
        assert_eq!(state.probe_timer(probed), want, "{what}");
        // Skipping the check while no write is held up skips nothing a decision reads.
        if want != ProbeTimer::Always {
            for side in [A, B] {
                assert!(!(probed[side.index()] && state.wants_probe(side, false)), "{what}: {side:?}");
            }
        }
    }
}

fn any_side() -> impl Strategy<Value = SideInfo> {
    (prop_oneof![Just(Kind::Socket), Just(Kind::Stdio), Just(Kind::Command)], any::<bool>())
        .prop_map(|(kind, told)| side(kind, kind == Kind::Socket && told, false))
}

fn any_dir() -> impl Strategy<Value = Dir> {
    prop_oneof![Just(AB), Just(BA)]
}

fn any_event() -> impl Strategy<Value = Event> {
    let pair = || any::<[bool; 2]>();
    prop_oneof![
        (any_dir(), any::<bool>()).prop_map(|(dir, gone)| Event::Ended { dir, gone }),
        any_dir().prop_map(Event::Drained),
        any_dir().prop_map(Event::ReadFailed),
        (any_dir(), any::<bool>(), any::<bool>()).prop_map(|(dir, broken_pipe, gone)| Event::WriteFailed {
            dir,
            broken_pipe,
            gone
        }),
        (pair(), pair(), pair()).prop_map(|(gone, moved, writing)| probe(gone, moved, writing)),
        (any_dir(), any::<bool>()).prop_map(|(dir, writing)| Event::SettleOver { dir, writing }),
        any::<bool>().prop_map(|ok| Event::Delivered { ok }),
    ]
}

/// Whether an event could happen in this state: a direction's own news only while it runs.
fn possible(s: &State, e: &Event) -> bool {
    match *e {
        Event::Ended { dir, .. } | Event::ReadFailed(dir) | Event::WriteFailed { dir, .. } => {
            s.dirs[dir.index()] == Phase::Running
        }
        Event::Drained(dir) => s.dirs[dir.index()] == Phase::Refused,
        Event::SettleOver { dir, .. } => s.settling == Some(dir),
        Event::Delivered { .. } => s.delivering,
        Event::Probe(p) => (0..2).all(|i| !p.gone[i] || s.sides[i].kind == Kind::Socket),
        _ => true,
    }
}

fn is_clean(o: &Outcome) -> bool {
    matches!(o, Outcome::Clean | Outcome::PeerDone)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// A failure (a read or write error, a refusal, input held up unsent) is never reported as
    /// a clean end; a reset is never of the side that failed; the policy never asks for a
    /// direction to be refused or stopped twice.
    #[test]
    fn failures_are_never_clean(a in any_side(), b in any_side(), stop in any::<bool>(), events in proptest::collection::vec(any_event(), 1..24)) {
        let mut s = State::new(a, b, stop);
        let mut failed = false;
        let mut refused = [false; 2];
        for e in events {
            if !possible(&s, &e) {
                continue;
            }
            match e {
                Event::ReadFailed(_) => failed = true,
                Event::WriteFailed { dir, broken_pipe, .. } => {
                    failed |= !(broken_pipe && s.sides[dir.to().index()].kind == Kind::Command);
                }
                Event::SettleOver { writing: true, dir } if s.dirs[dir.index()] == Phase::Running => failed = true,
                Event::Delivered { ok: false } => failed = true,
                _ => {}
            }
            let actions = s.decide(e);
            for a in &actions {
                match a {
                    Action::Refuse(d) => {
                        prop_assert!(!refused[d.index()], "refused twice: {actions:?}");
                        refused[d.index()] = true;
                        failed = true;
                    }
                    Action::End(o) => {
                        prop_assert!(!(failed && is_clean(o)), "a failure ended clean: {e:?} -> {o:?} in {s:?}");
                        if let (Outcome::Failed { why: Why::Read(x) | Why::Write(x), reset: Reset::Side(r) }, _) = (o, ()) {
                            prop_assert_ne!(x, r, "the failed side itself reset");
                        }
                    }
                    _ => {}
                }
            }
            if actions.iter().any(|a| matches!(a, Action::End(_))) {
                break;
            }
        }
    }

    /// Once both peers are gone (two sockets: the only sides that have peers to lose), the
    /// connection ends within a few checks, whatever is stalled: each direction either ends
    /// (its reader meets the gone peer's end) or is held up in a write that never completes.
    #[test]
    fn both_peers_gone_ends_it(told in any::<[bool; 2]>(), stuck in any::<[bool; 2]>(), before in proptest::collection::vec(any_event(), 0..6)) {
        let mut s = State::new(side(Kind::Socket, told[0], false), side(Kind::Socket, told[1], false), false);
        // What happened before they went: half-closes passed on, a read failed, ...
        for e in before {
            if possible(&s, &e) && s.decide(e).iter().any(|a| matches!(a, Action::End(_))) {
                return Ok(());
            }
        }
        // The world: what the driver would report next, step by step.
        let mut pending: Vec<Event> = Vec::new();
        for step in 0..12 {
            let event = pending.pop().unwrap_or_else(|| {
                // A refused direction drains its gone reader; a running one that is not stuck
                // meets its reader's end; a stuck one shows in the check.
                if let Some(dir) = Dir::BOTH.into_iter().find(|d| s.dirs[d.index()] == Phase::Refused) {
                    return Event::Drained(dir);
                }
                if let Some(dir) = s.settling {
                    return Event::SettleOver { dir, writing: stuck[dir.index()] };
                }
                match Dir::BOTH.into_iter().find(|d| s.dirs[d.index()] == Phase::Running && !stuck[d.index()]) {
                    Some(dir) => ended(dir, true),
                    None => {
                        let writing = [0, 1].map(|i| stuck[i] && s.dirs[i] == Phase::Running);
                        probe([true, true], NO, writing)
                    }
                }
            });
            for a in s.decide(event) {
                match a {
                    Action::End(_) => return Ok(()),
                    Action::Refuse(d) => pending.push(Event::Drained(d)),
                    Action::Settle(d, _) => pending.push(Event::SettleOver { dir: d, writing: stuck[d.index()] }),
                    Action::AwaitDelivery => pending.push(Event::Delivered { ok: false }),
                    Action::Stop(_) => {}
                }
            }
            prop_assert!(step < 11, "not ended after {step} steps: {s:?}");
        }
    }
}
